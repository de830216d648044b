"""A migrated database for hub tests: one template per session, a copy per test (migrating costs ~0.3 s)."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from modeldex.db.engine import make_engine, session_factory
from modeldex.db.migrate import ensure_schema


def make_template(folder: Path) -> Path:
    """Migrate a new database file in `folder` and return its path."""
    path = folder / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    ensure_schema(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


def copy_database(template: Path, path: Path) -> Path:
    """A copy of the template at `path` (its folder created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)
    return path


def sessions_for(path: Path) -> sessionmaker[Session]:
    """A session factory on the database file (a fresh engine: safe in a forked or spawned child too)."""
    return session_factory(make_engine(f"sqlite:///{path}"))
