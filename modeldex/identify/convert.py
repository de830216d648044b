"""Pickle to safetensors without running the pickle and without torch.

`read_header` parses the pickle with the restricted unpickler (nothing executes; unsafe globals are only listed).
Its tensors name a storage key, an offset and strides; this module finds each storage's bytes in the file (the
uncompressed `<prefix>/data/<key>` zip entries, or the raw blocks after the pickles of the legacy format) and streams
them into a safetensors file through a temporary file that is renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from modeldex.errors import ModeldexError, ReadError, UnsafePickleError, UsageError
from modeldex.identify.readers import read_header
from modeldex.identify.records import Header, TensorInfo
from modeldex.identify.safetensors_writer import (
    DTYPE_SIZES,
    FileRange,
    PlannedTensor,
    StridedGather,
    TensorSource,
    element_size,
    plan_layout,
    write_layout,
)

SAFETENSORS_SUFFIX = ".safetensors"
MAX_METADATA_VALUE = 64 * 1024
"""Bigger non-tensor values are left out: `__metadata__` is read whole by every loader."""

# Widths of pickle dtypes safetensors lacks too, so that a legacy file holding one gets as far as the clear
# "safetensors cannot store <dtype>" error instead of failing to locate the storage.
_WIDTHS = DTYPE_SIZES | {"C32": 4, "C128": 16, "QI8": 1, "QU8": 1, "QI32": 4, "QU4X2": 1, "QU2X4": 1}
_NUMPY_BY_WIDTH = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


@dataclass(frozen=True, slots=True)
class ConversionResult:
    """What `convert_to_safetensors` wrote."""

    source: Path
    output: Path
    tensors: int
    bytes_written: int
    wrapper: str | None
    metadata: dict[str, str]
    dropped_values: list[str] = field(default_factory=list)
    """Top-level non-tensor values that could not be kept as `__metadata__` strings."""
    materialised: list[str] = field(default_factory=list)
    """Tensors that were views with gaps, transposes or stride-0 expansions, written out as plain tensors."""
    skipped_keys: list[str] = field(default_factory=list)
    """Top-level entries beside the weights that hold neither weights nor plain values (optimizer states...)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "output": str(self.output),
            "tensors": self.tensors,
            "bytes": self.bytes_written,
            "wrapper": self.wrapper,
            "metadata": dict(self.metadata),
            "dropped_values": list(self.dropped_values),
            "materialised": list(self.materialised),
            "skipped_keys": list(self.skipped_keys),
        }


@dataclass(frozen=True, slots=True)
class _Region:
    """One storage's bytes in the source file."""

    offset: int
    nbytes: int


def default_output(source: Path) -> Path:
    """`model.ckpt` -> `model.safetensors`, beside the source."""
    return source.with_suffix(SAFETENSORS_SUFFIX)


def convert_to_safetensors(
    source: Path, output: Path | None = None, *, overwrite: bool = False, durable: bool = True
) -> ConversionResult:
    """Write the tensors of a safe torch pickle (zip or legacy format) to a safetensors file.

    `output` defaults to the source with a `.safetensors` suffix; an existing folder means "put it in there".
    Refuses unsafe pickles (`UnsafePickleError`, nothing executed), an existing output unless `overwrite`, and
    anything it cannot convert exactly. The output appears complete or not at all; with `durable` (the default)
    it is also flushed to disk before it is renamed into place, so a power cut cannot leave an empty file under the
    final name.
    """
    try:
        header = read_header(source)
    except ReadError as exc:
        raise ReadError(f"{source}: {exc.message}") from exc
    if header.format != "pickle":
        raise UsageError(f"{source} is a {header.format} file, not a torch pickle: there is nothing to convert")
    if header.unsafe_globals:
        names = ", ".join(header.unsafe_globals)
        raise UnsafePickleError(
            f"{source} refers to code outside the allow-list ({names}); not converted", header.unsafe_globals
        )
    if not header.tensors:
        raise ModeldexError(f"{source} holds no tensors: there is nothing to convert", title="convert")
    target = _resolve_output(source, output, overwrite)
    metadata, dropped = metadata_from_values(header)
    try:
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        if hasattr(os, "posix_fadvise"):
            # Storages are read front to back: a larger readahead when the checkpoint is not in the page cache.
            with contextlib.suppress(OSError):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        try:
            regions = _storage_regions(source, fd, header)
            planned, materialised = _plan_tensors(source, header, regions, fd)
            layout = plan_layout(planned, metadata)
            _write_atomically(target, overwrite, durable, lambda out_fd: write_layout(layout, out_fd))
        finally:
            os.close(fd)
    except OSError as exc:
        # Disk full, permission denied, I/O error: the temporary file is already gone, the source untouched.
        raise ModeldexError(f"could not convert {source} to {target}: {exc.strerror or exc}", title="convert") from exc
    skipped = [str(k) for k in header.extra.get("skipped_keys") or []]
    return ConversionResult(
        source, target, len(planned), layout.total_bytes, header.wrapper, metadata, dropped, materialised, skipped
    )


