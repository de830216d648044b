"""GGUF: key/values of every type, tensor infos with dims in PyTorch order, bounded lengths and counts."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from readers_helpers import (
    GGUF_ARRAY,
    GGUF_BOOL,
    GGUF_F32,
    GGUF_F64,
    GGUF_I8,
    GGUF_I16,
    GGUF_I32,
    GGUF_I64,
    GGUF_STRING,
    GGUF_U8,
    GGUF_U16,
    GGUF_U32,
    GGUF_U64,
    write_gguf,
)

from modeldex.errors import ReadError
from modeldex.identify.readers import read_header

KVS = [
    ("general.architecture", GGUF_STRING, "flux"),
    ("general.quantization_version", GGUF_U32, 2),
    ("general.file_type", GGUF_U32, 15),
    ("t.u8", GGUF_U8, 255),
    ("t.i8", GGUF_I8, -5),
    ("t.u16", GGUF_U16, 65535),
    ("t.i16", GGUF_I16, -300),
    ("t.i32", GGUF_I32, -70000),
    ("t.f32", GGUF_F32, 0.5),
    ("t.bool", GGUF_BOOL, True),
    ("t.u64", GGUF_U64, 2**40),
    ("t.i64", GGUF_I64, -(2**40)),
    ("t.f64", GGUF_F64, 0.125),
    ("t.names", GGUF_ARRAY, (GGUF_STRING, ["a", "ß", "模型"])),
    ("t.ints", GGUF_ARRAY, (GGUF_I32, [1, -2, 3])),
    ("t.nested", GGUF_ARRAY, (GGUF_ARRAY, [(GGUF_U8, [1, 2]), (GGUF_U8, [])])),
    ("comfy.gguf.orig_shape.img_in.weight", GGUF_ARRAY, (GGUF_I32, [3072, 64])),
]
TENSORS = [
    ("double_blocks.0.img_attn.qkv.weight", [9216, 3072], 12),  # Q4_K
    ("img_in.weight", [3072, 64], 8),  # Q8_0
    ("double_blocks.0.img_attn.norm.key_norm.scale", [128], 0),  # F32
    ("final_layer.linear.weight", [64, 3072], 1),  # F16
    ("guidance_in.in_layer.bias", [3072], 30),  # BF16
]

EXPECTED_KVS = {
    "general.architecture": "flux",
    "general.quantization_version": 2,
    "general.file_type": 15,
    "t.u8": 255,
    "t.i8": -5,
    "t.u16": 65535,
    "t.i16": -300,
    "t.i32": -70000,
    "t.f32": 0.5,
    "t.bool": True,
    "t.u64": 2**40,
    "t.i64": -(2**40),
    "t.f64": 0.125,
    "t.names": ["a", "ß", "模型"],
    "t.ints": [1, -2, 3],
    "t.nested": [[1, 2], []],
    "comfy.gguf.orig_shape.img_in.weight": [3072, 64],
}


@pytest.mark.parametrize(("version", "endian"), [(3, "<"), (2, "<"), (1, "<"), (3, ">")])
def test_reads_kvs_and_tensors(tmp_path: Path, version: int, endian: str) -> None:
    path = tmp_path / "flux1-dev-Q4_K_S.gguf"
    data_start = write_gguf(path, KVS, TENSORS, version=version, endian=endian)

    header = read_header(path)

    assert header.format == "gguf"
    assert header.extra["gguf"] == EXPECTED_KVS
    assert header.extra["gguf_version"] == version
    assert header.extra["data_start"] == data_start
    assert header.metadata == {"general.architecture": "flux"}
    assert {k: (t.shape, t.dtype) for k, t in header.tensors.items()} == {
        "double_blocks.0.img_attn.qkv.weight": ((9216, 3072), "Q4_K"),
        "img_in.weight": ((3072, 64), "Q8_0"),
        "double_blocks.0.img_attn.norm.key_norm.scale": ((128,), "F32"),
        "final_layer.linear.weight": ((64, 3072), "F16"),
        "guidance_in.in_layer.bias": ((3072,), "BF16"),
    }
    offsets = [t.storage_offset for t in header.tensors.values()]
    assert offsets == sorted(offsets) and offsets[0] == 0


def test_custom_alignment(tmp_path: Path) -> None:
    path = tmp_path / "aligned.gguf"
    kvs = [("general.alignment", GGUF_U32, 64)]
    data_start = write_gguf(path, kvs, [("t", [64], 0)], alignment=64)
    assert data_start % 64 == 0
    assert read_header(path).extra["data_start"] == data_start


def test_truncated_data(tmp_path: Path) -> None:
    path = tmp_path / "cut.gguf"
    write_gguf(path, KVS, TENSORS)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 1)
    with pytest.raises(ReadError, match="truncated"):
        read_header(path)


def test_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "cut.gguf"
    write_gguf(path, KVS, TENSORS)
    raw = path.read_bytes()
    path.write_bytes(raw[:200])
    with pytest.raises(ReadError):
        read_header(path)


def _header(kv_count: int = 1, tensor_count: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, tensor_count, kv_count)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # a key whose length is larger than the file
        (_header() + struct.pack("<Q", 2**40), "larger than the rest of the file"),
        # a string value larger than the file
        (_header() + struct.pack("<Q", 1) + b"k" + struct.pack("<IQ", GGUF_STRING, 2**33), "larger than the rest"),
        # an array with more items than the file could hold
        (_header() + struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", GGUF_ARRAY, GGUF_U64, 2**60), "larger than"),
        # an unknown value type
        (_header() + struct.pack("<Q", 1) + b"k" + struct.pack("<I", 99) + b"\x00" * 8, "unknown GGUF value type"),
        # counts no file of this size could hold
        (_header(kv_count=2**50) + b"\x00" * 64, "more than the file holds"),
        (_header(kv_count=0, tensor_count=2**40) + b"\x00" * 64, "more than the file holds"),
        # a tensor with absurd dimensions
        (_header(kv_count=0, tensor_count=1) + struct.pack("<Q", 1) + b"t" + struct.pack("<I", 5000), "dimensions"),
        # unsupported version
        (b"GGUF" + struct.pack("<I", 7) + b"\x00" * 32, "unsupported GGUF version 7"),
    ],
    ids=["key-length", "string-length", "array-length", "value-type", "kv-count", "tensor-count", "n-dims", "version"],
)
def test_bounded(tmp_path: Path, body: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(body)
    with pytest.raises(ReadError, match=message):
        read_header(path)


def test_bad_alignment(tmp_path: Path) -> None:
    path = tmp_path / "bad.gguf"
    write_gguf(path, [("general.alignment", GGUF_U32, 0)], [])
    with pytest.raises(ReadError, match="general.alignment"):
        read_header(path)


def test_unknown_ggml_type_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "future.gguf"
    write_gguf(path, [], [("t", [32], 0)])
    raw = bytearray(path.read_bytes())
    # The type id sits right after the single dim of the only tensor.
    at = raw.index(b"t", 24) + 1 + 4 + 8
    raw[at : at + 4] = struct.pack("<I", 77)
    path.write_bytes(bytes(raw))
    assert read_header(path).tensors["t"].dtype == "GGML_TYPE_77"
