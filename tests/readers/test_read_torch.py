"""torch.save files (zip and legacy) and plain pickles: what the restricted unpickler reads must match torch.load."""

from __future__ import annotations

import argparse
import pickle
import sys
import types
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from readers_helpers import cheap, rewrite_zip, torch_save, zip_prefix

from modeldex.errors import ReadError
from modeldex.identify.readers import read_header
from modeldex.identify.readers.dtypes import TORCH_DTYPES
from modeldex.identify.records import Header

LAYOUTS = [False, True]
LAYOUT_IDS = ["zip", "legacy"]


def torch_dtype_name(dtype: torch.dtype) -> str:
    return TORCH_DTYPES[str(dtype).removeprefix("torch.")]


def assert_matches_torch(header: Header, reference: dict[str, torch.Tensor]) -> None:
    assert set(header.tensors) == set(reference)
    for key, tensor in reference.items():
        info = header.tensors[key]
        assert info.shape == tuple(tensor.shape), key
        assert info.dtype == torch_dtype_name(tensor.dtype), key
        assert info.stride == tuple(tensor.stride()), key
        assert info.storage_offset == tensor.storage_offset(), key
        assert info.storage_key is not None


@pytest.mark.parametrize("legacy", LAYOUTS, ids=LAYOUT_IDS)
def test_lightning_checkpoint_matches_torch_load(
    tmp_path: Path, sd1_state: OrderedDict[str, torch.Tensor], legacy: bool
) -> None:
    path = torch_save(
        {"state_dict": sd1_state, "global_step": 470000, "epoch": 6, "pytorch-lightning_version": "1.4.2"},
        tmp_path / "sd-v1-5.ckpt",
        legacy=legacy,
    )
    header = read_header(path)

    loaded = torch.load(path, weights_only=True)
    assert header.format == "pickle"
    assert header.unsafe_globals == []
    assert header.wrapper == "state_dict"
    assert_matches_torch(header, loaded["state_dict"])
    assert header.extra["values"] == {"global_step": 470000, "epoch": 6, "pytorch-lightning_version": "1.4.2"}
    assert header.extra["container"] == ("torch_legacy" if legacy else "torch_zip")
    if not legacy:
        assert header.extra["zip_prefix"] == zip_prefix(path) == "sd-v1-5"
    keys = {info.storage_key for info in header.tensors.values()}
    assert keys == set(header.extra["storages"])


DTYPES = [
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
    torch.complex64,
    torch.float8_e4m3fn,
    torch.float8_e5m2,
    torch.uint16,
]


@pytest.mark.parametrize("legacy", LAYOUTS, ids=LAYOUT_IDS)
def test_every_dtype_views_and_parameters(tmp_path: Path, legacy: bool) -> None:
    base = torch.arange(24, dtype=torch.float32)
    tagged = torch.zeros(3)
    tagged.note = "has python state"  # type: ignore[attr-defined]  # pickled through _rebuild_from_type_v2
    state: dict[str, Any] = {f"t_{str(d).removeprefix('torch.')}": torch.zeros(2, 3).to(d) for d in DTYPES}
    state |= {
        "view": base[4:10],
        "whole": base,
        "transposed": base.view(4, 6).t(),
        "param": torch.nn.Parameter(torch.ones(5, 2)),
        "tagged": tagged,
        "scalar": torch.tensor(3.5),
    }
    if legacy:  # the legacy format predates the dtypes that need _rebuild_tensor_v3
        state = {k: v for k, v in state.items() if "float8" not in k and "uint16" not in k}
    path = torch_save(state, tmp_path / "dtypes.pt", legacy=legacy)

    header = read_header(path)

    assert header.unsafe_globals == []
    assert_matches_torch(header, torch.load(path, weights_only=True))
    assert header.tensors["view"].storage_key == header.tensors["whole"].storage_key
    assert header.tensors["view"].storage_offset == 4
    assert header.tensors["transposed"].stride == (1, 6)
    assert header.tensors["scalar"].shape == ()


def test_legacy_storage_offsets_point_at_the_data(tmp_path: Path) -> None:
    state = {"a": torch.arange(6, dtype=torch.int64), "b": torch.full((3, 2), 7, dtype=torch.int16)}
    path = torch_save(state, tmp_path / "old.pt", legacy=True)
    header = read_header(path)
    raw = path.read_bytes()
    for key, tensor in state.items():
        info = header.tensors[key]
        storage = header.extra["storages"][info.storage_key]
        start = storage["data_offset"]
        assert int.from_bytes(raw[start - 8 : start], "little") == storage["numel"]
        width = tensor.element_size()
        assert raw[start : start + tensor.numel() * width] == tensor.numpy().tobytes()


