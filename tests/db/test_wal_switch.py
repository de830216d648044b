"""Two processes creating the database at the same moment both get a WAL connection.

Switching a new file to WAL reads and then writes it; SQLite breaks the resulting lock deadlock by failing one
side at once with "database is locked" (the busy handler is not called), so the engine retries. The race itself
shows up about once in a hundred simultaneous starts, too rarely to test by racing; these tests drive the retry
with a cursor that fails the way SQLite does.
"""

from __future__ import annotations

import sqlite3

import pytest

from modeldex.db import engine as engine_module


class LockedCursor:
    """Fails `PRAGMA journal_mode=WAL` a set number of times with SQLite's own error, then succeeds."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or sqlite3.OperationalError("database is locked")
        self.calls = 0

    def execute(self, statement: str) -> None:
        assert statement == "PRAGMA journal_mode=WAL"
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error


def test_locked_switch_is_retried_until_it_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module.time, "sleep", lambda _s: None)
    cursor = LockedCursor(failures=3)
    engine_module._switch_to_wal(cursor)
    assert cursor.calls == 4


def test_other_errors_are_not_retried() -> None:
    cursor = LockedCursor(failures=1, error=sqlite3.DatabaseError("file is not a database"))
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        engine_module._switch_to_wal(cursor)
    assert cursor.calls == 1


def test_retrying_stops_at_the_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(engine_module.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(engine_module.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    cursor = LockedCursor(failures=10**9)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        engine_module._switch_to_wal(cursor)
    assert engine_module.BUSY_TIMEOUT_MS / 1000 - 0.2 <= clock[0] <= engine_module.BUSY_TIMEOUT_MS / 1000
