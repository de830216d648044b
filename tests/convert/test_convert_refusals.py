"""What convert refuses: unsafe pickles, damaged files, big-endian files, overwrites; never leaving an output behind."""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from convert_helpers import leftovers, save, sd_like_state

from modeldex.errors import ModeldexError, ReadError, UnsafePickleError, UsageError
from modeldex.identify import safetensors_writer
from modeldex.identify.convert import convert_to_safetensors


class RunsCommand:
    """A pickle payload: unpickling it runs a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_unsafe_pickle_is_refused_and_nothing_runs(tmp_path: Path, legacy: bool) -> None:
    canary = tmp_path / "CANARY"
    checkpoint = {"state_dict": sd_like_state(), "hook": RunsCommand(f"touch {canary}")}
    source = save(checkpoint, tmp_path / "evil.ckpt", legacy=legacy)
    with pytest.raises(UnsafePickleError) as caught:
        convert_to_safetensors(source)
    assert any("system" in name for name in caught.value.globals)
    assert "system" in caught.value.message
    assert not canary.exists()
    assert not (tmp_path / "evil.safetensors").exists()
    assert leftovers(tmp_path) == []


def test_truncated_zip_is_refused_without_output(tmp_path: Path) -> None:
    source = save(sd_like_state(torch.float32), tmp_path / "model.ckpt")
    data = source.read_bytes()
    source.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReadError):
        convert_to_safetensors(source)
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt"]


def test_storage_shorter_than_its_tensor_is_refused(tmp_path: Path) -> None:
    """A zip whose directory is intact but whose storage entry is too short: only the converter can notice."""
    source = save({"w": torch.randn(64, 64)}, tmp_path / "model.pt")
    rewrite_zip(source, lambda name, data: data[:100] if name.endswith("/data/0") else data)
    with pytest.raises(ReadError, match="storage"):
        convert_to_safetensors(source)
    assert sorted(os.listdir(tmp_path)) == ["model.pt"]


def test_truncated_legacy_file_is_refused_without_output(tmp_path: Path) -> None:
    source = save(sd_like_state(torch.float32), tmp_path / "old.pt", legacy=True)
    data = source.read_bytes()
    source.write_bytes(data[:-1000])
    with pytest.raises(ReadError, match="truncated"):
        convert_to_safetensors(source)
    assert sorted(os.listdir(tmp_path)) == ["old.pt"]


def test_big_endian_zip_is_refused(tmp_path: Path) -> None:
    source = save({"w": torch.randn(4, 4)}, tmp_path / "be.pt")
    rewrite_zip(source, lambda name, data: b"big" if name.endswith("/byteorder") else data)
    with pytest.raises(ModeldexError, match="big-endian"):
        convert_to_safetensors(source)
    assert not (tmp_path / "be.safetensors").exists()


def test_big_endian_legacy_file_is_refused(tmp_path: Path) -> None:
    source = save({"w": torch.randn(4, 4)}, tmp_path / "be.pt", legacy=True)
    data = source.read_bytes()
    stream = io.BytesIO(data)
    for _ in range(2):
        pickle.load(stream)
    start = stream.tell()
    for _ in pickletools.genops(stream):
        pass
    sys_info = {"protocol_version": 1001, "little_endian": False, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    source.write_bytes(data[:start] + pickle.dumps(sys_info, protocol=2) + data[stream.tell() :])
    with pytest.raises(ModeldexError, match="big-endian"):
        convert_to_safetensors(source)
    assert not (tmp_path / "be.safetensors").exists()


def test_existing_output_is_kept_unless_overwrite(tmp_path: Path) -> None:
    source = save(sd_like_state(), tmp_path / "model.ckpt")
    existing = tmp_path / "model.safetensors"
    existing.write_bytes(b"precious")
    with pytest.raises(UsageError, match="--force"):
        convert_to_safetensors(source)
    assert existing.read_bytes() == b"precious"
    convert_to_safetensors(source, overwrite=True)
    assert existing.read_bytes()[8:9] == b"{"
    assert leftovers(tmp_path) == []


def test_source_is_never_its_own_output(tmp_path: Path) -> None:
    """A pickle misnamed .safetensors would otherwise be replaced by its conversion."""
    source = save(sd_like_state(), tmp_path / "misnamed.safetensors")
    before = source.read_bytes()
    with pytest.raises(UsageError, match="source file itself"):
        convert_to_safetensors(source, overwrite=True)
    assert source.read_bytes() == before


def test_safetensors_input_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = tmp_path / "already.safetensors"
    save_file({"w": torch.zeros(2)}, str(source))
    with pytest.raises(UsageError, match="not a torch pickle"):
        convert_to_safetensors(source, tmp_path / "again.safetensors")


def test_missing_output_folder_is_a_clear_error(tmp_path: Path) -> None:
    source = save(sd_like_state(), tmp_path / "model.ckpt")
    with pytest.raises(UsageError, match="does not exist"):
        convert_to_safetensors(source, tmp_path / "nowhere" / "x.safetensors")


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, OSError(28, "No space left on device")])
def test_interrupted_write_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interruption: BaseException | type[BaseException]
) -> None:
    source = save(sd_like_state(torch.float32), tmp_path / "model.ckpt")
    calls = 0
    real_copy = safetensors_writer.copy_range

    def failing_copy(*args: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise interruption
        real_copy(*args)

    monkeypatch.setattr(safetensors_writer, "copy_range", failing_copy)
    expected = KeyboardInterrupt if interruption is KeyboardInterrupt else ModeldexError
    with pytest.raises(expected) as caught:
        convert_to_safetensors(source)
    if expected is ModeldexError:
        assert "No space left" in str(caught.value)
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt"]


def test_dtype_safetensors_cannot_store_is_named(tmp_path: Path) -> None:
    source = save({"ok": torch.zeros(2), "complex": torch.zeros(2, dtype=torch.complex128)}, tmp_path / "c.pt")
    with pytest.raises(ModeldexError, match="complex"):
        convert_to_safetensors(source)
    assert sorted(os.listdir(tmp_path)) == ["c.pt"]


def test_plain_pickles_and_inline_numpy_arrays_are_refused_clearly(tmp_path: Path) -> None:
    values_only = tmp_path / "values.pkl"
    values_only.write_bytes(pickle.dumps({"name": "x", "step": 3}))
    with pytest.raises(ModeldexError, match="no tensors"):
        convert_to_safetensors(values_only)
    with_numpy = save({"w": torch.zeros(2), "np": np.zeros(3, dtype=np.float32)}, tmp_path / "np.pt")
    with pytest.raises(ModeldexError, match="numpy"):
        convert_to_safetensors(with_numpy)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"w": np.zeros(3, dtype=np.float32)}))
    with pytest.raises(ModeldexError, match="plain pickle"):
        convert_to_safetensors(plain)
    assert sorted(os.listdir(tmp_path)) == ["np.pt", "plain.pkl", "values.pkl"]


def rewrite_zip(path: Path, change: Callable[[str, bytes], bytes]) -> None:
    """Rebuild a torch zip with one member's bytes changed (stored, like torch writes them)."""
    with zipfile.ZipFile(path) as original:
        members = [(info.filename, original.read(info)) for info in original.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as rebuilt:
        for name, data in members:
            rebuilt.writestr(name, change(name, data))
