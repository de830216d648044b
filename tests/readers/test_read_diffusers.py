"""diffusers folders: components, configs, shards, variants, `.bin` weights through the safe pickle path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from readers_helpers import RunsCommand, touch_command, write_safetensors

from modeldex.errors import ReadError
from modeldex.identify.readers import read_header

MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.30.0",
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "scheduler": ["diffusers", "PNDMScheduler"],
    "safety_checker": [None, None],
    "feature_extractor": [None, None],
}


def make_pipeline(root: Path) -> Path:
    root.mkdir()
    (root / "model_index.json").write_text(json.dumps(MODEL_INDEX))
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "safety_checker"):
        (root / name).mkdir()
    (root / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel", "in_channels": 4}))
    write_safetensors(
        root / "unet" / "diffusion_pytorch_model.safetensors",
        {"conv_in.weight": ("F32", [320, 4, 3, 3]), "conv_in.bias": ("F32", [320])},
    )
    write_safetensors(  # a variant next to the plain file: the plain one wins
        root / "unet" / "diffusion_pytorch_model.fp16.safetensors", {"conv_in.weight": ("F16", [320, 4, 3, 3])}
    )
    (root / "vae" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    write_safetensors(  # only a variant
        root / "vae" / "diffusion_pytorch_model.fp16.safetensors", {"decoder.conv_in.weight": ("F16", [512, 4, 3, 3])}
    )
    (root / "text_encoder" / "config.json").write_text(json.dumps({"architectures": ["CLIPTextModel"]}))
    torch.save(
        {"text_model.embeddings.token_embedding.weight": torch.zeros(1, dtype=torch.float16).expand(49408, 768)},
        root / "text_encoder" / "pytorch_model.bin",
    )
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "PNDMScheduler"}))
    (root / "tokenizer" / "vocab.json").write_text("{}")
    return root


def test_pipeline_folder(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "stable-diffusion-v1-5")

    header = read_header(root)

    assert header.format == "diffusers"
    assert {k: (v.shape, v.dtype) for k, v in header.tensors.items()} == {
        "unet/conv_in.weight": ((320, 4, 3, 3), "F32"),
        "unet/conv_in.bias": ((320,), "F32"),
        "vae/decoder.conv_in.weight": ((512, 4, 3, 3), "F16"),
        "text_encoder/text_model.embeddings.token_embedding.weight": ((49408, 768), "F16"),
    }
    assert header.extra["model_index"] == MODEL_INDEX
    assert set(header.extra["configs"]) == {"unet", "vae", "text_encoder", "scheduler"}
    assert header.extra["configs"]["unet"]["in_channels"] == 4
    assert header.extra["files"]["unet"] == ["unet/diffusion_pytorch_model.safetensors"]
    assert header.extra["files"]["tokenizer"] == []
    assert header.unsafe_globals == []


def test_sharded_component(tmp_path: Path) -> None:
    root = tmp_path / "flux-transformer"
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"_class_name": "FluxTransformer2DModel"}))
    write_safetensors(
        root / "diffusion_pytorch_model-00001-of-00002.safetensors", {"x_embedder.weight": ("BF16", [3072, 64])}
    )
    write_safetensors(
        root / "diffusion_pytorch_model-00002-of-00002.safetensors", {"proj_out.weight": ("BF16", [64, 3072])}
    )
    index = {
        "metadata": {"total_size": 1},
        "weight_map": {
            "x_embedder.weight": "diffusion_pytorch_model-00001-of-00002.safetensors",
            "proj_out.weight": "diffusion_pytorch_model-00002-of-00002.safetensors",
        },
    }
    (root / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))

    header = read_header(root)

    assert sorted(header.tensors) == ["proj_out.weight", "x_embedder.weight"]  # one component: keys stay bare
    assert header.extra["configs"] == {"": {"_class_name": "FluxTransformer2DModel"}}
    assert header.extra["model_index"] is None


def test_missing_shard(tmp_path: Path) -> None:
    root = tmp_path / "te"
    root.mkdir()
    (root / "config.json").write_text("{}")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors"}}
    (root / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(
        ReadError, match="model-00001-of-00002.safetensors, listed in model.safetensors.index.json, is missing"
    ):
        read_header(root)


def test_shard_names_cannot_escape_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "te"
    root.mkdir()
    (root / "config.json").write_text("{}")
    (root / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "../../etc/passwd"}}))
    with pytest.raises(ReadError, match="no usable weight_map"):
        read_header(root)


def test_component_error_names_the_file(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "pipe")
    weights = root / "unet" / "diffusion_pytorch_model.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size - 1)
    with pytest.raises(ReadError, match=r"^unet/diffusion_pytorch_model.safetensors: truncated"):
        read_header(root)


def test_unsafe_bin_component(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "pipe")
    canary = tmp_path / "CANARY"
    torch.save({"w": RunsCommand(touch_command(canary))}, root / "text_encoder" / "pytorch_model.bin")
    header = read_header(root)
    assert header.unsafe_globals and header.unsafe_globals[0].endswith(".system")
    assert not canary.exists()


def test_bad_model_index(tmp_path: Path) -> None:
    root = tmp_path / "pipe"
    root.mkdir()
    (root / "model_index.json").write_text("{not json")
    with pytest.raises(ReadError, match="model_index.json is not valid JSON"):
        read_header(root)


def test_config_without_weights_is_not_a_model(tmp_path: Path) -> None:
    root = tmp_path / "scheduler"
    root.mkdir()
    (root / "config.json").write_text("{}")
    with pytest.raises(ReadError, match="not a diffusers model"):
        read_header(root)
