"""The fast safetensors path (msgspec decode, column checks, lazy TensorInfo) says exactly what the slow path says.

`_fast_read` either returns what `_slow_read` (stdlib json, entry-by-entry checks) returns, or gives up and lets
the slow path speak; a header is never accepted by one and refused by the other, and errors keep their wording.
"""

from __future__ import annotations

import io
import json
import struct
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modeldex.errors import ReadError
from modeldex.identify.readers.dtypes import SAFETENSORS_BITS
from modeldex.identify.readers.safetensors_reader import (
    LazyTensors,
    _Dtype,
    _fast_read,
    _slow_read,
    read_safetensors,
)
from modeldex.identify.records import TensorInfo


def test_decoded_dtypes_are_the_known_dtypes() -> None:
    assert set(typing.get_args(_Dtype)) == set(SAFETENSORS_BITS)


def read(raw: bytes, buffer_len: int) -> tuple[str, object]:
    blob = struct.pack("<Q", len(raw)) + raw + b"\0" * buffer_len
    try:
        header = read_safetensors(io.BytesIO(blob), len(blob))
    except ReadError as exc:
        return "error", exc.message
    return "ok", ({k: v for k, v in header.tensors.items()}, header.metadata, list(header.tensors))


def slow(raw: bytes, buffer_len: int) -> tuple[str, object]:
    try:
        entries, metadata = _slow_read(raw, buffer_len)
    except ReadError as exc:
        return "error", exc.message
    tensors = LazyTensors(entries)
    return "ok", ({k: v for k, v in tensors.items()}, metadata, list(tensors))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
dims = st.integers(0, 6) | st.sampled_from([-1, 2**64, 2.0, True])
entries = st.fixed_dictionaries(
    {},
    optional={
        "dtype": st.sampled_from([*SAFETENSORS_BITS, "X", "f16"]) | json_values,
        "shape": st.lists(dims, max_size=3) | json_values,
        "data_offsets": st.lists(st.integers(0, 60) | st.sampled_from([-1, 2**65]), min_size=2, max_size=2)
        | json_values,
        "extra": json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.text(max_size=4) | st.just("__metadata__"), entries, max_size=5),
    st.none() | st.dictionaries(st.text(max_size=3), st.text(max_size=3) | json_values, max_size=3),
    st.integers(0, 80),
    st.booleans(),
)
def test_fast_and_slow_paths_agree(tensors: dict[str, object], meta: object, buffer_len: int, ascii_only: bool) -> None:
    header = dict(tensors)
    if meta is not None:
        header["__metadata__"] = meta
    raw = json.dumps(header, ensure_ascii=ascii_only).encode()
    assert read(raw, buffer_len) == slow(raw, buffer_len)


