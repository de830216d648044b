"""Converting the project's realistic fixture files (tests/factory.py): A1111 embeddings and hypernetworks, wrapped
upscalers, IP-Adapter `.bin`, a bare tensor; and refusing every malicious pickle the factory makes.

The factory builds tensors as stride-0 expansions of one zero per dtype, so every tensor here is materialised.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from convert_helpers import assert_same_tensors, assert_valid_header, flatten, leftovers
from factory import ModelFactory

from modeldex.errors import UnsafePickleError
from modeldex.identify.convert import convert_to_safetensors


def test_a1111_embedding_keeps_its_values_as_metadata(factory: ModelFactory) -> None:
    source = factory.embedding("sd1", style="a1111")
    result = convert_to_safetensors(source, durable=False)
    loaded = torch.load(source, weights_only=True)
    assert_same_tensors(result.output, flatten(loaded))
    metadata = assert_valid_header(result.output)
    assert metadata["name"] == "my-style"
    assert metadata["step"] == "1500"
    assert json.loads(metadata["string_to_token"]) == {"*": 265}
    assert metadata["sd_checkpoint_name"] == "v1-5-pruned-emaonly"


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_hypernetwork_int_keys_and_lists(factory: ModelFactory, legacy: bool) -> None:
    source = factory.hypernetwork("sd1", legacy=legacy)
    result = convert_to_safetensors(source, durable=False)
    expected = flatten(torch.load(source, weights_only=True))
    assert "768.1.linear.0.weight" in expected
    assert_same_tensors(result.output, expected)
    metadata = assert_valid_header(result.output)
    assert json.loads(metadata["layer_structure"]) == [1, 2, 1]
    assert metadata["activation_func"] == "linear"
    assert metadata["is_layer_norm"] == "false"


def test_params_ema_wrapper_is_unwrapped(factory: ModelFactory) -> None:
    source = factory.upscaler("compact")
    result = convert_to_safetensors(source, durable=False)
    assert result.wrapper == "params_ema"
    assert_same_tensors(result.output, flatten(torch.load(source, weights_only=True)["params_ema"]))


def test_ip_adapter_bin_and_bare_tensor(factory: ModelFactory) -> None:
    ip_adapter = factory.ip_adapter("sd1", fmt="bin")
    assert_same_tensors(
        convert_to_safetensors(ip_adapter, durable=False).output, flatten(torch.load(ip_adapter, weights_only=True))
    )
    bare = factory.aesthetic_gradient()
    assert_same_tensors(convert_to_safetensors(bare, durable=False).output, {"": torch.load(bare, weights_only=True)})


@pytest.mark.parametrize("style", ["zip", "legacy", "raw"])
def test_factory_malicious_pickles_are_refused(factory: ModelFactory, tmp_path: Path, style: str) -> None:
    canary = tmp_path / "CANARY"
    source = factory.malicious_pickle(canary, style=style)
    with pytest.raises(UnsafePickleError) as caught:
        convert_to_safetensors(source)
    assert any("system" in name for name in caught.value.globals)
    assert not canary.exists()
    assert os.listdir(source.parent) == [source.name]
    assert leftovers(source.parent) == []
