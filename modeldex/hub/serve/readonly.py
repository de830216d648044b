"""Sessions that cannot write: what `modeldex serve` uses on the user's own database.

The server only reads, but a bug (or a future route) must not be able to change the user's index, so every
connection is made read-only by the database itself: `PRAGMA query_only` on SQLite, a read-only default
transaction on PostgreSQL. Other backends get plain sessions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from modeldex.db.engine import session_factory


def read_only_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory on `engine` whose connections refuse writes; connections already pooled are dropped."""
    backend = engine.dialect.name
    if backend in ("sqlite", "postgresql"):
        engine.dispose()  # connections made before the listener would still write
        event.listen(engine, "connect", _query_only if backend == "sqlite" else _pg_read_only)
    return session_factory(engine)


def _query_only(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _pg_read_only(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    cursor.close()
    # Committed at once: the driver opened a transaction for the SET, and a rollback would undo it.
    dbapi_conn.commit()
