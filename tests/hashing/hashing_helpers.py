"""Small real model files for the hashing and scan tests (kept tiny: these tests hash every byte)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

LORA_BLOCKS = [
    ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", 320, 320),
    ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", 768, 320),
    ("lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_v", 1280, 1280),
    ("lora_te_text_model_encoder_layers_0_self_attn_q_proj", 768, 768),
]


def write_lora(path: Path, *, seed: int = 0, rank: int = 4, name: str = "demo") -> Path:
    """A kohya-style SD1 LoRA (lora_down/lora_up/alpha per module) with training metadata, as safetensors."""
    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray] = {}
    for module, fan_in, fan_out in LORA_BLOCKS:
        tensors[f"{module}.lora_down.weight"] = rng.standard_normal((rank, fan_in), dtype=np.float32).astype(np.float16)
        tensors[f"{module}.lora_up.weight"] = rng.standard_normal((fan_out, rank), dtype=np.float32).astype(np.float16)
        tensors[f"{module}.alpha"] = np.array(float(rank), dtype=np.float16)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"ss_output_name": name, "ss_network_module": "networks.lora"})
    return path


def write_noise(path: Path, size: int, *, seed: int = 0) -> Path:
    """Random bytes: no model format at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path
