"""The pure half of `modeldex scan`: what to look at, and what one file yields (identify + hashes).

The half that keeps the results (the cache in `local_file`) lives in `modeldex.db.scanning`, since identify may not
import the database.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modeldex.errors import ReadError
from modeldex.identify.hashing import FileHashes, hash_file
from modeldex.identify.identify import identify_path, iter_targets
from modeldex.identify.readers.diffusers_folder import is_diffusers_folder
from modeldex.identify.records import Identification
from modeldex.identify.sorting.partial import ARIA2_SUFFIX, PARTIAL_SUFFIXES

AUTOV3_KINDS = frozenset({"lora", "embedding", "hypernetwork"})
"""Kinds A1111 knows by AutoV3 ("Lora hashes", "TI hashes"): adapters whose metadata users edit."""

NOT_MODEL_SUFFIXES = (
    ".png", ".jpg", ".jpeg", ".webp", ".gif", ".mp4", ".webm",
    ".txt", ".md", ".html", ".htm", ".json", ".yaml", ".yml", ".toml", ".ini", ".csv", ".log", ".info", ".py",
)  # fmt: skip
"""Previews, sidecars and notes that sit beside models; a folder walk passes them by (a path named explicitly is
always looked at, whatever its name)."""


@dataclass(frozen=True, slots=True)
class Target:
    """One thing to scan: a file, or a diffusers folder taken as one model."""

    display: str
    """The path as the user gave it, or as found under a folder they gave."""
    path: str
    """Absolute path (`os.path.abspath`): the cache key."""
    size: int
    mtime_ns: int
    inode: int
    folder: bool = False
    """A diffusers folder: size is the sum of its files, mtime_ns the newest of them; it is not hashed."""


@dataclass(frozen=True, slots=True)
class Problem:
    """A path that could not be scanned at all (missing, unreadable folder...)."""

    display: str
    path: str
    error: str


@dataclass(slots=True)
class ScanRecord:
    """What a scan knows about one target: identify's answer, its stat and hashes, and whether it came from cache."""

    target: Target | Problem
    identification: Identification
    hashes: FileHashes | None = None
    cached: bool = False

    @property
    def error(self) -> str | None:
        return self.identification.error

    def to_json(self) -> dict[str, Any]:
        """identify's fields in contract order, then size, mtime_ns and the hashes (lower-case hex or null)."""
        out = self.identification.to_json()
        target = self.target
        out["size"] = target.size if isinstance(target, Target) else None
        out["mtime_ns"] = target.mtime_ns if isinstance(target, Target) else None
        if self.hashes is not None:
            out.update(self.hashes.to_json())
        else:
            out.update(dict.fromkeys(("sha256", "autov1", "autov2", "autov3", "crc32", "blake3")))
        return out


def walk(paths: Iterable[Path]) -> Iterator[Target | Problem]:
    """Every target under `paths`, in the order given and, inside folders, in identify's order.

    Files found in folders are skipped when their name marks them as a download in progress or as a preview or
    sidecar; symlinks to files are followed (their target's size, mtime and inode).
    """
    for given in paths:
        display = str(given)
        try:
            st = os.stat(given)
        except OSError as exc:
            reason = "no such file or folder" if isinstance(exc, FileNotFoundError) else exc.strerror or str(exc)
            yield Problem(display, os.path.abspath(given), f"cannot scan {display}: {reason}")
            continue
        if not stat.S_ISDIR(st.st_mode):
            yield _file_target(display, st)
            continue
        found = [os.fspath(p) for p in iter_targets([given], recursive=True)]
        listed = set(found)
        for text in found:
            if _passed_by(text, listed):
                continue
            try:
                st = os.stat(text)
            except OSError as exc:
                yield Problem(text, os.path.abspath(text), f"cannot scan {text}: {exc.strerror or exc}")
                continue
            if not stat.S_ISDIR(st.st_mode):
                yield _file_target(text, st)
            elif _is_model_folder(Path(text)):
                yield _folder_target(Path(text))
            else:  # iter_targets hands back a plain folder only when it could not list it
                yield Problem(text, os.path.abspath(text), f"cannot scan {text}: the folder could not be read")


def _is_model_folder(path: Path) -> bool:
    try:
        return is_diffusers_folder(path)
    except OSError:
        return False


def _passed_by(path: str, listed: set[str]) -> bool:
    """Sidecars, previews and downloads in progress (by name, or by an aria2 control file in the listing)."""
    name = os.path.basename(path).lower()
    if name.endswith(NOT_MODEL_SUFFIXES) or name.endswith(PARTIAL_SUFFIXES) or name.endswith(ARIA2_SUFFIX):
        return True
    return path + ARIA2_SUFFIX in listed


def _file_target(display: str, st: os.stat_result) -> Target | Problem:
    if not stat.S_ISREG(st.st_mode):
        # A FIFO or a device would block the reader or never end.
        return Problem(display, os.path.abspath(display), f"cannot scan {display}: not a regular file")
    return Target(display, os.path.abspath(display), st.st_size, st.st_mtime_ns, st.st_ino)


def _folder_target(folder: Path) -> Target | Problem:
    """A model folder's stat: total size and newest mtime of everything in it, so any change shows."""
    display = str(folder)
    absolute = os.path.abspath(folder)
    try:
        top = os.stat(folder)
    except OSError as exc:
        return Problem(display, absolute, f"cannot scan {display}: {exc.strerror or exc}")
    size = 0
    newest = top.st_mtime_ns
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:
                continue
            newest = max(newest, st.st_mtime_ns)
            if stat.S_ISREG(st.st_mode):
                size += st.st_size
    return Target(display, absolute, size, newest, top.st_ino, folder=True)


def wants_autov3(identification: Identification, force: bool) -> bool:
    """AutoV3 is computed for adapters and embeddings, and for everything when the user asks."""
    return force or identification.kind in AUTOV3_KINDS


def examine(
    target: Target, *, autov3: bool = False, threaded: bool | None = None, stop: threading.Event | None = None
) -> ScanRecord:
    """Identify and hash one target; every problem ends up in the record's `error`, nothing raises for a bad file.

    The file is hashed even when identify cannot read it: CivitAI may still know it by hash. Raises
    `HashingStopped` once `stop` is set.
    """
    identification = identify_path(Path(target.path), display=target.display)
    if target.folder:
        return ScanRecord(target, identification)
    try:
        hashes = hash_file(Path(target.path), autov3=wants_autov3(identification, autov3), threaded=threaded, stop=stop)
    except ReadError as exc:
        if identification.error is None:
            identification.error = exc.message
        return ScanRecord(target, identification)
    return ScanRecord(target, identification, hashes)


def problem_record(problem: Problem) -> ScanRecord:
    """The record for a path that could not be scanned."""
    return ScanRecord(problem, Identification(path=problem.display, error=problem.error))
