"""Checkpoints written by the real `torch.save`, and the checks every conversion test shares.

A module of its own (not conftest.py) so test files can import it by a name no other test folder uses.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file

WIDTHS = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "U16": 2, "I8": 1, "U8": 1, "BOOL": 1,
    "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip


def sd_like_state(dtype: torch.dtype = torch.float16, seed: int = 0) -> dict[str, torch.Tensor]:
    """A few SD1 checkpoint keys with shrunken shapes: UNet, VAE, text encoder, plus the int64 position ids."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(dtype)

    return {
        "model.diffusion_model.input_blocks.0.0.weight": rand(32, 4, 3, 3),
        "model.diffusion_model.input_blocks.0.0.bias": rand(32),
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": rand(32, 48),
        "model.diffusion_model.out.2.weight": rand(4, 32, 3, 3),
        "first_stage_model.encoder.conv_in.weight": rand(16, 3, 3, 3),
        "first_stage_model.quant_conv.weight": rand(8, 8, 1, 1),
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": rand(100, 48),
        "cond_stage_model.transformer.text_model.embeddings.position_ids": torch.arange(77).unsqueeze(0),
        "model_ema.decay": torch.tensor(0.9999, dtype=torch.float32),
        "model_ema.num_updates": torch.tensor(470000, dtype=torch.int32),
    }


def tricky_state() -> dict[str, torch.Tensor]:
    """Views into shared storages, a transpose, a stride-0 expansion, a stepped slice, odd dtypes, empties."""
    base = torch.arange(48, dtype=torch.float32).reshape(6, 8)
    shared = torch.randn(10, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    return {
        "base": base,
        "row_view": base[2],  # offset into a storage another tensor also uses
        "col_block": base[1:4, 2:6],  # gaps between rows
        "transposed": base.t(),
        "stepped": base[::2, 1::3],
        "expanded": torch.tensor([1.0, 2.0, 3.0], dtype=torch.float16).unsqueeze(0).expand(4, 3),
        "shared_a": shared,
        "shared_b": shared[3:7],
        "same_object_twice": base,
        "int64": torch.tensor([[-(2**40), 7], [3, 2**62]], dtype=torch.int64),
        "bool": torch.tensor([True, False, True]),
        "uint8": torch.arange(5, dtype=torch.uint8),
        "float64": torch.tensor([1.5, -2.25], dtype=torch.float64),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "permuted4d": torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(2)).permute(0, 2, 3, 1),
    }


def save(obj: object, path: Path, *, legacy: bool = False) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def flatten(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """torch.load's nested result flattened the way the readers flatten keys (dicts by ".", lists by index)."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    out: dict[str, torch.Tensor] = {}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list | tuple) else []
    for key, value in items:
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, torch.Tensor | dict | list | tuple):
            out.update(flatten(value, name))
    return out


def assert_same_tensors(output: Path, expected: dict[str, torch.Tensor]) -> None:
    """Tensor for tensor: same names, dtypes, shapes and values, and a valid safetensors header."""
    got = load_file(output)
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        assert got[name].dtype == tensor.dtype, name
        assert got[name].shape == tensor.shape, name
        assert torch.equal(got[name], tensor), name
    assert_valid_header(output)


def assert_valid_header(output: Path) -> dict[str, Any]:
    """The header by the letter of the format: contiguous offsets covering the buffer, aligned, nothing shared."""
    raw = output.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    start = 8 + size
    assert start % 8 == 0
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in entry.items())
            continue
        begin, end = entry["data_offsets"]
        numel = 1
        for dim in entry["shape"]:
            numel *= dim
        assert end - begin == numel * WIDTHS[entry["dtype"]], name
        assert (start + begin) % WIDTHS[entry["dtype"]] == 0, name
        spans.append((begin, end))
    spans.sort()
    position = 0
    for begin, end in spans:
        assert begin == position
        position = end
    assert start + position == len(raw)
    with safe_open(str(output), framework="pt") as handle:
        assert sorted(handle.keys()) == sorted(k for k in header if k != "__metadata__")
        metadata: dict[str, Any] = handle.metadata() or {}
    return metadata


def leftovers(folder: Path) -> list[str]:
    """Temporary files a failed conversion might have left behind."""
    return sorted(name for name in os.listdir(folder) if name.endswith(".partial"))