def test_legacy_truncated(tmp_path: Path) -> None:
    path = torch_save({"a": torch.zeros(1000)}, tmp_path / "old.pt", legacy=True)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 10)
    with pytest.raises(ReadError, match="truncated"):
        read_header(path)


def test_zip_truncated(tmp_path: Path) -> None:
    path = torch_save({"a": torch.zeros(1000)}, tmp_path / "new.pt")
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(ReadError, match="damaged or truncated zip"):
        read_header(path)


def test_zip_missing_storage(tmp_path: Path) -> None:
    source = torch_save({"a": torch.zeros(10)}, tmp_path / "src.pt")
    target = tmp_path / "broken.pt"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            if "/data/" not in info.filename:
                dst.writestr(info.filename, src.read(info))
    with pytest.raises(ReadError, match="missing from the archive"):
        read_header(target)


def test_zip_without_data_pkl(tmp_path: Path) -> None:
    path = tmp_path / "pack.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
        zf.writestr("lora.safetensors", b"x" * 100)
    with pytest.raises(ReadError, match="not a torch checkpoint.*unpack it first"):
        read_header(path)


def test_damaged_data_pkl(tmp_path: Path) -> None:
    source = torch_save({"a": torch.zeros(10)}, tmp_path / "src.pt")
    target = tmp_path / "damaged.pt"
    name = f"{zip_prefix(source)}/data.pkl"
    with zipfile.ZipFile(source) as zf:
        data = zf.read(name)
    rewrite_zip(source, target, {name: data[: len(data) // 2]})
    with pytest.raises(ReadError, match="data.pkl is damaged or truncated"):
        read_header(target)


# --- wrappers and flattening --------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrapper", ["model", "module", "net", "params", "model_state_dict", "state_dict"])
def test_wrappers_are_unwrapped(tmp_path: Path, wrapper: str) -> None:
    path = torch_save({wrapper: {"conv.weight": cheap([8, 3, 3, 3])}, "epoch": 3}, tmp_path / "w.pth")
    header = read_header(path)
    assert header.wrapper == wrapper
    assert list(header.tensors) == ["conv.weight"]
    assert header.extra["values"] == {"epoch": 3}


def test_ema_params_preferred_and_module_prefix_stripped(tmp_path: Path) -> None:
    state = {
        "params": {"module.body.0.weight": cheap([64, 3, 3, 3])},
        "params_ema": {"module.body.0.weight": cheap([64, 3, 3, 3]), "module.body.1.weight": cheap([64])},
    }
    header = read_header(torch_save(state, tmp_path / "RealESRGAN_x4plus.pth"))
    assert header.wrapper == "params_ema"
    assert sorted(header.tensors) == ["body.0.weight", "body.1.weight"]
    assert header.extra["skipped_keys"] == ["params"]


def test_a1111_embedding(tmp_path: Path) -> None:
    embedding = {
        "string_to_token": {"*": 265},
        "string_to_param": {"*": torch.zeros(2, 768)},
        "name": "bad-hands-5",
        "step": 1500,
        "sd_checkpoint": "81761151",
        "sd_checkpoint_name": "v1-5-pruned-emaonly",
    }
    header = read_header(torch_save(embedding, tmp_path / "bad-hands-5.pt"))
    assert header.wrapper is None
    assert list(header.tensors) == ["string_to_param.*"]
    assert header.tensors["string_to_param.*"].shape == (2, 768)
    assert header.extra["values"] == {
        "string_to_token": {"*": 265},
        "name": "bad-hands-5",
        "step": 1500,
        "sd_checkpoint": "81761151",
        "sd_checkpoint_name": "v1-5-pruned-emaonly",
    }


def test_original_textual_inversion_parameter_dict(tmp_path: Path) -> None:
    embedding = {
        "string_to_token": {"*": torch.tensor(265)},
        "string_to_param": torch.nn.ParameterDict({"*": torch.nn.Parameter(torch.zeros(1, 768))}),
    }
    header = read_header(torch_save(embedding, tmp_path / "style.pt"))
    assert header.unsafe_globals == []
    assert header.tensors["string_to_param.*"].shape == (1, 768)
    assert header.tensors["string_to_token.*"].shape == ()


def test_hypernetwork(tmp_path: Path) -> None:
    def layer(width: int) -> OrderedDict[str, torch.Tensor]:
        return OrderedDict(
            [
                ("linear.0.weight", torch.zeros(width * 2, width)),
                ("linear.0.bias", torch.zeros(width * 2)),
                ("linear.1.weight", torch.zeros(width, width * 2)),
                ("linear.1.bias", torch.zeros(width)),
            ]
        )

    hypernetwork: dict[Any, Any] = {size: (layer(size), layer(size)) for size in (320, 640, 768, 1280)}
    hypernetwork |= {
        "step": 4000,
        "name": "anime_3",
        "layer_structure": [1, 2, 1],
        "activation_func": "linear",
        "is_layer_norm": False,
        "use_dropout": False,
        "sd_checkpoint": None,
    }
    header = read_header(torch_save(hypernetwork, tmp_path / "anime_3.pt"))
    assert header.tensors["768.0.linear.0.weight"].shape == (1536, 768)
    assert header.tensors["1280.1.linear.1.bias"].shape == (1280,)
    assert len(header.tensors) == 4 * 2 * 4
    assert header.extra["values"]["layer_structure"] == [1, 2, 1]
    assert header.extra["values"]["activation_func"] == "linear"
    assert header.extra["values"]["sd_checkpoint"] is None


def test_ip_adapter_bin(tmp_path: Path) -> None:
    state = {
        "image_proj": {"proj.weight": cheap([3072, 1024]), "norm.weight": cheap([768])},
        "ip_adapter": {"1.to_k_ip.weight": cheap([320, 768]), "1.to_v_ip.weight": cheap([320, 768])},
    }
    header = read_header(torch_save(state, tmp_path / "ip-adapter_sd15.bin"))
    assert header.wrapper is None
    assert sorted(header.tensors) == [
        "image_proj.norm.weight",
        "image_proj.proj.weight",
        "ip_adapter.1.to_k_ip.weight",
        "ip_adapter.1.to_v_ip.weight",
    ]
    assert header.tensors["ip_adapter.1.to_k_ip.weight"].shape == (320, 768)


@pytest.mark.parametrize("legacy", LAYOUTS, ids=LAYOUT_IDS)
def test_aesthetic_gradient_bare_tensor(tmp_path: Path, legacy: bool) -> None:
    header = read_header(torch_save(torch.zeros(1, 768), tmp_path / "laion_7plus.pt", legacy=legacy))
    assert list(header.tensors) == [""]
    assert header.tensors[""].shape == (1, 768)


@pytest.fixture
def fake_lightning() -> Iterator[type]:
    """A class that pickles as pytorch_lightning's ModelCheckpoint, without installing Lightning."""
    names = ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint"]
    modules = {name: types.ModuleType(name) for name in names}

    class ModelCheckpoint:
        def __init__(self) -> None:
            self.monitor = "val/loss"
            self.best_model_score = torch.tensor(0.25)

    ModelCheckpoint.__module__ = names[-1]
    ModelCheckpoint.__qualname__ = "ModelCheckpoint"
    modules[names[-1]].ModelCheckpoint = ModelCheckpoint  # type: ignore[attr-defined]
    saved = {name: sys.modules.get(name) for name in names}
    sys.modules.update(modules)
    try:
        yield ModelCheckpoint
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def test_lightning_callbacks_and_optimizer_states_are_skipped(tmp_path: Path, fake_lightning: type) -> None:
    checkpoint = {
        "state_dict": {"model.diffusion_model.out.2.weight": cheap([4, 320, 3, 3])},
        "callbacks": {"ModelCheckpoint{'monitor': 'val/loss'}": fake_lightning()},
        "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(3)}}}],
        "hyper_parameters": {"args": argparse.Namespace(lr=1e-4)},
        "global_step": 10,
        "best": np.float64(0.5),
    }
    header = read_header(torch_save(checkpoint, tmp_path / "last.ckpt"))
    assert header.unsafe_globals == []
    assert list(header.tensors) == ["model.diffusion_model.out.2.weight"]
    assert header.extra["values"] == {"global_step": 10, "best": 0.5}
    assert sorted(header.extra["skipped_keys"]) == ["callbacks", "hyper_parameters", "optimizer_states"]


def test_numpy_array_in_pickle(tmp_path: Path) -> None:
    header = read_header(torch_save({"mean": np.zeros((2, 3), np.float16), "n": np.int64(7)}, tmp_path / "np.pt"))
    assert header.unsafe_globals == []
    assert header.tensors["mean"].shape == (2, 3)
    assert header.tensors["mean"].dtype == "F16"
    assert header.tensors["mean"].storage_key is None
    assert header.extra["values"] == {"n": 7}


@pytest.mark.parametrize("protocol", [0, 1, 2, 4, 5])
def test_plain_pickle(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "config.pkl"
    path.write_bytes(pickle.dumps({"lr": 0.1, "tags": {"a", "b"}, "layers": [1, 2]}, protocol=protocol))
    header = read_header(path)
    assert header.format == "pickle"
    assert header.extra["container"] == "pickle"
    assert header.unsafe_globals == []
    assert header.extra["values"] == {"lr": 0.1, "layers": [1, 2]}
    assert header.extra["skipped_keys"] == ["tags"]
