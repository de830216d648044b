"""Pickle to safetensors without running the pickle and without torch.

`read_header` parses the pickle with the restricted unpickler (nothing executes; unsafe globals are only listed).
Its tensors name a storage key, an offset and strides; this module finds each storage's bytes in the file (the
uncompressed `<prefix>/data/<key>` zip entries, or the raw blocks after the pickles of the legacy format) and streams
them into a safetensors file through a temporary file that is renamed into place only when complete.
"""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import re
import secrets
import struct
import zipfile
from collections.abc import Callable, Iterable
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

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
# Element widths of storage dtypes safetensors lacks: needed only to step over such storages in legacy files.
_OTHER_WIDTHS = {"C32": 4, "C128": 16, "QI8": 1, "QU8": 1, "QI32": 4, "QU4X2": 1, "QU2X4": 1}
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
    header = read_header(source)
    if header.format != "pickle":
        raise UsageError(f"{source} is a {header.format} file, not a torch pickle: there is nothing to convert")
    if header.unsafe_globals:
        names = ", ".join(header.unsafe_globals)
        raise UnsafePickleError(
            f"{source} refers to code outside the allow-list ({names}); not converted", header.unsafe_globals
        )
    target = _resolve_output(source, output, overwrite)
    metadata, dropped = metadata_from_values(header)
    fd = os.open(source, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        regions = _storage_regions(source, fd, header)
        planned, materialised = _plan_tensors(source, header, regions, fd)
        layout = plan_layout(planned, metadata)
        _write_atomically(target, overwrite, durable, lambda out_fd: write_layout(layout, out_fd))
    finally:
        os.close(fd)
    return ConversionResult(
        source, target, len(planned), layout.total_bytes, header.wrapper, metadata, dropped, materialised
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
        raise UsageError(f"the output folder {target.parent} does not exist")
    if target.exists() or target.is_symlink():
        if target.exists() and os.path.samefile(target, source):
            raise UsageError(f"{target} is the source file itself; choose another output with --out")
        if not overwrite:
            raise UsageError(f"{target} already exists; pass --force to overwrite it")
        if target.is_dir():
            raise UsageError(f"{target} is a folder")
    return target


def _storage_regions(path: Path, fd: int, header: Header) -> dict[str, _Region]:
    with open(fd, "rb", closefd=False) as stream:
        magic = stream.read(4)
        stream.seek(0)
        if magic == b"PK\x03\x04":
            return _zip_regions(path, stream, header)
        return _legacy_regions(path, stream, header)


def _zip_regions(path: Path, stream: IO[bytes], header: Header) -> dict[str, _Region]:
    """Where each `<prefix>/data/<key>` entry's bytes start, read from the zip's own local headers."""
    file_size = os.fstat(stream.fileno()).st_size
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ReadError(f"{path} is a damaged zip archive ({exc})") from exc
    with archive:
        prefix = header.extra.get("zip_prefix") or _find_prefix(archive.namelist())
        if prefix is None:
            raise ReadError(f"{path} is a zip archive without a torch data.pkl")
        byteorder = _member_text(archive, f"{prefix}/byteorder")
        if byteorder is not None and byteorder.strip() != "little":
            raise ModeldexError(
                f"{path} was saved on a {byteorder.strip()}-endian machine; converting it is not supported "
                "(load and re-save it on a little-endian machine)",
                title="convert",
            )
        wanted = {info.storage_key for info in header.tensors.values() if info.storage_key is not None}
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


def _find_prefix(names: Iterable[str]) -> str | None:
    for name in names:
        match = re.fullmatch(r"([^/]+)/data\.pkl", name)
        if match:
            return match.group(1)
    return None


def _member_text(archive: zipfile.ZipFile, name: str) -> str | None:
    try:
        return archive.read(name)[:64].decode("ascii", "replace")
    except KeyError:
        return None


class _NoGlobals(pickle.Unpickler):
    """For the legacy format's plain-data pickles (magic, version, sys_info, key list): any global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise ReadError(f"unexpected global {module}.{name} in a legacy torch file's framing pickles")


def _legacy_regions(path: Path, stream: IO[bytes], header: Header) -> dict[str, _Region]:
    """Legacy layout: five pickles, then for each storage key in the listed order a little-endian int64 element
    count followed by the raw bytes."""
    file_size = os.fstat(stream.fileno()).st_size
    try:
        magic = _NoGlobals(stream).load()
        protocol = _NoGlobals(stream).load()
        if magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL:
            raise ReadError(f"{path} is neither a torch zip archive nor a legacy torch file")
        sys_info = _NoGlobals(stream).load()
        # The object pickle was already parsed (restrictedly) by read_header: here it is only walked past.
        for _ in pickletools.genops(stream):
            pass
        keys = _NoGlobals(stream).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise ReadError(f"{path}: damaged legacy torch file ({exc})") from exc
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise ModeldexError(
            f"{path} was saved on a big-endian machine; converting it is not supported "
            "(load and re-save it on a little-endian machine)",
            title="convert",
        )
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ReadError(f"{path}: damaged legacy torch file (the storage key list is not a list of names)")
    widths = _storage_widths(header)
    position = stream.tell()
    regions: dict[str, _Region] = {}
    for key in keys:
        width = widths.get(key)
        if width is None:
            raise ModeldexError(f"{path}: storage {key} has an unknown element type; cannot convert", title="convert")
        stream.seek(position)
        count_bytes = stream.read(8)
        if len(count_bytes) < 8:
            raise ReadError(f"{path} is truncated: storage {key} is missing")
        count = int.from_bytes(count_bytes, "little")
        start = position + 8
        nbytes = count * width
        if start + nbytes > file_size:
            raise ReadError(f"{path} is truncated: storage {key} ends past the end of the file")
        regions[key] = _Region(start, nbytes)
        position = start + nbytes
    return regions


def _storage_widths(header: Header) -> dict[str, int]:
    """Bytes per element of each storage: from `extra["storages"]`, else from a tensor that uses it."""
    known = DTYPE_SIZES | _OTHER_WIDTHS
    widths: dict[str, int] = {}
    for key, info in (header.extra.get("storages") or {}).items():
        width = known.get(str(info.get("dtype"))) if isinstance(info, dict) else None
        if width is not None:
            widths[str(key)] = width
    for tensor in header.tensors.values():
        if tensor.storage_key is not None and tensor.storage_key not in widths and tensor.dtype in known:
            widths[tensor.storage_key] = known[tensor.dtype]
    return widths


def _plan_tensors(
    path: Path, header: Header, regions: dict[str, _Region], fd: int
) -> tuple[list[PlannedTensor], list[str]]:
    """One PlannedTensor per header tensor, in the order their bytes sit in the source."""
    planned: list[tuple[int, PlannedTensor]] = []
    materialised: list[str] = []
    for name, info in header.tensors.items():
        if info.storage_key is None:
            raise ReadError(f"{path}: tensor {name!r} has no storage; cannot convert")
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
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
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
