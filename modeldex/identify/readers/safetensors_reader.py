"""safetensors: a little-endian u64 N, N bytes of UTF-8 JSON, then the tensor buffer.

Only the header is read, so the cost does not depend on the file's size. It is validated as strictly as the
reference implementation validates it (size cap, JSON shape, offsets inside the buffer and matching shape x dtype),
so a truncated download is reported rather than half-read.

A checkpoint's header has thousands of entries and `identify` reads whole libraries, so the common case is fast:
msgspec decodes the header straight into typed entries (checking dtypes, counts and pairs in C as it goes), the
remaining checks run a column at a time with C-level `map`s, and a `TensorInfo` is only built when someone looks
one up (`LazyTensors`). Any header that fails a fast check is read again the slow way, with the stdlib parser and
entry-by-entry checks, so that the error names the first bad entry exactly as it always did.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Iterator, Mapping
from itertools import repeat
from operator import attrgetter, mul, sub
from typing import Annotated, Any, BinaryIO, Literal, cast

import msgspec

from modeldex.errors import ReadError
from modeldex.identify.readers.dtypes import SAFETENSORS_BITS
from modeldex.identify.records import Header, TensorInfo

MAX_HEADER_BYTES = 100_000_000
"""The reference implementation's `MAX_HEADER_SIZE`."""

_METADATA_KEY = "__metadata__"
_Count = Annotated[int, msgspec.Meta(ge=0)]
_Dtype = Literal[
    "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16",
    "I32", "U32", "F32", "F64", "I64", "U64", "C64", "F4", "F6_E2M3", "F6_E3M2",
]  # fmt: skip


class _Offsets(msgspec.Struct, array_like=True, forbid_unknown_fields=True, gc=False, frozen=True):
    """`data_offsets`: exactly two counts. A struct rather than a tuple, so the garbage collector never visits it."""

    begin: _Count
    end: _Count


class _Entry(msgspec.Struct, gc=False):
    """One tensor's header entry. The defaults stand for a missing field and never pass the size check."""

    dtype: _Dtype | None = None
    shape: tuple[_Count, ...] | None = None
    data_offsets: _Offsets = _Offsets(1, 0)


class _Metadata(msgspec.Struct):
    metadata: dict[str, str] = msgspec.field(default_factory=dict, name=_METADATA_KEY)


_DECODE_ENTRIES = msgspec.json.Decoder(dict[str, _Entry]).decode
_DECODE_METADATA = msgspec.json.Decoder(_Metadata).decode
# Everything the fast path may raise on a header that the slow path then explains.
_FAST_PATH_ERRORS = (msgspec.MsgspecError, ValueError, RecursionError)

_WHOLE_BYTES = {dtype: bits // 8 for dtype, bits in SAFETENSORS_BITS.items() if bits % 8 == 0}
_DTYPE = attrgetter("dtype")
_SHAPE = attrgetter("shape")
_BEGIN = attrgetter("data_offsets.begin")
_END = attrgetter("data_offsets.end")


class LazyTensors(Mapping[str, TensorInfo]):
    """The tensors of a validated safetensors header; each `TensorInfo` is built on first access.

    Iteration, `len` and `in` go straight to the decoded header, so classifying a file costs nothing for the
    tensors it does not look at.
    """

    __slots__ = ("_built", "_entries")

    def __init__(self, entries: dict[str, _Entry]) -> None:
        self._entries = entries
        self._built: dict[str, TensorInfo] = {}

    def __getitem__(self, key: str) -> TensorInfo:
        info = self._built.get(key)
        if info is None:
            entry = self._entries[key]
            assert entry.dtype is not None and entry.shape is not None  # validated before LazyTensors is made
            info = TensorInfo(shape=entry.shape, dtype=entry.dtype, storage_offset=entry.data_offsets.begin)
            self._built[key] = info
        return info

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self._entries else default

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"LazyTensors({len(self._entries)} tensors)"

    def shape(self, key: str) -> tuple[int, ...] | None:
        """The shape of `key` without building its `TensorInfo`; None when there is no such tensor."""
        entry = self._entries.get(key)
        return None if entry is None else entry.shape

    def shapes(self, keys: Iterable[str]) -> Iterator[tuple[int, ...]]:
        """The shapes of `keys`, which must all exist, in order."""
        return map(_SHAPE, map(self._entries.__getitem__, keys))


def _all_valid(entries: list[_Entry], buffer_len: int) -> bool:
    """The checks msgspec cannot make while decoding, a column at a time: bounds, and shape x dtype = bytes."""
    ends = list(map(_END, entries))
    if max(ends, default=0) > buffer_len:
        return False
    held = map(sub, ends, map(_BEGIN, entries))  # negative when begin > end: never a match below
    dtypes = set(map(_DTYPE, entries))
    try:  # TypeError: a shape is missing; KeyError: a dtype is
        numel = map(math.prod, map(_SHAPE, entries))
        if len(dtypes) == 1 and (size := _WHOLE_BYTES.get(next(iter(dtypes)))) is not None:
            return list(held) == list(numel if size == 1 else map(mul, numel, repeat(size)))
        # numel x bits == 8 x bytes says both "whole bytes" and "the right number of them".
        bits = map(SAFETENSORS_BITS.__getitem__, map(_DTYPE, entries))
        return list(map(mul, held, repeat(8))) == list(map(mul, numel, bits))
    except (KeyError, TypeError):
        return False


def _fast_read(raw: bytes, buffer_len: int) -> tuple[dict[str, _Entry], dict[str, str]] | None:
    """(entries, metadata) when every check passes on the fast path, else None."""
    try:
        if not raw.isascii():
            raw.decode("utf-8")  # msgspec does not look inside the strings it skips
        entries = _DECODE_ENTRIES(raw)
        metadata = _DECODE_METADATA(raw).metadata if _METADATA_KEY in entries else {}
    except _FAST_PATH_ERRORS:
        return None
    entries.pop(_METADATA_KEY, None)
    return (entries, metadata) if _all_valid(list(entries.values()), buffer_len) else None


def _are_counts(values: list[Any]) -> bool:
    return all(type(v) is int and v >= 0 for v in values)  # JSON booleans are not counts


def _check_tensor(name: str, entry: Any, buffer_len: int) -> _Entry:
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
    return _Entry(cast(Any, dtype), tuple(shape), _Offsets(begin, end))  # dtype: a SAFETENSORS_BITS key


def _check_metadata(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ReadError("the safetensors __metadata__ must map strings to strings")
    return value


def _slow_read(raw: bytes, buffer_len: int) -> tuple[dict[str, _Entry], dict[str, str]]:
    """The stdlib's reading of the header, checked entry by entry in order; a `ReadError` for the first fault."""
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ReadError("the safetensors header is not valid UTF-8") from exc
    except (ValueError, RecursionError) as exc:
        raise ReadError("the safetensors header is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise ReadError("the safetensors header is not a JSON object")
    metadata: dict[str, str] = {}
    entries: dict[str, _Entry] = {}
    for name, entry in parsed.items():
        if name == _METADATA_KEY:
            metadata = _check_metadata(entry)
        else:
            entries[name] = _check_tensor(name, entry, buffer_len)
    return entries, metadata


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
    buffer_len = size - 8 - length
    entries, metadata = _fast_read(raw, buffer_len) or _slow_read(raw, buffer_len)
    return Header(format="safetensors", tensors=LazyTensors(entries), metadata=metadata, data_start=8 + length)
