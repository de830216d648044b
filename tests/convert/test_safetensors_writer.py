"""The streaming writer on its own: chunked gathers, range copies, header layout."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from convert_helpers import assert_valid_header
from safetensors.numpy import load_file

from modeldex.errors import ModeldexError, ReadError
from modeldex.identify import safetensors_writer
from modeldex.identify.safetensors_writer import (
    FileRange,
    PlannedTensor,
    StridedGather,
    _contiguous_pieces,
    copy_range,
    plan_layout,
    write_layout,
)


@pytest.mark.parametrize("max_bytes", [1, 7, 24, 100, 10_000])
@pytest.mark.parametrize(
    "make_view",
    [
        lambda a: a.transpose(2, 0, 1),
        lambda a: a[:, ::2, 1:],
        lambda a: np.broadcast_to(a[:1, :1, :], (5, 4, 6)),
        lambda a: a[1],
        lambda a: a.reshape(-1)[3:4],
    ],
    ids=["transpose", "stepped", "broadcast", "row", "single"],
)
def test_contiguous_pieces_concatenate_to_c_order(
    make_view: Callable[[np.ndarray], np.ndarray], max_bytes: int
) -> None:
    array = np.arange(5 * 4 * 6, dtype=np.uint16).reshape(5, 4, 6)
    view = make_view(array)
    pieces = list(_contiguous_pieces(view, max_bytes))
    assert b"".join(p.tobytes() for p in pieces) == np.ascontiguousarray(view).tobytes()
    assert all(p.flags.c_contiguous for p in pieces)
    if view.ndim and max_bytes >= view.nbytes // view.shape[0]:
        assert all(p.nbytes <= max(max_bytes, view.itemsize) or p.shape[0] == 1 for p in pieces)


@pytest.mark.parametrize("kernel", [True, False], ids=["copy_file_range", "buffered"])
@pytest.mark.parametrize(
    "src_offset, dst_offset", [(10, 5), (4096 + 7, 7), (0, 0)], ids=["misaligned", "same-in-page", "start"]
)
def test_copy_range_copies_and_reports_a_short_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel: bool, src_offset: int, dst_offset: int
) -> None:
    monkeypatch.setattr(safetensors_writer, "_kernel_copy", kernel)
    monkeypatch.setattr(safetensors_writer, "COPY_CHUNK_BYTES", 1000)
    content = os.urandom(3 * 4096 + 100)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(content)
    with open(src, "rb") as s, open(dst, "wb") as d:
        copy_range(s.fileno(), src_offset, d.fileno(), dst_offset, 2 * 4096 + 3)
        with pytest.raises(ReadError, match="ends before"):
            copy_range(s.fileno(), len(content) - 10, d.fileno(), 5 * 4096, 20)
    assert dst.read_bytes()[dst_offset : dst_offset + 2 * 4096 + 3] == content[src_offset : src_offset + 2 * 4096 + 3]


def test_layout_aligns_every_tensor_and_writes_a_loadable_file(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    values: dict[str, np.ndarray] = {
        "a_u8": np.arange(3, dtype=np.uint8),
        "b_f64": np.array([1.5, 2.5], dtype=np.float64),
        "c_i16": np.array([-3, 4, 5], dtype=np.int16),
        "d_f32": np.array([[1, 2], [3, 4]], dtype=np.float32),
    }
    blob = b"".join(v.tobytes() for v in values.values())
    raw.write_bytes(blob)
    dtypes = {"a_u8": "U8", "b_f64": "F64", "c_i16": "I16", "d_f32": "F32"}
    fd = os.open(raw, os.O_RDONLY)
    try:
        planned: list[PlannedTensor] = []
        offset = 0
        for name, value in values.items():
            planned.append(PlannedTensor(name, dtypes[name], value.shape, FileRange(fd, offset, value.nbytes)))
            offset += value.nbytes
        storage = np.frombuffer(np.array([[1, 2], [3, 4]], dtype=np.float32).tobytes(), dtype=np.uint32)
        planned.append(PlannedTensor("e_t", "F32", (2, 2), StridedGather(storage, 0, (2, 2), (1, 2))))
        layout = plan_layout(planned, {"k": "v"})
        out = tmp_path / "out.safetensors"
        with open(out, "wb") as handle:
            write_layout(layout, handle.fileno())
    finally:
        os.close(fd)
    assert assert_valid_header(out) == {"k": "v"}
    loaded = load_file(str(out))
    for name, value in values.items():
        np.testing.assert_array_equal(loaded[name], value)
    np.testing.assert_array_equal(loaded["e_t"], np.array([[1, 3], [2, 4]], dtype=np.float32))


def test_layout_refuses_duplicates_and_unknown_dtypes() -> None:
    source = FileRange(0, 0, 4)
    with pytest.raises(ModeldexError, match="both named"):
        plan_layout([PlannedTensor("x", "F32", (1,), source), PlannedTensor("x", "F32", (1,), source)], {})
    with pytest.raises(ModeldexError, match="C128"):
        plan_layout([PlannedTensor("x", "C128", (1,), source)], {})
