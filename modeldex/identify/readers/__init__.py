"""Safe header readers: tensor keys, shapes, dtypes and metadata of model files, without loading tensor data.

`read_header(path)` sniffs the container by its magic bytes (never by the extension) and dispatches to the
safetensors, torch zip, legacy torch / plain pickle or GGUF reader, or reads a diffusers folder component by
component. Pickles are never executed: globals outside the allow-list make the header come back with
`unsafe_globals` and no tensors. Anything unreadable raises `ReadError` with a message written for the user.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from modeldex.errors import ReadError
from modeldex.identify.readers.diffusers_folder import is_diffusers_folder, read_diffusers_folder
from modeldex.identify.readers.gguf_reader import read_gguf
from modeldex.identify.readers.pickle_scan import scan_globals
from modeldex.identify.readers.safetensors_reader import read_safetensors
from modeldex.identify.readers.sniff import SNIFF_BYTES, Container, sniff
from modeldex.identify.readers.torch_legacy import read_pickle_file
from modeldex.identify.readers.torch_zip import read_torch_zip
from modeldex.identify.records import Header

__all__ = ["read_header"]

_JSON_SNIFF_LIMIT = 1 << 20
_DOTTED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _os_error(path: Path, exc: OSError) -> ReadError:
    if exc.errno == errno.ELOOP:
        return ReadError("a symlink loop")
    if isinstance(exc, FileNotFoundError):
        if os.path.islink(path):
            return ReadError(f"a dangling symlink (its target {os.readlink(path)} does not exist)")
        return ReadError("no such file or folder")
    if isinstance(exc, PermissionError):
        return ReadError("permission denied")
    return ReadError(f"could not be read ({exc.strerror or exc})")


def _read_open_file(fd: int) -> Header:
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ReadError("not a regular file (a device, a pipe or a socket)")
        size = info.st_size
        head = file.read(SNIFF_BYTES)
        whole = None
        if size <= _JSON_SNIFF_LIMIT and head.lstrip()[:1] in (b"{", b"["):
            whole = head + file.read()
        container = sniff(head, size, whole)
        if container is Container.SAFETENSORS:
            return read_safetensors(file, size)
        if container is Container.GGUF:
            return read_gguf(file, size)
        if container is Container.TORCH_ZIP:
            file.seek(0)
            return read_torch_zip(file)
        if container is Container.MAYBE_PICKLE:
            # No header says "pickle" here: accept it only if it parses as one, or names real-looking globals.
            file.seek(0)
            scan = scan_globals(file)
            plausible = [g for g in scan.unsafe if all(_DOTTED_NAME.match(part) for part in g.rsplit(".", 1))]
            if not scan.complete and not plausible:
                raise ReadError(f"not a model file (unrecognised content starting with {head[:8].hex(' ')})")
        file.seek(0)
        return read_pickle_file(file, size)


def _read_file(path: Path) -> Header:
    try:
        # O_NONBLOCK: opening a FIFO must not hang; it is refused as "not a regular file" right after.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise _os_error(path, exc) from exc
    try:
        return _read_open_file(fd)
    except OSError as exc:
        raise _os_error(path, exc) from exc


def read_header(path: Path) -> Header:
    """Read what a model file or diffusers folder holds, without loading tensor data or running pickled code."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        raise _os_error(path, exc) from exc
    if stat.S_ISDIR(info.st_mode):
        try:
            found = is_diffusers_folder(path)
        except OSError as exc:
            raise _os_error(path, exc) from exc
        if not found:
            raise ReadError(
                "a folder that is not a diffusers model (no model_index.json, and no config.json beside weights)"
            )
        return read_diffusers_folder(path, _read_file)
    return _read_file(path)