def metadata_from_values(header: Header) -> tuple[dict[str, str], list[str]]:
    """`__metadata__` for the output, and the names of the values that had to be left out.

    Strings are kept as they are; numbers, booleans and small lists/dicts of them become their JSON text
    (`global_step` 470000 -> "470000"); None is left out (it says nothing); anything else is dropped and named.
    `format: pt` is added, as Hugging Face's converters do, unless the file already has a `format` value.
    """
    metadata: dict[str, str] = dict(header.metadata)
    dropped: list[str] = []
    values = header.extra.get("values") or {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, str):
            text = value
        else:
            try:
                text = json.dumps(value, ensure_ascii=False, allow_nan=True)
            except (TypeError, ValueError):
                dropped.append(str(name))
                continue
        if len(text) > MAX_METADATA_VALUE:
            dropped.append(str(name))
            continue
        metadata.setdefault(str(name), text)
    metadata.setdefault("format", "pt")
    return metadata, dropped


def _resolve_output(source: Path, output: Path | None, overwrite: bool) -> Path:
    target = default_output(source) if output is None else output
    if target.is_dir():
        target = target / default_output(Path(source.name))
    if not target.parent.is_dir():
        what = "is not a folder" if os.path.lexists(target.parent) else "does not exist"
        raise UsageError(f"the output folder {target.parent} {what}")
    if target.exists() or target.is_symlink():
        if target.exists() and os.path.samefile(target, source):
            raise UsageError(f"{target} is the source file itself; choose another output with --out")
        if not overwrite:
            raise UsageError(f"{target} already exists; pass --force to overwrite it")
        if target.is_dir():
            raise UsageError(f"{target} is a folder")
    return target


def _storage_regions(path: Path, fd: int, header: Header) -> dict[str, _Region]:
    container = header.extra.get("container")
    byteorder = str(header.extra.get("byteorder") or "little")
    if byteorder != "little":
        raise ModeldexError(
            f"{path} was saved on a {byteorder}-endian machine; converting it is not supported "
            "(load and re-save it on a little-endian machine)",
            title="convert",
        )
    wanted = {info.storage_key for info in header.tensors.values() if info.storage_key is not None}
    if container == "torch_zip":
        with open(fd, "rb", closefd=False) as stream:
            return _zip_regions(path, stream, header, wanted)
    if container == "torch_legacy":
        return _legacy_regions(path, fd, header, wanted)
    raise ModeldexError(
        f"{path} is a plain pickle, not a torch.save file; converting it is not supported", title="convert"
    )


def _zip_regions(path: Path, stream: IO[bytes], header: Header, wanted: set[str]) -> dict[str, _Region]:
    """Where each `<prefix>/data/<key>` entry's bytes start, read from the zip's own local headers."""
    file_size = os.fstat(stream.fileno()).st_size
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ReadError(f"{path} is a damaged zip archive ({exc})") from exc
    with archive:
        prefix = header.extra.get("zip_prefix")
        regions: dict[str, _Region] = {}
        for key in wanted:
            name = f"{prefix}/data/{key}"
            try:
                info = archive.getinfo(name)
            except KeyError:
                raise ReadError(f"{path} lists storage {key} but has no {name} entry (damaged file)") from None
            if info.compress_type != zipfile.ZIP_STORED:
                raise ReadError(f"{path}: storage entry {name} is compressed, which torch never writes (damaged file?)")
            stream.seek(info.header_offset)
            local = stream.read(30)
            if len(local) < 30 or local[:4] != b"PK\x03\x04":
                raise ReadError(f"{path}: the zip entry {name} is damaged (bad local header)")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            start = info.header_offset + 30 + name_len + extra_len
            if start + info.file_size > file_size:
                raise ReadError(f"{path} is truncated: storage {key} ends past the end of the file")
            regions[key] = _Region(start, info.file_size)
    return regions


def _legacy_regions(path: Path, fd: int, header: Header, wanted: set[str]) -> dict[str, _Region]:
    """Legacy layout: the reader computed where each storage's bytes start (after its int64 element count)."""
    file_size = os.fstat(fd).st_size
    storages = header.extra.get("storages") or {}
    regions: dict[str, _Region] = {}
    for key in wanted:
        entry = storages.get(key) or {}
        start, numel, width = entry.get("data_offset"), entry.get("numel"), _WIDTHS.get(str(entry.get("dtype")))
        if not isinstance(start, int) or not isinstance(numel, int) or width is None:
            raise ModeldexError(f"{path}: cannot locate the bytes of storage {key}; not converted", title="convert")
        # The count torch wrote before the bytes must agree with the pickle: a cheap check that the layout is right.
        count = os.pread(fd, 8, start - 8)
        if len(count) < 8 or int.from_bytes(count, "little") != numel:
            raise ReadError(f"{path}: storage {key} does not sit where the file says it does (damaged file)")
        if start + numel * width > file_size:
            raise ReadError(f"{path} is truncated: storage {key} ends past the end of the file")
        regions[key] = _Region(start, numel * width)
    return regions


