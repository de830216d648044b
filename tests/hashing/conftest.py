"""Fixtures for the hashing and scan tests: a migrated SQLite database in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from modeldex.db.engine import make_engine, session_factory
from modeldex.db.migrate import ensure_schema


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'modeldex.db'}")
    ensure_schema(engine)
    yield session_factory(engine)
    engine.dispose()
