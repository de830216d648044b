"""Conversions of safe files made by the real torch.save, checked tensor for tensor against torch.load."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from convert_helpers import (
    assert_same_tensors,
    assert_valid_header,
    flatten,
    leftovers,
    save,
    sd_like_state,
    tricky_state,
)
from safetensors.torch import load_file

from modeldex.identify import safetensors_writer
from modeldex.identify.convert import convert_to_safetensors, default_output


def reference(path: Path, wrapper: str | None = None) -> dict[str, torch.Tensor]:
    loaded = torch.load(path, weights_only=True)
    return flatten(loaded[wrapper] if wrapper else loaded)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.bfloat16], ids=["fp16", "fp32", "bf16"])
def test_sd_like_checkpoint_matches_torch_load(tmp_path: Path, dtype: torch.dtype, legacy: bool) -> None:
    source = save(sd_like_state(dtype), tmp_path / "model.ckpt", legacy=legacy)
    result = convert_to_safetensors(source, durable=False)
    assert result.output == tmp_path / "model.safetensors"
    assert result.tensors == 10
    assert result.bytes_written == result.output.stat().st_size
    assert_same_tensors(result.output, reference(source))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_views_strides_expansions_and_shared_storage(tmp_path: Path, legacy: bool) -> None:
    source = save(tricky_state(), tmp_path / "tricky.pt", legacy=legacy)
    result = convert_to_safetensors(source, durable=False)
    assert_same_tensors(result.output, reference(source))
    assert {"transposed", "stepped", "expanded", "col_block", "permuted4d"} <= set(result.materialised)
    assert "row_view" not in result.materialised  # an offset alone is still one contiguous range


def test_strided_tensors_are_gathered_in_small_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Big views are gathered piece by piece; a tiny chunk size forces every split path on small tensors."""
    monkeypatch.setattr(safetensors_writer, "GATHER_CHUNK_BYTES", 16)
    source = save(tricky_state(), tmp_path / "tricky.pt")
    result = convert_to_safetensors(source, durable=False)
    assert_same_tensors(result.output, reference(source))