def _plan_tensors(
    path: Path, header: Header, regions: dict[str, _Region], fd: int
) -> tuple[list[PlannedTensor], list[str]]:
    """One PlannedTensor per header tensor, in the order their bytes sit in the source."""
    planned: list[tuple[int, PlannedTensor]] = []
    materialised: list[str] = []
    for name, info in header.tensors.items():
        if info.storage_key is None:
            # Only numpy arrays pickled inline have no storage; the reader does not say where their bytes are.
            raise ModeldexError(
                f"{path}: {name!r} is an array stored inside the pickle itself (numpy); converting those is not supported",
                title="convert",
            )
        region = regions.get(info.storage_key)
        if region is None:
            raise ReadError(f"{path}: storage {info.storage_key} of tensor {name!r} is missing")
        width = element_size(info.dtype, name)
        source, contiguous = _tensor_source(path, name, info, region, width, fd)
        if not contiguous:
            materialised.append(name)
        planned.append(
            (region.offset + info.storage_offset * width, PlannedTensor(name, info.dtype, info.shape, source))
        )
    planned.sort(key=lambda item: item[0])
    return [tensor for _, tensor in planned], materialised


def _tensor_source(
    path: Path, name: str, info: TensorInfo, region: _Region, width: int, fd: int
) -> tuple[TensorSource, bool]:
    shape = tuple(int(d) for d in info.shape)
    stride = tuple(int(s) for s in info.stride) if info.stride is not None else _c_strides(shape)
    numel = int(np.prod(shape, dtype=np.int64))
    if len(stride) != len(shape) or any(s < 0 for s in stride) or any(d < 0 for d in shape) or info.storage_offset < 0:
        raise ReadError(f"{path}: tensor {name!r} has an impossible shape or stride")
    if numel == 0:
        return FileRange(fd, region.offset, 0), True
    last = info.storage_offset + sum((d - 1) * s for d, s in zip(shape, stride, strict=True))
    if (last + 1) * width > region.nbytes:
        raise ReadError(f"{path}: tensor {name!r} reaches past the end of its storage (damaged or truncated file)")
    if _is_contiguous(shape, stride):
        return FileRange(fd, region.offset + info.storage_offset * width, numel * width), True
    storage = np.memmap(
        path, dtype=_NUMPY_BY_WIDTH[width], mode="r", offset=region.offset, shape=(region.nbytes // width,)
    )
    return StridedGather(storage, info.storage_offset, shape, stride), False


def _c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides: list[int] = []
    step = 1
    for dim in reversed(shape):
        strides.append(step)
        step *= max(dim, 1)
    return tuple(reversed(strides))


def _is_contiguous(shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    """C order with no gaps; the stride of a size-1 dimension never matters."""
    expected = 1
    for dim, step in zip(reversed(shape), reversed(stride), strict=True):
        if dim != 1 and step != expected:
            return False
        expected *= dim
    return True


def _write_atomically(target: Path, overwrite: bool, durable: bool, write: Callable[[int], None]) -> None:
    """Write into a fresh temporary file beside `target`, flush it to disk, then move it into place.

    Without `overwrite` the move is a hard link, which fails rather than replace a file that appeared meanwhile.
    Whatever goes wrong (including Ctrl-C), the temporary file is removed and `target` is untouched.
    """
    temp = target.with_name(f".{target.name[:200]}.{secrets.token_hex(4)}.partial")
    out_fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        try:
            write(out_fd)
            if durable:
                os.fsync(out_fd)
        finally:
            os.close(out_fd)
        _move_into_place(temp, target, overwrite)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_folder(target.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the new name itself survive a power cut (POSIX; other systems cannot open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the file's own data is already on disk
    finally:
        os.close(fd)


def _move_into_place(temp: Path, target: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temp, target)
        return
    try:
        os.link(temp, target)
    except FileExistsError:
        raise UsageError(f"{target} already exists; pass --force to overwrite it") from None
    except OSError:
        # Filesystems without hard links (FAT, some network shares): check, then rename.
        if target.exists() or target.is_symlink():
            raise UsageError(f"{target} already exists; pass --force to overwrite it") from None
        os.replace(temp, target)
        return
    temp.unlink()
