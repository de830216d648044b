"""GGUF (llama.cpp, ComfyUI-GGUF): magic, version, counts, key/values, tensor infos; the tensor data is not read.

Layout (v2/v3; v1 used u32 for counts and lengths): `b"GGUF"`, u32 version, u64 tensor_count, u64 kv_count, then
kv_count x (string key, u32 type, value), then tensor_count x (string name, u32 n_dims, u64 dims[n_dims] in ggml
order, u32 ggml type, u64 offset into the data section), then the data section at the next multiple of
`general.alignment` (32 by default). Every length is checked against the bytes left in the file before anything is
allocated, so a corrupt count cannot make us read or allocate more than the file holds.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

from modeldex.errors import ReadError
from modeldex.identify.records import Header, TensorInfo

GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}
"""ggml type id -> (name, elements per block, bytes per block), from ggml.h and gguf-py's GGML_QUANT_SIZES."""

_SCALARS: dict[int, str] = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_MAX_DIMS = 8
_MAX_ARRAY_NESTING = 4
_MIN_KV_BYTES = 13  # u64 key length + u32 type + a 1-byte value
_MIN_TENSOR_BYTES = 24  # u64 name length + u32 n_dims + u32 type + u64 offset
_CHUNK = 1 << 20


class _Cursor:
    """Sequential reads that never run past the end of the file."""

    def __init__(self, file: BinaryIO, size: int, endian: str, wide: bool) -> None:
        self._file = file
        self.size = size
        self.pos = 0
        self._buf = b""
        self._at = 0
        self.endian = endian
        self._len_fmt = endian + ("Q" if wide else "I")
        self._len_size = 8 if wide else 4

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.size:
            raise ReadError("truncated: the GGUF header runs past the end of the file")
        if self._at + n > len(self._buf):
            rest = self._buf[self._at :]
            more = self._file.read(max(n - len(rest), _CHUNK))
            self._buf, self._at = rest + more, 0
            if len(self._buf) < n:
                raise ReadError("truncated: the file ended inside the GGUF header")
        data = self._buf[self._at : self._at + n]
        self._at += n
        self.pos += n
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(self.endian + fmt, self.take(struct.calcsize(fmt)))[0]

    def length(self) -> int:
        value: int = struct.unpack(self._len_fmt, self.take(self._len_size))[0]
        if value > self.size - self.pos:
            raise ReadError(f"GGUF length {value:,} is larger than the rest of the file: damaged or truncated")
        return value

    def string(self) -> str:
        return self.take(self.length()).decode("utf-8", "replace")


def _value(cur: _Cursor, kind: int, depth: int = 0) -> Any:
    if kind in _SCALARS:
        return cur.unpack(_SCALARS[kind])
    if kind == _STRING:
        return cur.string()
    if kind == _ARRAY:
        if depth >= _MAX_ARRAY_NESTING:
            raise ReadError("GGUF arrays nested too deeply")
        item = cur.unpack("I")
        count = cur.length()
        if item in _SCALARS:
            code = _SCALARS[item]
            width = struct.calcsize(code)
            if count * width > cur.size - cur.pos:
                raise ReadError("a GGUF array is larger than the rest of the file: damaged or truncated")
            return list(struct.unpack(f"{cur.endian}{count}{code}", cur.take(count * width)))
        return [_value(cur, item, depth + 1) for _ in range(count)]
    raise ReadError(f"unknown GGUF value type {kind}")


def _byte_size(type_id: int, shape: tuple[int, ...]) -> int | None:
    info = GGML_TYPES.get(type_id)
    if info is None:
        return None
    _, block, nbytes = info
    numel = 1
    for dim in shape:
        numel *= dim
    return -(-numel // block) * nbytes


def read_gguf(file: BinaryIO, size: int) -> Header:
    """Read a GGUF file's key/values and tensor infos; dims come back in PyTorch order."""
    file.seek(0)
    head = file.read(8)
    if len(head) < 8 or head[:4] != b"GGUF":
        raise ReadError("truncated: too short for a GGUF header")
    version_le, version_be = struct.unpack("<I", head[4:])[0], struct.unpack(">I", head[4:])[0]
    endian, version = ("<", version_le) if version_le in (1, 2, 3) else (">", version_be)
    if version not in (1, 2, 3):
        raise ReadError(f"unsupported GGUF version {version_le}")
    file.seek(0)
    cur = _Cursor(file, size, endian, wide=version >= 2)
    cur.take(8)
    count_fmt = "Q" if version >= 2 else "I"
    tensor_count, kv_count = cur.unpack(count_fmt), cur.unpack(count_fmt)
    if kv_count * _MIN_KV_BYTES > size or tensor_count * _MIN_TENSOR_BYTES > size:
        raise ReadError(
            f"the GGUF header claims {tensor_count:,} tensors and {kv_count:,} values, more than the file holds"
        )

    kvs: dict[str, Any] = {}
    for _ in range(kv_count):
        key = cur.string()
        kvs[key] = _value(cur, cur.unpack("I"))

    alignment = kvs.get("general.alignment", 32)
    if type(alignment) is not int or not 0 < alignment <= 1 << 20:
        raise ReadError(f"invalid GGUF general.alignment {alignment!r}")

    infos: list[tuple[str, tuple[int, ...], int, int]] = []
    for _ in range(tensor_count):
        name = cur.string()
        n_dims = cur.unpack("I")
        if n_dims > _MAX_DIMS:
            raise ReadError(f"GGUF tensor {name!r} claims {n_dims} dimensions")
        dims = struct.unpack(f"{endian}{n_dims}{count_fmt}", cur.take(n_dims * (8 if version >= 2 else 4)))
        infos.append((name, tuple(reversed(dims)), cur.unpack("I"), cur.unpack("Q")))

    data_start = -(-cur.pos // alignment) * alignment
    tensors: dict[str, TensorInfo] = {}
    for name, shape, type_id, offset in infos:
        nbytes = _byte_size(type_id, shape)
        if nbytes is not None and data_start + offset + nbytes > size:
            raise ReadError(
                f"truncated: tensor {name!r} ends past the end of the file ({size:,} bytes; an interrupted download?)"
            )
        dtype = GGML_TYPES[type_id][0] if type_id in GGML_TYPES else f"GGML_TYPE_{type_id}"
        tensors[name] = TensorInfo(shape=shape, dtype=dtype, storage_offset=offset)
    metadata = {k: v for k, v in kvs.items() if isinstance(v, str)}
    extra = {"gguf": kvs, "gguf_version": version, "data_start": data_start}
    return Header(format="gguf", tensors=tensors, metadata=metadata, extra=extra)