def test_plain_read_write_copy_gives_the_same_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the kernel cannot copy_file_range (other OS, odd filesystem) the fallback writes identical bytes."""
    source = save(tricky_state() | sd_like_state(), tmp_path / "m.pt")
    fast = convert_to_safetensors(source, tmp_path / "fast.safetensors", durable=False)
    monkeypatch.setattr(safetensors_writer, "_kernel_copy", False)
    monkeypatch.setattr(safetensors_writer, "COPY_CHUNK_BYTES", 64)
    slow = convert_to_safetensors(source, tmp_path / "slow.safetensors")
    assert fast.output.read_bytes() == slow.output.read_bytes()


def test_dtypes_saved_through_untyped_storages(tmp_path: Path) -> None:
    """float8 and uint16 tensors are pickled with `_rebuild_tensor_v3` over a byte-counted UntypedStorage."""
    gen = torch.Generator().manual_seed(5)
    obj = {
        "f8": torch.randn(4, 6, generator=gen).to(torch.float8_e4m3fn),
        "f8_t": torch.randn(6, 4, generator=gen).to(torch.float8_e5m2).t(),
        "u16": torch.tensor([[1, 2, 60000], [4, 5, 6]], dtype=torch.uint16)[:, 1:],
        "f32": torch.randn(3, generator=gen),
    }
    source = save(obj, tmp_path / "f8.pt")
    result = convert_to_safetensors(source, durable=False)
    got = load_file(result.output)
    for name, tensor in torch.load(source, weights_only=True).items():
        assert got[name].dtype == tensor.dtype and got[name].shape == tensor.shape, name
        assert torch.equal(got[name].view(torch.uint8), tensor.contiguous().view(torch.uint8)), name
    assert_valid_header(result.output)


def test_zip64_entries(tmp_path: Path) -> None:
    """Files over 4 GB use zip64 records; their local headers carry an extra field the offsets must skip."""
    source = save(tricky_state(), tmp_path / "m.pt")
    expected = reference(source)
    with zipfile.ZipFile(source) as original:
        members = [(info.filename, original.read(info)) for info in original.infolist()]
    with zipfile.ZipFile(source, "w", compression=zipfile.ZIP_STORED) as rebuilt:
        for name, data in members:
            with rebuilt.open(name, "w", force_zip64=True) as entry:
                entry.write(data)
    raw = source.read_bytes()
    with zipfile.ZipFile(source) as check:
        for info in check.infolist():
            extra_len = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
            assert extra_len >= 20, info.filename
    result = convert_to_safetensors(source, durable=False)
    assert_same_tensors(result.output, expected)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_lightning_wrapper_is_unwrapped_and_values_kept_as_metadata(tmp_path: Path, legacy: bool) -> None:
    checkpoint = {
        "state_dict": sd_like_state(),
        "global_step": 470000,
        "epoch": 6,
        "pytorch-lightning_version": "1.9.4",
        "note": "trained on ümlauts",
        "lr": 1.5e-6,
    }
    source = save(checkpoint, tmp_path / "v1-5.ckpt", legacy=legacy)
    result = convert_to_safetensors(source, durable=False)
    assert result.wrapper == "state_dict"
    assert_same_tensors(result.output, reference(source, "state_dict"))
    metadata = assert_valid_header(result.output)
    assert metadata["global_step"] == "470000"
    assert metadata["epoch"] == "6"
    assert metadata["pytorch-lightning_version"] == "1.9.4"
    assert metadata["note"] == "trained on ümlauts"
    assert float(metadata["lr"]) == 1.5e-6
    assert metadata["format"] == "pt"


def test_nested_dicts_and_lists_are_flattened_like_the_reader(tmp_path: Path) -> None:
    """IP-Adapter-style nesting and a hypernetwork-style list of tensors."""
    gen = torch.Generator().manual_seed(3)
    obj = {
        "image_proj": {"proj.weight": torch.randn(16, 8, generator=gen), "norm.bias": torch.randn(16, generator=gen)},
        "ip_adapter": {"1.to_k_ip.weight": torch.randn(8, 8, generator=gen).half()},
        "layers": [torch.randn(4, 4, generator=gen), torch.randn(4, generator=gen)],
    }
    source = save(obj, tmp_path / "ip-adapter.bin")
    result = convert_to_safetensors(source, durable=False)
    expected = reference(source)
    assert "image_proj.proj.weight" in expected and "layers.1" in expected
    assert_same_tensors(result.output, expected)


def test_bare_tensor_keeps_the_reader_key(tmp_path: Path) -> None:
    tensor = torch.randn(3, 5, generator=torch.Generator().manual_seed(4)).t()
    source = save(tensor, tmp_path / "bare.pt")
    result = convert_to_safetensors(source, durable=False)
    assert_same_tensors(result.output, {"": torch.load(source, weights_only=True)})


def test_output_may_be_a_folder_or_another_name(tmp_path: Path) -> None:
    source = save(sd_like_state(), tmp_path / "model.pth")
    folder = tmp_path / "out"
    folder.mkdir()
    into_folder = convert_to_safetensors(source, folder, durable=False)
    assert into_folder.output == folder / "model.safetensors"
    named = convert_to_safetensors(source, tmp_path / "renamed.safetensors", durable=False)
    assert named.output.read_bytes() == into_folder.output.read_bytes()
    assert default_output(source) == tmp_path / "model.safetensors"
    assert leftovers(tmp_path) == [] and leftovers(folder) == []


def test_conversion_imports_no_torch(tmp_path: Path) -> None:
    """The promise of the command: torch is not needed (here it is made unimportable) and never loaded."""
    source = save(tricky_state(), tmp_path / "m.pt")
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from pathlib import Path\n"
        "from modeldex.identify.convert import convert_to_safetensors\n"
        f"result = convert_to_safetensors(Path({str(source)!r}))\n"
        "print(result.tensors)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(len(tricky_state()))
    assert_same_tensors(tmp_path / "m.safetensors", reference(source))
