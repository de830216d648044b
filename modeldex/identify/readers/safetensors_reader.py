"""safetensors: a little-endian u64 N, N bytes of UTF-8 JSON, then the tensor buffer.

Only the header is read, so the cost does not depend on the file's size. It is validated as strictly as the
reference implementation validates it (size cap, JSON shape, offsets inside the buffer and matching shape x dtype),
so a truncated download is reported rather than half-read.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any, BinaryIO

from modeldex.errors import ReadError
from modeldex.identify.readers.dtypes import SAFETENSORS_BITS
from modeldex.identify.records import Header, TensorInfo

MAX_HEADER_BYTES = 100_000_000
"""The reference implementation's `MAX_HEADER_SIZE`."""


_INT_ONLY = frozenset({int})


def _are_counts(values: list[Any]) -> bool:
    # C-level checks: this runs for every tensor of every file (JSON booleans are not counts).
    return _INT_ONLY.issuperset(map(type, values)) and min(values, default=0) >= 0


def _tensor(name: str, entry: Any, buffer_len: int) -> TensorInfo:
    if not isinstance(entry, dict):
        raise ReadError(f"safetensors header entry {name!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or not isinstance(shape, list) or not isinstance(offsets, list):
        raise ReadError(f"safetensors header entry {name!r} lacks dtype, shape or data_offsets")
    bits = SAFETENSORS_BITS.get(dtype)
    if bits is None:
        raise ReadError(f"tensor {name!r} has the unknown dtype {dtype!r}")
    if not _are_counts(shape):
        raise ReadError(f"tensor {name!r} has an invalid shape {shape!r}")
    if len(offsets) != 2 or not _are_counts(offsets) or offsets[0] > offsets[1]:
        raise ReadError(f"tensor {name!r} has invalid data_offsets {offsets!r}")
    begin, end = offsets
    if end > buffer_len:
        raise ReadError(
            f"truncated: tensor {name!r} ends at byte {end:,} of a {buffer_len:,}-byte buffer (an interrupted download?)"
        )
    numel = math.prod(shape)
    if (numel * bits) % 8 or (numel * bits) // 8 != end - begin:
        raise ReadError(f"tensor {name!r}: {end - begin:,} bytes do not hold shape {shape} of {dtype}")
    return TensorInfo(shape=tuple(shape), dtype=dtype, storage_offset=begin)


def _metadata(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ReadError("the safetensors __metadata__ must map strings to strings")
    return value


def read_safetensors(file: BinaryIO, size: int) -> Header:
    """Read and validate a safetensors header (the file's first 8 + N bytes)."""
    if size < 8:
        raise ReadError(f"truncated: {size} bytes, shorter than a safetensors length prefix")
    file.seek(0)
    (length,) = struct.unpack("<Q", file.read(8))
    if length > MAX_HEADER_BYTES:
        raise ReadError(f"the safetensors header claims {length:,} bytes, over the {MAX_HEADER_BYTES:,}-byte limit")
    if 8 + length > size:
        raise ReadError(
            f"truncated: the safetensors header claims {length:,} bytes but the file has {size:,} (an interrupted download?)"
        )
    raw = file.read(length)
    if len(raw) < length:
        raise ReadError("truncated: the file ended inside the safetensors header")
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ReadError("the safetensors header is not valid UTF-8") from exc
    except (ValueError, RecursionError) as exc:
        raise ReadError("the safetensors header is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise ReadError("the safetensors header is not a JSON object")
    buffer_len = size - 8 - length
    metadata: dict[str, str] = {}
    tensors: dict[str, TensorInfo] = {}
    for name, entry in parsed.items():
        if name == "__metadata__":
            metadata = _metadata(entry)
        else:
            tensors[name] = _tensor(name, entry, buffer_len)
    return Header(format="safetensors", tensors=tensors, metadata=metadata, data_start=8 + length)
