"""Helpers for the store and serve tests: migrated SQLite databases in tmp folders, the fixture catalogue."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from modeldex.db.engine import make_engine, session_factory
from modeldex.db.migrate import ensure_schema
from modeldex.hub.serve.catalog import builtin_catalog_path


def catalog_items() -> list[dict[str, Any]]:
    """A fresh deep copy of the shipped fixture catalogue's items."""
    data = json.loads(builtin_catalog_path().read_text(encoding="utf-8"))
    return copy.deepcopy(data["items"])


def new_database(folder: Path) -> sessionmaker[Session]:
    """A migrated, empty SQLite index in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{folder / 'index.db'}")
    ensure_schema(engine)
    return session_factory(engine)


def make_template(folder: Path, *, with_catalog: bool) -> Path:
    """A migrated index file (holding the fixture catalogue when asked), closed so that it can be copied."""
    from modeldex.hub.store import upsert_models

    factory = new_database(folder)
    if with_catalog:
        with factory() as session:
            upsert_models(session, catalog_items())
            session.commit()
    engine = factory.kw["bind"]
    engine.dispose()  # the last connection to close checkpoints the WAL into the main file
    return folder / "index.db"


def copy_database(template: Path, folder: Path) -> sessionmaker[Session]:
    """A private copy of a template index in `folder`: migrating and loading once per module, not once per test."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, folder / "index.db")
    return session_factory(make_engine(f"sqlite:///{folder / 'index.db'}"))


@contextmanager
def session_of(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session:
        yield session


def find_item(items: list[dict[str, Any]], model_id: int) -> dict[str, Any]:
    return next(item for item in items if item["id"] == model_id)
