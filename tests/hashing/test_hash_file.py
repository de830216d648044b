"""hash_file against hashlib, zlib and blake3 computed independently, at many sizes and chunk sizes."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from pathlib import Path

import blake3
import pytest

from modeldex.errors import ReadError
from modeldex.identify.hashing import AUTOV1_LENGTH, AUTOV1_OFFSET, FileHashes, autov3_matches, hash_file


def reference(data: bytes, autov3_start: int | None = None) -> dict[str, str | None]:
    """The hashes the slow obvious way, the data all in memory."""
    sha = hashlib.sha256(data).hexdigest()
    return {
        "sha256": sha,
        "autov1": hashlib.sha256(data[AUTOV1_OFFSET : AUTOV1_OFFSET + AUTOV1_LENGTH]).hexdigest()[:8],
        "autov2": sha[:10],
        "autov3": None if autov3_start is None else hashlib.sha256(data[autov3_start:]).hexdigest(),
        "crc32": format(zlib.crc32(data), "08x"),
        "blake3": blake3.blake3(data).hexdigest(),
    }


def safetensors_bytes(payload: bytes, metadata: dict[str, str] | None = None) -> tuple[bytes, int]:
    """A valid safetensors file holding `payload` as one U8 tensor; returns the bytes and the data offset."""
    header: dict[str, object] = {"t": {"dtype": "U8", "shape": [len(payload)], "data_offsets": [0, len(payload)]}}
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + payload, 8 + len(raw)


SIZES = [0, 1, 8, 9, 4095, AUTOV1_OFFSET - 1, AUTOV1_OFFSET, AUTOV1_OFFSET + 1, 0x108000, 0x110000, 0x110001, 0x2F0123]


@pytest.fixture(scope="module")
def noise() -> bytes:
    return os.urandom(max(SIZES))


def size_and_chunk(sizes: list[int], chunks: list[int]) -> list[tuple[int, int]]:
    """Every pair but tiny chunks over big files (slow, and nothing the small files do not cover)."""
    return [(size, chunk) for size in sizes for chunk in chunks if not (chunk < 4096 and size > 0x10000)]


@pytest.mark.parametrize(("size", "chunk_size"), size_and_chunk(SIZES, [7, 4096, 0x10000 + 3, 1 << 20, 4 << 20]))
def test_matches_reference(tmp_path: Path, noise: bytes, size: int, chunk_size: int) -> None:
    data = noise[:size]
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    expected = reference(data)
    for threaded in (False, True):
        got = hash_file(path, chunk_size=chunk_size, threaded=threaded)
        assert got.to_json() == expected, (size, chunk_size, threaded)


def test_small_file_autov1_is_hash_of_what_is_there(tmp_path: Path) -> None:
    # A1111 seeks past the end and hashes the empty read: every file under 1 MiB shares this AutoV1.
    path = tmp_path / "small.bin"
    path.write_bytes(b"x" * 1000)
    assert hash_file(path).autov1 == hashlib.sha256(b"").hexdigest()[:8] == "e3b0c442"


def test_known_vectors(tmp_path: Path) -> None:
    path = tmp_path / "abc.txt"
    path.write_bytes(b"abc")
    got = hash_file(path)
    assert got.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert got.autov2 == "ba7816bf8f"
    assert got.crc32 == "352441c2"
    assert got.blake3 == "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"


def test_crc32_is_zero_padded(tmp_path: Path) -> None:
    # Search for a short input whose CRC32 has a leading zero nibble, then check the hex keeps it.
    data = next(i.to_bytes(4, "little") for i in range(10_000) if zlib.crc32(i.to_bytes(4, "little")) < 0x10000000)
    path = tmp_path / "z.bin"
    path.write_bytes(data)
    crc = hash_file(path).crc32
    assert len(crc) == 8 and crc.startswith("0") and int(crc, 16) == zlib.crc32(data)


@pytest.mark.parametrize(("payload_size", "chunk_size"), size_and_chunk([0, 1, 5000, 0x120000], [7, 100, 1 << 20]))
def test_autov3_is_sha256_after_the_header(tmp_path: Path, noise: bytes, payload_size: int, chunk_size: int) -> None:
    data, start = safetensors_bytes(noise[:payload_size], {"ss_output_name": "demo"})
    path = tmp_path / "lora.safetensors"
    path.write_bytes(data)
    for threaded in (False, True):
        got = hash_file(path, autov3=True, chunk_size=chunk_size, threaded=threaded)
        assert got.to_json() == reference(data, autov3_start=start)


def test_autov3_survives_a_metadata_edit(tmp_path: Path, noise: bytes) -> None:
    a, _ = safetensors_bytes(noise[:3000], {"ss_output_name": "one"})
    b, _ = safetensors_bytes(noise[:3000], {"ss_output_name": "a much longer name", "extra": "x"})
    (tmp_path / "a.safetensors").write_bytes(a)
    (tmp_path / "b.safetensors").write_bytes(b)
    ha = hash_file(tmp_path / "a.safetensors", autov3=True)
    hb = hash_file(tmp_path / "b.safetensors", autov3=True)
    assert ha.sha256 != hb.sha256
    assert ha.autov3 == hb.autov3 is not None


def test_autov3_only_when_asked(tmp_path: Path) -> None:
    data, _ = safetensors_bytes(b"\x01" * 100)
    path = tmp_path / "x.safetensors"
    path.write_bytes(data)
    assert hash_file(path).autov3 is None
    assert hash_file(path, autov3=True).autov3 is not None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{}",
        b"PK\x03\x04" + b"\x00" * 200,  # a zip (torch pickle)
        struct.pack("<Q", 10_000) + b"{" + b"\x00" * 50,  # header longer than the file
        struct.pack("<Q", 4) + b"[1] ",  # JSON but not an object
    ],
)
def test_autov3_is_none_for_files_that_are_not_safetensors(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "not.safetensors"
    path.write_bytes(data)
    got = hash_file(path, autov3=True, chunk_size=3)
    assert got.autov3 is None
    assert got.sha256 == hashlib.sha256(data).hexdigest()


def test_autov3_matches_prefix_any_case() -> None:
    full = "6d6c3b9e1f20" + "a" * 52
    assert autov3_matches(full, "6D6C3B9E1F20")
    assert autov3_matches(full, full.upper())
    assert not autov3_matches(full, "6d6c3b9e1f21")
    assert not autov3_matches(full, "")


def test_hashes_are_lower_case_hex(tmp_path: Path, noise: bytes) -> None:
    data, _ = safetensors_bytes(noise[:50_000])
    path = tmp_path / "x.safetensors"
    path.write_bytes(data)
    got = hash_file(path, autov3=True)
    assert isinstance(got, FileHashes)
    lengths = {"sha256": 64, "autov1": 8, "autov2": 10, "autov3": 64, "crc32": 8, "blake3": 64}
    for name, value in got.to_json().items():
        assert value is not None and len(value) == lengths[name]
        assert value == value.lower() and int(value, 16) >= 0


def test_missing_file_is_a_read_error(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="cannot read"):
        hash_file(tmp_path / "gone.safetensors")


def test_folder_is_a_read_error(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="folder"):
        hash_file(tmp_path)


def test_unreadable_file_is_a_read_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.bin"
    path.write_bytes(b"abc")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as a user that reads anything (root)")
        with pytest.raises(ReadError):
            hash_file(path)
    finally:
        path.chmod(0o644)


def test_rejects_bad_chunk_size(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a")
    with pytest.raises(ValueError):
        hash_file(path, chunk_size=0)