@st.composite
def mostly_valid_headers(draw: st.DrawFn) -> tuple[bytes, int]:
    """Headers whose entries add up, with now and then one thing wrong (so both paths get exercised)."""
    header: dict[str, object] = {}
    if draw(st.booleans()):
        header["__metadata__"] = draw(st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2))
    offset = 0
    for i in range(draw(st.integers(0, 5))):
        dtype = draw(st.sampled_from(sorted(SAFETENSORS_BITS)))
        shape = draw(st.lists(st.integers(0, 5), max_size=3))
        numel = 1
        for d in shape:
            numel *= d
        size = -(-numel * SAFETENSORS_BITS[dtype] // 8)
        header[f"t{i}"] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    if header and draw(st.integers(0, 3)) == 0:
        key = draw(st.sampled_from(sorted(header)))
        header[key] = draw(entries | json_values)
    raw = json.dumps(header, ensure_ascii=draw(st.booleans())).encode()
    return raw, offset + draw(st.sampled_from([0, 0, 0, 1, -1]))


@settings(max_examples=300, deadline=None)
@given(mostly_valid_headers())
def test_fast_and_slow_paths_agree_on_mostly_valid_headers(case: tuple[bytes, int]) -> None:
    raw, buffer_len = case
    assert read(raw, max(buffer_len, 0)) == slow(raw, max(buffer_len, 0))


def test_valid_headers_take_the_fast_path() -> None:
    raw = consistent([("a", ([2, 3], [0, 12])), ("b", ([5], [12, 22]))])
    assert _fast_read(raw, 22) is not None
    assert _fast_read(json.dumps({"__metadata__": {"k": "v"}}).encode() + b"  ", 0) == ({}, {"k": "v"})
    assert _fast_read(raw, 21) is None  # the slow path explains


def consistent(offsets: list[tuple[str, tuple[list[int], list[int]]]]) -> bytes:
    return json.dumps({k: {"dtype": "F16", "shape": s, "data_offsets": o} for k, (s, o) in offsets}).encode()


@pytest.mark.parametrize(
    ("raw", "buffer_len"),
    [
        # orjson-style parsers read integers past 64 bits as floats; the message must be about the real value.
        (b'{"a": {"dtype": "F16", "shape": [18446744073709551616], "data_offsets": [0, 2]}}', 2),
        (b'{"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 18446744073709551618]}}', 2),
        # What the stdlib accepts and faster parsers refuse: NaN and lone surrogates where nobody looks.
        (b'{"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2], "note": NaN}}', 2),
        (b'{"\\ud800": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}', 2),
        # Invalid UTF-8 inside a field nobody reads is still invalid UTF-8.
        (b'{"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2], "note": "\xff"}}', 2),
        # An escaped key is the same key.
        (b'{"\\u005f_metadata__": {"format": "pt"}, "a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}', 2),
        (b'{"__metadata__": null}', 0),
        (b'{"__metadata__": {"dtype": "nonsense"}}', 0),
        (b'{"a": {"dtype": "F16", "dtype": "X", "shape": [1], "data_offsets": [0, 2]}}', 2),
        (
            b'{"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}',
            4,
        ),
        (b'{"a": {"dtype": "F16", "shape": [1], "data_offsets": [2, 0]}}', 2),
        (b'{"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}', 2),
        (b'{"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2, 0]}}', 2),
        (b'{"a": {"dtype": "F16", "shape": [1], "data_offsets": {"begin": 0, "end": 2}}}', 2),
    ],
)
def test_edge_cases_read_as_the_stdlib_reads_them(raw: bytes, buffer_len: int) -> None:
    assert read(raw, buffer_len) == slow(raw, buffer_len)


def test_the_first_bad_entry_is_named() -> None:
    raw = b'{"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}, "b": {"dtype": "F17"}, "c": 5}'
    assert read(raw, 2) == ("error", "safetensors header entry 'b' lacks dtype, shape or data_offsets")


def test_offsets_outside_the_buffer_are_refused_at_read_time() -> None:
    raw = consistent([("a", ([2], [0, 4])), ("b", ([2], [4, 8]))])
    assert read(raw, 7)[0] == "error"
    assert "truncated: tensor 'b' ends at byte 8" in str(read(raw, 7)[1])
    assert read(raw, 8)[0] == "ok"


def test_lazy_tensors_is_a_read_only_mapping() -> None:
    raw = consistent([("b", ([2, 3], [0, 12])), ("a", ([], [12, 14]))])
    kind, found = read(raw, 14)
    assert kind == "ok"
    blob = struct.pack("<Q", len(raw)) + raw + b"\0" * 14
    tensors = read_safetensors(io.BytesIO(blob), len(blob)).tensors
    assert isinstance(tensors, LazyTensors)
    assert list(tensors) == ["b", "a"] and len(tensors) == 2 and "a" in tensors and "z" not in tensors
    assert tensors["b"] == TensorInfo(shape=(2, 3), dtype="F16", storage_offset=0)
    assert tensors["a"] is tensors["a"]  # built once
    assert tensors.get("z") is None and tensors.get("z", 1) == 1
    assert tensors.shape("a") == () and tensors.shape("z") is None
    assert list(tensors.shapes(["a", "b"])) == [(), (2, 3)]
    assert tensors == {"b": TensorInfo((2, 3), "F16", None, 0), "a": TensorInfo((), "F16", None, 12)}
    with pytest.raises(KeyError):
        tensors["z"]
