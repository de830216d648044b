"""Catalogue files: `{"items": [...]}` in the shape of CivitAI's `/api/v1/models` answer, loaded into a database.

`modeldex serve --catalog FILE` serves one from a private temporary SQLite database; tests and the demo use the
shipped fixture catalogue (`builtin_catalog_path()`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from modeldex.db.engine import make_engine, session_factory
from modeldex.db.migrate import ensure_schema
from modeldex.errors import HubError, UsageError
from modeldex.hub.store import upsert_model

CATALOG_DB_NAME = "catalog.db"


def builtin_catalog_path() -> Path:
    """The fixture catalogue shipped inside the package (25 models, every CivitAI model type)."""
    return Path(str(resources.files("modeldex.hub").joinpath("fixtures", "catalog.json")))


def read_catalog(path: Path) -> list[dict[str, Any]]:
    """The model items of a catalogue file; a bare JSON list of models is accepted too.

    Raises `UsageError` naming the file when it cannot be read or is not such a catalogue.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"catalogue file {path} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"catalogue {path} is a folder, not a JSON file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read catalogue file {path}: {reason}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"catalogue file {path} is not JSON: {exc.msg} at line {exc.lineno}") from exc
    items = data.get("items") if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise UsageError(f'catalogue file {path} must hold {{"items": [...]}} as CivitAI\'s /api/v1/models answers')
    for number, item in enumerate(items, start=1):
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), int) or isinstance(item.get("id"), bool):
            raise UsageError(f"catalogue file {path}: item {number} is not a model object with a numeric id")
    return [dict(item) for item in items]


def load_catalog(items: list[dict[str, Any]], database: Path) -> sessionmaker[Session]:
    """A new SQLite database at `database` holding `items`, and its session factory."""
    engine = make_engine(f"sqlite:///{database}")
    ensure_schema(engine)
    factory = session_factory(engine)
    with factory() as session:
        for number, item in enumerate(items, start=1):
            try:
                upsert_model(session, item)
            except HubError as exc:
                raise UsageError(f"catalogue item {number} (model {item.get('id')}): {exc.message}") from exc
        session.commit()
    return factory
