"""A streaming safetensors writer: the header first, then each tensor's bytes copied from wherever they live.

Nothing here holds a whole tensor in memory unless it must be gathered from strided storage, and even then it is
gathered in bounded chunks. Contiguous byte ranges are copied by the kernel (`copy_file_range`) when it can, so a
conversion runs at about the speed of a plain file copy.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from modeldex.errors import ModeldexError, ReadError

# Bytes per element for every dtype the safetensors format names (sub-byte F4/F6 are left out: their packing
# cannot be expressed as whole elements of a torch storage).
DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "F8_E4M3FNUZ": 1, "F8_E5M2FNUZ": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}  # fmt: skip

MAX_HEADER_BYTES = 100_000_000
"""The reference implementation refuses bigger headers; writing one would make a file nobody can open."""

GATHER_CHUNK_BYTES = 8 << 20
COPY_CHUNK_BYTES = 512 << 10
"""Measured: a buffer that stays in the CPU's L2 cache copies as fast as `shutil.copyfile`; 8 MiB ran at half speed."""
PAGE_BYTES = 4096


class TensorSource(Protocol):
    """Where one output tensor's bytes come from."""

    @property
    def nbytes(self) -> int: ...

    def write_to(self, out_fd: int, out_offset: int) -> None:
        """Write exactly `nbytes` bytes at `out_offset` of `out_fd`."""
        ...


@dataclass(frozen=True, slots=True)
class PlannedTensor:
    """One tensor of the output file: its name, safetensors dtype, shape, and the source of its bytes."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    source: TensorSource


@dataclass(frozen=True, slots=True)
class FileRange:
    """Bytes stored contiguously in a source file, copied without passing through Python where possible."""

    fd: int
    offset: int
    nbytes: int

    def write_to(self, out_fd: int, out_offset: int) -> None:
        copy_range(self.fd, self.offset, out_fd, out_offset, self.nbytes)


@dataclass(frozen=True, slots=True)
class StridedGather:
    """A view of a storage (transposed, sliced with steps, or expanded with stride 0), made contiguous in chunks.

    `storage` is a read-only memory map of the whole storage in an element type of the tensor's width; `offset`
    and `stride` are in elements, as torch records them.
    """

    storage: np.ndarray
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.storage.itemsize

    def write_to(self, out_fd: int, out_offset: int) -> None:
        itemsize = self.storage.itemsize
        view = np.lib.stride_tricks.as_strided(
            self.storage[self.offset :],
            shape=self.shape,
            strides=tuple(s * itemsize for s in self.stride),
            writeable=False,
        )
        position = out_offset
        for piece in _contiguous_pieces(view, GATHER_CHUNK_BYTES):
            _pwrite_all(out_fd, piece.data.cast("B"), position)
            position += piece.nbytes


def _contiguous_pieces(view: np.ndarray, max_bytes: int) -> Iterator[np.ndarray]:
    """C-contiguous copies of `view` in C order, none much larger than `max_bytes` (one row at least)."""
    if view.ndim == 0 or view.nbytes <= max_bytes:
        yield np.ascontiguousarray(view)
        return
    row_bytes = view.nbytes // view.shape[0]
    if row_bytes >= max_bytes:
        for i in range(view.shape[0]):
            yield from _contiguous_pieces(view[i], max_bytes)
        return
    step = max(1, max_bytes // row_bytes)
    for start in range(0, view.shape[0], step):
        yield np.ascontiguousarray(view[start : start + step])


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        written = os.pwrite(fd, data, offset)
        data = data[written:]
        offset += written


_kernel_copy = hasattr(os, "copy_file_range")
# Errors that mean "this kernel or filesystem cannot copy_file_range here", not "the data is bad".
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM, errno.EBADF}


def copy_range(src_fd: int, src_offset: int, dst_fd: int, dst_offset: int, nbytes: int) -> None:
    """Copy `nbytes` from `src_fd` at `src_offset` to `dst_fd` at `dst_offset`; a short source is a ReadError.

    When source and destination sit at the same place within a page the kernel copies page to page
    (`copy_file_range`, a reflink on filesystems that share blocks). Otherwise it would splice page fragments, which
    measured twice as slow as a plain copy, and a small user-space buffer is faster.
    """
    done = 0
    if _kernel_copy and (src_offset - dst_offset) % PAGE_BYTES == 0:
        done = _kernel_copy_range(src_fd, src_offset, dst_fd, dst_offset, nbytes)
    if done == nbytes:
        return
    buffer = memoryview(bytearray(min(COPY_CHUNK_BYTES, nbytes - done)))
    while done < nbytes:
        want = min(len(buffer), nbytes - done)
        got = os.preadv(src_fd, [buffer[:want]], src_offset + done)
        if got == 0:
            raise ReadError("the file ends before the tensor data it lists (truncated download?)")
        _pwrite_all(dst_fd, buffer[:got], dst_offset + done)
        done += got


def _kernel_copy_range(src_fd: int, src_offset: int, dst_fd: int, dst_offset: int, nbytes: int) -> int:
    """Bytes copied by `copy_file_range`: all of them, or fewer when this kernel or filesystem cannot do it."""
    global _kernel_copy
    done = 0
    try:
        while done < nbytes:
            copied = os.copy_file_range(src_fd, dst_fd, nbytes - done, src_offset + done, dst_offset + done)
            if copied == 0:
                raise ReadError("the file ends before the tensor data it lists (truncated download?)")
            done += copied
    except OSError as exc:
        if exc.errno not in _NO_KERNEL_COPY:
            raise
        _kernel_copy = False  # not for the rest of the process; the bytes copied so far stay valid
    return done


@dataclass(frozen=True, slots=True)
class Layout:
    """The encoded header and where each tensor's bytes go, absolute in the output file."""

    header: bytes
    placements: list[tuple[PlannedTensor, int]]
    total_bytes: int


