"""Helpers the sort tests share: test files, a stand-in identify, journal access, folder snapshots."""

from __future__ import annotations

import os
from pathlib import Path

from modeldex.db.engine import make_engine, session_factory
from modeldex.db.sort_journal import SqlJournal
from modeldex.identify.records import Identification


def open_journal(db_path: Path) -> SqlJournal:
    """A fresh engine and journal on the database file (a forked child must not reuse the parent's)."""
    return SqlJournal(session_factory(make_engine(f"sqlite:///{db_path}")))


def write(path: Path, content: bytes | str | None = None) -> Path:
    """Create a file (and its folders); default content is unique to the path, so no two files are duplicates."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        content = ("content of " + str(path) + "\n") * 40
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


class FakeIdentify:
    """identify_path stand-in: the answer depends on the file name, so planner tests need no real model files.

    `kinds` maps a file name to (kind, base, algo); files not listed are `unknown`. Names containing "unsafe" are
    unsafe pickles; names containing "broken" fail to read.
    """

    def __init__(self, kinds: dict[str, tuple[str, str, str | None]] | None = None) -> None:
        self.kinds = kinds or {}
        self.calls: list[Path] = []

    def __call__(self, path: Path) -> Identification:
        self.calls.append(path)
        ident = Identification(path=str(path), format="safetensors")
        if "unsafe" in path.name:
            ident.format = "pickle"
            ident.unsafe = True
            ident.unsafe_globals = ["os.system"]
        elif "broken" in path.name:
            ident.error = "truncated file"
        elif path.name in self.kinds:
            ident.kind, ident.base, ident.algo = self.kinds[path.name]
        return ident


Tree = dict[str, bytes]


def snapshot(*folders: Path) -> Tree:
    """Every regular file and symlink under the folders: relative path (with the folder's name) -> content."""
    found: Tree = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink():
                found[f"{folder.name}/{path.relative_to(folder).as_posix()}"] = b"->" + os.fsencode(os.readlink(path))
            elif path.is_file():
                found[f"{folder.name}/{path.relative_to(folder).as_posix()}"] = path.read_bytes()
    return found
