"""Engine and session factory. SQLite gets WAL mode, a busy timeout and foreign keys; any SQLAlchemy URL works."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from modeldex.errors import DatabaseError

BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str) -> Engine:
    """Create an engine for `url`; for a file-backed SQLite URL the folder is created and WAL switched on."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"not a database URL: {url!r}") from exc
    where = parsed.render_as_string(hide_password=True)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            folder = Path(parsed.database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                reason = (
                    "a file is in the way" if isinstance(exc, FileExistsError | NotADirectoryError) else exc.strerror
                )
                raise DatabaseError(f"cannot create the folder {folder} for the database {where}: {reason}") from exc
        connect_args = {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    try:
        engine = create_engine(parsed, connect_args=connect_args)
    except NoSuchModuleError as exc:
        raise DatabaseError(f"{where}: SQLAlchemy knows no database called {parsed.drivername!r}") from exc
    except ImportError as exc:
        # The dialect exists but its driver package (psycopg, mysqlclient...) is not installed.
        missing = exc.name or str(exc)
        raise DatabaseError(f"{where}: the database driver {missing!r} is not installed (pip install it)") from exc
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    _switch_to_wal(cur)
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _switch_to_wal(cur: Any) -> None:
    """Turn WAL on, waiting out other processes that do the same to a new file at the same moment.

    Switching the journal mode reads the file and then writes it; two connections doing that at once deadlock, and
    SQLite fails one at once with "database is locked" instead of calling the busy handler. So retry here, up to
    the busy timeout. Once the file is in WAL mode the pragma is a plain read.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit (the CLI prints them after committing)."""
    return sessionmaker(engine, expire_on_commit=False)
