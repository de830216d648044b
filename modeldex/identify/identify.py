"""identify_path: read a file's header and classify it; iter_targets: the files and folders a command covers.

Neither raises for a bad file: every problem ends up in the `error` of that file's Identification.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from modeldex.errors import ReadError
from modeldex.identify.classify import classify
from modeldex.identify.readers import read_header
from modeldex.identify.readers.diffusers_folder import is_diffusers_folder
from modeldex.identify.records import Identification

DIRECTORY_ERROR = "is a directory (use --recursive)"


def identify_path(path: Path, display: str | None = None) -> Identification:
    """Identify one file or diffusers folder; `display` is the path as the user gave it (default: `str(path)`)."""
    shown = display if display is not None else str(path)
    try:
        if path.is_dir() and not is_diffusers_folder(path):
            return Identification(path=shown, error=DIRECTORY_ERROR)
        header = read_header(path)
    except ReadError as exc:
        return Identification(path=shown, error=exc.message)
    except OSError as exc:
        return Identification(path=shown, error=f"could not be read ({exc.strerror or exc})")
    found = classify(header, path.name)
    ident = Identification(
        path=shown,
        kind=found.kind,
        base=found.base,
        variant=found.variant,
        prediction=found.prediction,
        algo=found.algo,
        format=header.format,
        unsafe=bool(header.unsafe_globals),
        unsafe_globals=list(header.unsafe_globals),
        evidence=list(found.evidence),
    )
    if ident.unsafe:
        ident.evidence.insert(0, "pickle calls globals outside the allow-list; it was not unpickled")
    return ident


def iter_targets(paths: Iterable[Path], recursive: bool) -> Iterator[Path]:
    """The paths in the order given; with `recursive`, a folder becomes its files in sorted path order.

    A diffusers folder is one target and is never descended into. Every regular file is listed (hidden ones
    too), and so are symlinks that lead nowhere (so they get reported); symlinked folders are followed once,
    never round a loop. Without `recursive` a folder is yielded as it is (identify_path reports it).
    """
    for path in paths:
        if recursive and _is_plain_folder(path):
            yield from _walk(path)
        else:
            yield path


def _is_plain_folder(path: Path) -> bool:
    try:
        return path.is_dir() and not is_diffusers_folder(path)
    except (ReadError, OSError):
        return False  # yielded as a target: identify_path reports what is wrong with it


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    folders = [root]
    # Symlinked folders wait until every real folder is seen, so a file is listed under its real path
    # and a link back into the tree (or round a loop) adds nothing.
    linked: list[Path] = []
    while folders or linked:
        folder = folders.pop() if folders else linked.pop(0)
        try:
            info = folder.stat()
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            found.append(folder)  # unreadable folder: reported by identify_path
            continue
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()
                is_file = entry.is_file()
            except OSError:  # a symlink loop: report it
                found.append(path)
                continue
            if is_dir:
                if not _is_plain_folder(path):
                    found.append(path)
                elif entry.is_symlink():
                    linked.append(path)
                else:
                    folders.append(path)
            elif is_file or entry.is_symlink():
                found.append(path)
    found.sort(key=lambda p: p.parts)
    return found
