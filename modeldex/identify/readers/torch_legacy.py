"""Pickle-stream files: torch's legacy (pre-1.6, non-zip) format and plain pickles (`.pkl`).

A legacy file is five pickles back to back: the magic number, the protocol version (1001), sys_info, the object
(persistent ids `('storage', type, key, location, numel, view_metadata)`), the storage keys; then each storage's
raw data as an 8-byte element count and the bytes. We unpickle the five with stubs and stop; storage data is never
read, but where each storage's bytes lie is computed from the keys' order and sizes, for converters.

A file whose first pickle is not the magic number is a plain pickle: its first object is the content. Either way the
first pickle is checked first, so a "magic number" pickle that carries globals is caught like any other.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from modeldex.errors import ReadError
from modeldex.identify.readers.dtypes import ELEMENT_BYTES
from modeldex.identify.readers.pickle_header import pickle_header, unsafe_header
from modeldex.identify.readers.unpickler import PickleContents, StorageRef, load_pickle_stream
from modeldex.identify.records import Header

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001


class _Unsafe(Exception):
    def __init__(self, globals_: list[str]) -> None:
        super().__init__(", ".join(globals_))
        self.globals = globals_


def _next(file: BinaryIO, what: str) -> PickleContents:
    contents = load_pickle_stream(file, what=what)
    if contents.unsafe_globals:
        raise _Unsafe(contents.unsafe_globals)
    return contents


def _storage_offsets(storages: dict[str, StorageRef], keys: Any, data_start: int, size: int) -> dict[str, int]:
    """Each storage's absolute byte offset in the file, for as long as the layout can be followed."""
    if not isinstance(keys, list) or not all(isinstance(k, str | int) for k in keys):
        raise ReadError("the legacy torch file's storage key list is damaged")
    offsets: dict[str, int] = {}
    pos = data_start
    for key in map(str, keys):
        storage = storages.get(key)
        width = ELEMENT_BYTES.get(storage.dtype) if storage else None
        if storage is None or width is None:
            return offsets  # a storage we cannot size: the rest of the layout is unknown
        offsets[key] = pos + 8  # after the 8-byte element count
        pos += 8 + storage.numel * width
    if pos > size:
        raise ReadError(
            f"truncated: the storages end at byte {pos:,} but the file has {size:,} bytes (an interrupted download?)"
        )
    return offsets


def read_pickle_file(file: BinaryIO, size: int) -> Header:
    """Read a legacy torch file or a plain pickle from the start of `file`."""
    extra: dict[str, Any] = {"container": "pickle"}
    try:
        first = _next(file, "the pickle")
        if type(first.obj) is not int or first.obj != MAGIC_NUMBER:
            return pickle_header(first, extra)
        extra["container"] = "torch_legacy"
        protocol = _next(file, "the legacy torch header").obj
        if protocol != PROTOCOL_VERSION:
            raise ReadError(f"a legacy torch file with unsupported protocol version {protocol!r}")
        sys_info = _next(file, "the legacy torch header").obj
        if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
            extra["byteorder"] = "big"
        contents = _next(file, "the legacy torch object")
        keys = _next(file, "the legacy torch storage list").obj
    except _Unsafe as exc:
        return unsafe_header(exc.globals, extra)
    offsets = _storage_offsets(contents.storages, keys, file.tell(), size)
    header = pickle_header(contents, extra)
    for key, entry in header.extra["storages"].items():
        if key in offsets:
            entry["data_offset"] = offsets[key]
    return header
