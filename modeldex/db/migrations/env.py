"""Alembic environment for modeldex.

Two ways in: `modeldex.db.migrate.ensure_schema` hands over an open connection (already inside the transaction
that holds the migration lock), and a developer running `alembic` from the repository root gets an engine built
from `sqlalchemy.url` in alembic.ini (or `-x url=...`).
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection

from modeldex.db.engine import make_engine
from modeldex.db.migrate import include_object
from modeldex.db.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # A revision must not import modeldex.db.models (it changes after the revision is written): write the
    # column type UTCDateTime stores, which is all the schema knows about.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode makes autogenerate write copy-and-move table rebuilds.
        render_as_batch=True,
        include_object=include_object,
        compare_type=True,
        render_item=_render_item,
        **kwargs,
    )


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("alembic: no database URL (set sqlalchemy.url in alembic.ini or pass -x url=...)")
    return url


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given = config.attributes.get("connection")
    if isinstance(given, Connection):
        _run(given)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