def plan_layout(tensors: Sequence[PlannedTensor], metadata: dict[str, str]) -> Layout:
    """Order tensors by element width (widest first, so every tensor is aligned to its own width) and encode the header.

    Within one width the caller's order is kept: callers pass tensors in the order their bytes sit in the source,
    so both the reads and the writes are sequential.
    """
    ordered = sorted(tensors, key=lambda t: -element_size(t.dtype, t.name))
    entries: dict[str, object] = {}
    if metadata:
        entries["__metadata__"] = dict(metadata)
    position = 0
    relative: list[tuple[PlannedTensor, int]] = []
    for tensor in ordered:
        if tensor.name in entries:
            raise ModeldexError(f"two tensors are both named {tensor.name!r}", title="convert")
        nbytes = element_size(tensor.dtype, tensor.name) * int(np.prod(tensor.shape, dtype=np.int64))
        if nbytes != tensor.source.nbytes:
            raise ModeldexError(f"tensor {tensor.name!r}: {tensor.source.nbytes} bytes for {nbytes}", title="convert")
        entries[tensor.name] = {
            "dtype": tensor.dtype,
            "shape": list(tensor.shape),
            "data_offsets": [position, position + nbytes],
        }
        relative.append((tensor, position))
        position += nbytes
    header = json.dumps(entries, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    header += b" " * (-len(header) % 8)  # the data buffer starts 8-byte aligned, as the reference writer does
    if len(header) > MAX_HEADER_BYTES:
        raise ModeldexError(
            f"the safetensors header would be {len(header)} bytes, over the format's limit", title="convert"
        )
    start = 8 + len(header)
    prefix = len(header).to_bytes(8, "little") + header
    return Layout(prefix, [(t, start + offset) for t, offset in relative], start + position)


def write_layout(layout: Layout, out_fd: int) -> None:
    """Write the header, then every tensor's bytes, at their planned offsets."""
    _pwrite_all(out_fd, memoryview(layout.header), 0)
    for tensor, offset in layout.placements:
        tensor.source.write_to(out_fd, offset)
    os.ftruncate(out_fd, layout.total_bytes)  # a zero-length last tensor leaves no write to size the file


def element_size(dtype: str, name: str = "") -> int:
    """Bytes per element of a safetensors dtype; a dtype safetensors cannot store is a user-facing error."""
    size = DTYPE_SIZES.get(dtype)
    if size is None:
        where = f"tensor {name!r} has " if name else ""
        raise ModeldexError(f"{where}dtype {dtype}, which safetensors cannot store", title="convert")
    return size
