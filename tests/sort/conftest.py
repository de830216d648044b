"""Fixtures for the sort tests: a migrated journal database per test, a stand-in identify, two fake filesystems."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sort_helpers import open_journal

from modeldex.db.engine import make_engine
from modeldex.db.migrate import ensure_schema
from modeldex.db.sort_journal import SqlJournal


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database at the newest schema; each test gets a copy (migrating per test would cost ~0.3 s each)."""
    path = tmp_path_factory.mktemp("sortdb") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    ensure_schema(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture
def db_path(tmp_path: Path, migrated_db: Path) -> Path:
    path = tmp_path / "data" / "modeldex.db"
    path.parent.mkdir()
    shutil.copyfile(migrated_db, path)
    return path


@pytest.fixture
def journal(db_path: Path) -> SqlJournal:
    return open_journal(db_path)


@pytest.fixture
def two_filesystems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    """Two folders that behave like separate filesystems: link and rename between them fail with EXDEV."""
    first, second = tmp_path / "fs-a", tmp_path / "fs-b"
    first.mkdir()
    second.mkdir()
    real_link, real_rename = os.link, os.rename

    def device(path: object) -> str:
        text = os.path.abspath(os.fsdecode(path))  # type: ignore[arg-type]
        return "b" if text.startswith(str(second) + os.sep) else "a"

    def guard(src: object, dst: object) -> None:
        if device(src) != device(dst):
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), os.fsdecode(src), None, os.fsdecode(dst))  # type: ignore[arg-type]

    def link(src: object, dst: object, *args: object, **kwargs: object) -> None:
        guard(src, dst)
        real_link(src, dst, *args, **kwargs)  # type: ignore[arg-type]

    def rename(src: object, dst: object, *args: object, **kwargs: object) -> None:
        guard(src, dst)
        real_rename(src, dst, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(os, "rename", rename)
    yield first, second
