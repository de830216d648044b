"""Bring a database to the schema this code expects: Alembic `upgrade head` from the migrations inside the package.

Every command that opens the database calls `ensure_schema` first, so the already-at-head path must stay cheap:
one connection and one read of `alembic_version`; Alembic itself is imported only when there is work to do.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DatabaseError as SQLAlchemyDatabaseError

from modeldex.errors import DatabaseError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

HEAD_REVISION = "0003"
"""The newest revision in migrations/versions. Kept here so that the at-head check needs no Alembic import
(about 0.1 s on every command start); a test fails when a new revision is added without updating it."""

VERSION_TABLE = "alembic_version"

FTS_TABLE = "model_fts"
"""The FTS5 index over models (SQLite only); created by a migration, not by the models, so autogenerate skips it."""

# Any constant works; it only has to be the same in every modeldex process sharing a PostgreSQL database.
_PG_MIGRATION_LOCK = 0x6D6F64656C646578  # "modeldex"


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Alembic filter: leave the FTS5 table and the shadow tables SQLite makes for it out of autogenerate."""
    if type_ == "table" and name is not None and (name == FTS_TABLE or name.startswith(FTS_TABLE + "_")):
        return False
    return True


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config that points at the migrations shipped in the package (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def script_directory() -> ScriptDirectory:
    """The revision graph of the shipped migrations (parsed once per process)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this code knows."""
    return HEAD_REVISION


def _known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in script_directory().walk_revisions())


def current_revisions(connection: Connection) -> tuple[str, ...]:
    """The revisions recorded in the database; empty for a database never migrated."""
    # Plain SQL rather than Alembic's MigrationContext: this runs on every start and must not import Alembic.
    if not inspect(connection).has_table(VERSION_TABLE):
        return ()
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    return tuple(sorted(row[0] for row in rows))


def ensure_schema(engine: Engine) -> None:
    """Upgrade the database behind `engine` to the newest schema, safely when several processes start at once.

    Raises `DatabaseError` when the file is not a database, cannot be opened or locked, holds tables that no
    modeldex migration made, or was written by a newer modeldex.
    """
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            current = current_revisions(connection)
            connection.rollback()
        if current == (head_revision(),):
            return
        _check_known(current, where)
        _upgrade(engine, where)
    except SQLAlchemyDatabaseError as exc:
        raise DatabaseError(f"cannot open the database {where}: {_reason(exc)}") from exc


def _upgrade(engine: Engine, where: str) -> None:
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A batch migration rebuilds a table by copy, drop and rename; with foreign keys on, the drop would
            # cascade-delete child rows. The pragma is ignored inside a transaction, so it goes first.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        try:
            _lock(connection)
            # Re-read under the lock: another process may have finished the upgrade while this one waited.
            current = current_revisions(connection)
            if current != (head_revision(),):
                _check_known(current, where)
                if not current:
                    _check_empty(connection, where)
                from alembic import command

                command.upgrade(alembic_config(connection), "head")
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    connection.rollback()
                    raise DatabaseError(f"migrating {where} would break {len(broken)} foreign key(s); nothing changed")
            connection.commit()
        finally:
            if sqlite:
                connection.rollback()
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def _lock(connection: Connection) -> None:
    """Take the database-wide write lock that serialises migrations between processes."""
    dialect = connection.dialect.name
    if dialect == "sqlite":
        # BEGIN IMMEDIATE takes SQLite's write lock now; a second process waits here (busy timeout) and then sees
        # the schema at head. No lock file is left behind to go stale.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})


def _check_known(current: tuple[str, ...], where: str) -> None:
    unknown = [rev for rev in current if rev not in _known_revisions()]
    if unknown:
        raise DatabaseError(
            f"the database {where} is at schema revision {', '.join(unknown)}, which this modeldex does not know "
            f"(it knows up to {head_revision()}); it was written by a newer modeldex: upgrade modeldex or use "
            "another database"
        )


def _check_empty(connection: Connection, where: str) -> None:
    # alembic_version alone is what a downgrade to base leaves behind: still ours.
    tables = sorted(name for name in inspect(connection).get_table_names() if name != VERSION_TABLE)
    if tables:
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise DatabaseError(
            f"the database {where} already holds tables ({shown}) but no modeldex schema revision; "
            "it belongs to something else: point modeldex at another database"
        )


def _reason(exc: SQLAlchemyDatabaseError) -> str:
    """The driver's own message ("file is not a database", "database is locked"), without SQL or traceback."""
    return str(exc.orig) if exc.orig is not None else str(exc).splitlines()[0]
