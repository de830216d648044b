"""Everything that is not a readable model gives a `ReadError` with a message a user can act on."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
from readers_helpers import write_safetensors

from modeldex.errors import ReadError
from modeldex.identify.readers import read_header

LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa\n"
    "size 4265146304\n"
)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (LFS_POINTER.encode(), r"Git LFS pointer, not the model: run `git lfs pull`"),
        (b"<!DOCTYPE html>\n<html><head><title>Sign in</title>", r"HTML page \(a login or error page\?\)"),
        (b"\xef\xbb\xbf  <html lang='en'><body>Not found</body></html>", "HTML page"),
        (b'{"error": "Unauthorized: API key required", "code": 401}', "JSON document.*Unauthorized: API key required"),
        (b'[{"message": "x"}]', "JSON document"),
        (b'{"data":{"message": "gone"}}', "JSON document"),  # `{` at byte 8, like a safetensors header
        (b"\x00" * 10_000, "only zero bytes at the start"),
        (b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>", "XML document"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "PNG image"),
        (b"Rar!\x1a\x07\x01\x00" + b"\x00" * 64, "RAR archive: unpack it first"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 64, "gzip"),
        (bytes(range(256)) * 4, "not a model file"),
        (b"Hello, this is a text file about a model.\n" * 20, "not a model file"),
        (b"\x01\x02", "not a model file"),
    ],
    ids=[
        "empty",
        "lfs",
        "html",
        "html-bom",
        "json-error",
        "json-list",
        "json-nested",
        "zeros",
        "xml",
        "png",
        "rar",
        "gzip",
        "bytes",
        "text",
        "tiny",
    ],
)
def test_not_a_model(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(ReadError, match=message):
        read_header(path)


def test_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / "model.safetensors"
    link.symlink_to(tmp_path / "gone.safetensors")
    with pytest.raises(ReadError, match="dangling symlink.*gone.safetensors"):
        read_header(link)


def test_symlink_loop(tmp_path: Path) -> None:
    a, b = tmp_path / "a.ckpt", tmp_path / "b.ckpt"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(ReadError, match="symlink loop"):
        read_header(a)


def test_symlink_to_a_model_is_followed(tmp_path: Path) -> None:
    target = tmp_path / "real.safetensors"
    write_safetensors(target, {"a": ("F16", [2])})
    link = tmp_path / "link.safetensors"
    link.symlink_to(target)
    assert list(read_header(link).tensors) == ["a"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="no such file"):
        read_header(tmp_path / "nope.ckpt")


def test_folder_that_is_not_diffusers(tmp_path: Path) -> None:
    (tmp_path / "loras").mkdir()
    (tmp_path / "loras" / "readme.txt").write_text("hi")
    with pytest.raises(ReadError, match="folder that is not a diffusers model"):
        read_header(tmp_path / "loras")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads everything")
def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "locked.safetensors"
    write_safetensors(path, {"a": ("F16", [2])})
    path.chmod(0)
    try:
        with pytest.raises(ReadError, match="permission denied"):
            read_header(path)
    finally:
        path.chmod(0o644)


def test_permission_denied_on_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.safetensors"
    write_safetensors(path, {"a": ("F16", [2])})

    def refuse(*_args: object, **_kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ReadError, match="permission denied"):
        read_header(path)


def test_io_error_while_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "disk.safetensors"
    write_safetensors(path, {"a": ("F16", [2])})
    real_fdopen = os.fdopen

    class Failing:
        def __init__(self, fd: int) -> None:
            self._file = real_fdopen(fd, "rb")

        def __enter__(self) -> Failing:
            return self

        def __exit__(self, *_exc: object) -> None:
            self._file.close()

        def fileno(self) -> int:
            return self._file.fileno()

        def read(self, _n: int = -1) -> bytes:
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdopen", lambda fd, _mode: Failing(fd))
    with pytest.raises(ReadError, match="could not be read.*Input/output error"):
        read_header(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "model.ckpt"
    os.mkfifo(fifo)
    with pytest.raises(ReadError, match="not a regular file"):
        read_header(fifo)


@pytest.mark.parametrize(
    "name", ["模型 ✨ émoji 🎨.safetensors", "имя с пробелами.safetensors", "a'b\"c $x.safetensors"]
)
def test_names_in_any_script(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_safetensors(path, {"a": ("F16", [2])}, {"title": "名前"})
    header = read_header(path)
    assert header.metadata == {"title": "名前"}


def test_format_comes_from_content_not_extension(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"  # really a safetensors file
    write_safetensors(path, {"a": ("F16", [2])})
    assert read_header(path).format == "safetensors"


def test_json_body_that_looks_like_safetensors_length(tmp_path: Path) -> None:
    # A JSON error body is short text: its first 8 bytes are not a plausible length followed by `{`.
    path = tmp_path / "model.safetensors"
    path.write_text(json.dumps({"detail": "Model not found"}))
    with pytest.raises(ReadError, match="JSON document.*Model not found"):
        read_header(path)
    assert struct.unpack("<Q", path.read_bytes()[:8])[0] > 100_000_000


def _zip_with_flag(path: Path, member: str, *, extra: bool) -> None:
    """A torch-style zip whose `member` has the 'encrypted' flag bit set (zipfile raises a bare RuntimeError on it)."""
    import pickle
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
        zf.writestr("archive/version", "3\n")
        if extra:
            zf.writestr(member, pickle.dumps([1, 2], protocol=2))
    data = bytearray(path.read_bytes())
    name = member.encode()
    # Set bit 0 of the general-purpose flags in both the local header and the central directory entry.
    for signature, flag_offset, name_offset in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        start = 0
        while (pos := data.find(signature, start)) != -1:
            if data[pos + name_offset : pos + name_offset + len(name)] == name:
                data[pos + flag_offset] |= 0x1
            start = pos + 4
    path.write_bytes(bytes(data))


def test_encrypted_data_pkl_is_a_read_error(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    _zip_with_flag(path, "archive/data.pkl", extra=False)
    with pytest.raises(ReadError, match="marked encrypted"):
        read_header(path)


def test_encrypted_extra_pickle_member_does_not_crash(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    _zip_with_flag(path, "archive/extra.pkl", extra=True)
    header = read_header(path)
    assert header.unsafe_globals == []
