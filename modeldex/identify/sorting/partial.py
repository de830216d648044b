"""Telling downloads that are still in progress from finished files.

A file is partial when its name says so (`.part`, `.incomplete`, `.crdownload`, `.tmp`, `.download`), when aria2's
`.aria2` control file sits beside it, or when it is still growing: its size or mtime changes while we watch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

PARTIAL_SUFFIXES = (".part", ".incomplete", ".crdownload", ".tmp", ".download")
ARIA2_SUFFIX = ".aria2"
RECENT_SECONDS = 120.0
"""Only files modified this recently are watched for growth: an older file is not being written to."""


def partial_reason(path: Path) -> str | None:
    """Why `path` is an unfinished download, judged by its name and its neighbours; None when it looks finished."""
    lower = path.name.lower()
    for suffix in PARTIAL_SUFFIXES:
        if lower.endswith(suffix):
            return f"partial download ({suffix} file)"
    if lower.endswith(ARIA2_SUFFIX):
        return "aria2 control file of a download in progress"
    # os.path.exists, not Path.exists: a name at the length limit has no room for the suffix (ENAMETOOLONG), and
    # then no control file can be beside it.
    if os.path.exists(path.with_name(path.name + ARIA2_SUFFIX)):
        return "download in progress (an .aria2 control file is beside it)"
    return None


def _fingerprint(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def growing_files(
    paths: Iterable[Path],
    interval: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.time,
) -> set[Path]:
    """The files among `paths` whose size or mtime changes within `interval` seconds (one wait for all of them).

    Files not modified in the last `RECENT_SECONDS` are not watched, so a folder of old downloads costs no wait.
    A file that vanishes while watched counts as growing (it is being moved or rewritten).
    """
    cutoff = now() - RECENT_SECONDS
    before: dict[Path, tuple[int, int] | None] = {}
    for path in paths:
        fp = _fingerprint(path)
        if fp is None or fp[1] / 1e9 >= cutoff:
            before[path] = fp
    if not before:
        return set()
    if interval > 0:
        sleep(interval)
    return {path for path, fp in before.items() if fp is None or _fingerprint(path) != fp}
