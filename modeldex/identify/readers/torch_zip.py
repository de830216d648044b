"""torch.save's zip format (torch >= 1.6; `.ckpt .pt .pth .bin`): `<dir>/data.pkl` plus raw `<dir>/data/<key>` members.

Only the central directory and `data.pkl` are read (and any unexpected pickle-looking member, which is scanned for
globals: torch never loads one, so a checkpoint carrying one is suspicious).
"""

from __future__ import annotations

import re
import zipfile
import zlib
from typing import Any, BinaryIO

from modeldex.errors import ReadError
from modeldex.identify.readers.dtypes import ELEMENT_BYTES
from modeldex.identify.readers.pickle_header import pickle_header, unsafe_header
from modeldex.identify.readers.pickle_scan import scan_globals
from modeldex.identify.readers.unpickler import StorageRef, load_pickle_bytes
from modeldex.identify.records import Header

DATA_PKL = re.compile(r"^([^/]+)/data\.pkl$")
_KNOWN_MEMBER = re.compile(
    r"^[^/]+/(?:data/\d+|data\.pkl|version|byteorder|\.format_version|\.storage_alignment|\.data/version"
    r"|\.data/serialization_id)$"
)
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".dat", ".data")
MAX_PICKLE_BYTES = 256 << 20
"""data.pkl of the largest real checkpoints is a few MB; more is a decompression bomb or not a checkpoint."""
_MAX_LISTED = 100
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, ValueError, OverflowError)


def _is_encrypted(info: zipfile.ZipInfo) -> bool:
    # zipfile raises a bare RuntimeError for these; torch never writes them, so a set bit means damage or a trick.
    return bool(info.flag_bits & 0x1)


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    if _is_encrypted(info):
        raise ReadError(f"the zip member {info.filename} is marked encrypted: damaged, or not a torch checkpoint")
    if info.file_size > MAX_PICKLE_BYTES:
        raise ReadError(f"{info.filename} is {info.file_size:,} bytes, too large for a checkpoint's pickle")
    try:
        return zf.read(info)
    except _ZIP_ERRORS as exc:
        raise ReadError(f"the zip member {info.filename} is damaged ({exc})") from exc


def _looks_like_pickle(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    if _is_encrypted(info):
        return False
    if info.filename.lower().endswith(_PICKLE_SUFFIXES):
        return True
    if info.is_dir() or info.file_size < 2:
        return False
    try:
        with zf.open(info) as member:
            head = member.read(2)
    except _ZIP_ERRORS:
        return False
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _scan_extra_pickles(zf: zipfile.ZipFile, members: list[zipfile.ZipInfo]) -> dict[str, list[str]]:
    unsafe: dict[str, list[str]] = {}
    for info in members:
        if info.file_size > MAX_PICKLE_BYTES or not _looks_like_pickle(zf, info):
            continue
        try:
            data = zf.read(info)
        except _ZIP_ERRORS:
            continue
        found = scan_globals(data).unsafe
        if found:
            unsafe[info.filename] = found
    return unsafe


def _check_storages(storages: dict[str, StorageRef], members: dict[str, zipfile.ZipInfo], prefix: str) -> None:
    for key, storage in storages.items():
        info = members.get(f"{prefix}/data/{key}")
        if info is None:
            raise ReadError(f"data.pkl refers to storage {key}, which is missing from the archive")
        need = storage.numel * ELEMENT_BYTES.get(storage.dtype, 0)
        if info.file_size < need:
            raise ReadError(f"storage {key} holds {info.file_size:,} bytes where its tensors need {need:,}")


def read_torch_zip(file: BinaryIO) -> Header:
    """Read a torch zip checkpoint's tensor descriptions without its data; unsafe pickles are not unpickled."""
    try:
        zf = zipfile.ZipFile(file)
        infos = zf.infolist()
    except _ZIP_ERRORS as exc:
        raise ReadError("a damaged or truncated zip archive (an interrupted download?)") from exc
    with zf:
        pkls = [info for info in infos if DATA_PKL.match(info.filename)]
        unexpected = [info for info in infos if not info.is_dir() and not _KNOWN_MEMBER.match(info.filename)]
        extra_unsafe = _scan_extra_pickles(zf, unexpected + pkls[1:])
        extra: dict[str, Any] = {"container": "torch_zip"}
        if unexpected:
            extra["unexpected_members"] = [info.filename for info in unexpected[:_MAX_LISTED]]
        if extra_unsafe:
            extra["unsafe_members"] = extra_unsafe
        if not pkls:
            if extra_unsafe:
                return unsafe_header([g for found in extra_unsafe.values() for g in found], extra)
            raise ReadError("a zip archive, not a torch checkpoint (there is no data.pkl inside): unpack it first")

        main = pkls[0]
        match = DATA_PKL.match(main.filename)
        assert match is not None  # selected by this very pattern above
        prefix = match.group(1)
        extra["zip_prefix"] = prefix
        members = {info.filename: info for info in infos}
        byteorder = members.get(f"{prefix}/byteorder")
        if byteorder is not None and byteorder.file_size <= 16:
            extra["byteorder"] = _read_member(zf, byteorder).decode("ascii", "replace").strip()

        contents = load_pickle_bytes(_read_member(zf, main), what="data.pkl")
        if not contents.unsafe_globals:
            _check_storages(contents.storages, members, prefix)
        header = pickle_header(contents, extra)
    if extra_unsafe:
        found = {g for globals_ in extra_unsafe.values() for g in globals_}
        header.unsafe_globals = sorted(found.union(header.unsafe_globals))
    return header
