"""File-system steps that never overwrite anything: placing a file without replacing, verified copies, fsync.

A same-filesystem move is `link(src, dst)` then `unlink(src)`: `link` fails when `dst` exists, so nothing is ever
replaced, and a kill between the two steps leaves two names for one inode, which recovery recognises. Where hard
links are not supported (FAT, some network filesystems) it falls back to an existence check and `rename`.
Across filesystems (EXDEV) the bytes are copied to a temporary name in the destination folder, fsynced, read back
and compared by SHA256, put in place, and only then is the source removed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from modeldex.errors import SortError

Checkpoint = Callable[[str], None]
"""Called between the steps of an operation with a label; tests use it to kill the process at every point."""

COPY_CHUNK = 8 << 20
_NO_HARDLINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS, errno.EACCES}


def no_checkpoint(_label: str) -> None:
    """The default checkpoint: does nothing."""


def sha256_file(path: Path) -> str:
    """Lower-case hex SHA256 of a file's content (symlinks followed)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fsync_dir(folder: Path) -> None:
    """Make renames and new names inside `folder` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the data itself was synced already
    finally:
        os.close(fd)


def same_file(a: Path, b: Path) -> bool:
    """Whether two names are one inode (a hard link pair), without following symlinks."""
    try:
        sa, sb = os.lstat(a), os.lstat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def place_noreplace(src: Path, dst: Path, checkpoint: Checkpoint = no_checkpoint) -> None:
    """Move `src` to `dst` on one filesystem, failing with FileExistsError if `dst` exists.

    Raises OSError with errno EXDEV when the two are on different filesystems.
    """
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_HARDLINKS:
            raise
        # No hard links here: check then rename. A file created in the instant between the two would be replaced;
        # nothing better exists portably.
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst)) from exc
        os.rename(src, dst)
        return
    checkpoint("linked")
    os.unlink(src)


def copy_verified(src: Path, dst: Path, tmp: Path, sha256: str | None, checkpoint: Checkpoint = no_checkpoint) -> None:
    """Copy `src` to `dst` through `tmp` (same folder as `dst`), verify it, and put it in place without replacing.

    The source's bytes are hashed while read; when `sha256` is given they must match it (the file did not change
    since it was planned). The written copy is fsynced, read back and must hash the same. A stale `tmp` from an
    earlier, interrupted attempt is replaced.
    """
    if os.path.lexists(tmp):
        os.unlink(tmp)
    source_hash = hashlib.sha256()
    try:
        with open(src, "rb") as fin, open(tmp, "xb") as fout:
            while chunk := fin.read(COPY_CHUNK):
                source_hash.update(chunk)
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        checkpoint("copied")
        got = source_hash.hexdigest()
        if sha256 is not None and got != sha256:
            raise SortError(f"{src} changed since the sort was planned (SHA256 differs); it was not moved")
        if sha256_file(tmp) != got:
            raise SortError(f"the copy of {src} at {dst.parent} does not read back the same; the source is kept")
        shutil.copystat(src, tmp)
        place_noreplace(tmp, dst, checkpoint)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    fsync_dir(dst.parent)
    checkpoint("placed")


def move_anywhere(src: Path, dst: Path, tmp: Path, sha256: str | None, checkpoint: Checkpoint = no_checkpoint) -> None:
    """Move `src` to `dst` without replacing anything: a link/rename on one filesystem, a verified copy across."""
    try:
        place_noreplace(src, dst, checkpoint)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    copy_verified(src, dst, tmp, sha256, checkpoint)
    os.unlink(src)
    fsync_dir(src.parent)
