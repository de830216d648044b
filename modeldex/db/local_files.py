"""Queries over `local_file`: the hash and identify cache of the files on disk.

A row is valid while the file's path, size, mtime_ns and inode are unchanged. Loading is one query for a whole
scan, writing is one statement per batch; nothing here runs a query per file.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Table,
    Text,
    and_,
    case,
    delete,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.orm import Session

from modeldex.db.models import LocalFile

TABLE: Table = LocalFile.__table__  # type: ignore[assignment]  # declared as FromClause, is a Table
COLUMNS = tuple(c.name for c in TABLE.columns)

SCAN_COLUMNS = (
    "path", "size", "mtime_ns", "inode",
    "sha256", "autov1", "autov2", "autov3", "crc32", "blake3",
    "kind", "base", "variant", "prediction", "algo", "format", "unsafe", "unsafe_globals", "error", "evidence",
    "scanned_at",
)  # fmt: skip
"""The columns a scan writes; `version_file_id` and `user_overrides` belong to sync and to the user."""

_JSON_TEXT = ("unsafe_globals", "evidence")

IN_CHUNK = 500
"""Paths per `IN (...)` list: well under SQLite's bound-parameter limit."""
_SEP = os.sep
_AFTER_SEP = chr(ord(_SEP) + 1)  # bytewise, every path under "root/" sorts in ["root/", "root0")


def cached_rows(session: Session, *, roots: Sequence[str] = (), files: Sequence[str] = ()) -> dict[str, Row[Any]]:
    """The rows of the files under each folder in `roots` and of each path in `files`: what a scan reuses.

    Each row has the `SCAN_COLUMNS` but `scanned_at`, and `unsafe_globals` and `evidence` as their JSON text
    (decode them with `json_list`): most cached rows are only compared, never shown.

    One query for the folders, plus one per `IN_CHUNK` named files; the result is keyed by path. Paths are
    absolute, as `os.path.abspath` gives them.
    """
    columns = [
        type_coerce(TABLE.c[name], Text).label(name) if name in _JSON_TEXT else TABLE.c[name]
        for name in SCAN_COLUMNS
        if name != "scanned_at"
    ]
    found: dict[str, Row[Any]] = {}
    if roots:
        query: Select[Any] = select(*columns).where(or_(*(_under(session, root) for root in roots)))
        found.update((row.path, row) for row in session.execute(query).all())
    unique = list(dict.fromkeys(files))
    for start in range(0, len(unique), IN_CHUNK):
        query = select(*columns).where(TABLE.c.path.in_(unique[start : start + IN_CHUNK]))
        found.update((row.path, row) for row in session.execute(query).all())
    return found


@functools.lru_cache(maxsize=4096)
def _json_tuple(text: str) -> tuple[Any, ...]:
    value = json.loads(text)
    return tuple(value) if isinstance(value, list) else ()


def json_list(text: str | None) -> list[Any]:
    """A JSON list column fetched as text by `cached_rows`; files of one kind share evidence, so decoding is
    memoised."""
    return list(_json_tuple(text)) if text else []


def _under(session: Session, root: str) -> ColumnElement[bool]:
    prefix = root if root.endswith(_SEP) else root + _SEP
    if session.get_bind().dialect.name == "sqlite":
        # SQLite compares TEXT bytewise and can then use the unique index; its LIKE is case-blind and cannot.
        return and_(TABLE.c.path >= prefix, TABLE.c.path < prefix[:-1] + _AFTER_SEP)
    return TABLE.c.path.startswith(prefix, autoescape=True)


def upsert_scanned(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or update rows keyed by path with the columns a scan owns (`SCAN_COLUMNS`).

    When a file's SHA256 changed, its CivitAI link (`version_file_id`) no longer holds and is cleared; the user's
    overrides are kept. Uses the database's own upsert where there is one, so a concurrent scan cannot make a
    duplicate.
    """
    if not rows:
        return
    values = [{name: row.get(name) for name in SCAN_COLUMNS} for row in rows]
    for value in values:
        value["unsafe_globals"] = value["unsafe_globals"] or []
        value["evidence"] = value["evidence"] or []
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        _native_upsert(session, dialect, values)
    else:
        _portable_upsert(session, values)


def _native_upsert(session: Session, dialect: str, values: list[dict[str, Any]]) -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    stmt: Any = sqlite.insert(TABLE) if dialect == "sqlite" else postgresql.insert(TABLE)
    changes: dict[str, Any] = {name: stmt.excluded[name] for name in SCAN_COLUMNS if name != "path"}
    changes["version_file_id"] = case(
        (TABLE.c.sha256 == stmt.excluded.sha256, TABLE.c.version_file_id),
        else_=None,
    )
    # user_overrides has a Python-side default only; an insert through this statement must carry it.
    for value in values:
        value["user_overrides"] = {}
    session.execute(stmt.on_conflict_do_update(index_elements=[TABLE.c.path], set_=changes), values)


def _portable_upsert(session: Session, values: list[dict[str, Any]]) -> None:
    existing = {
        row.path: row
        for row in session.execute(
            select(TABLE.c.id, TABLE.c.path, TABLE.c.sha256).where(TABLE.c.path.in_([v["path"] for v in values]))
        )
    }
    fresh = [dict(v, user_overrides={}) for v in values if v["path"] not in existing]
    if fresh:
        session.execute(insert(TABLE), fresh)
    for value in values:
        old = existing.get(value["path"])
        if old is None:
            continue
        changes = dict(value)
        if old.sha256 != value["sha256"]:
            changes["version_file_id"] = None
        session.execute(update(TABLE).where(TABLE.c.id == old.id).values(**changes))


def delete_paths(session: Session, paths: Iterable[str]) -> int:
    """Delete the rows of these paths; returns how many went."""
    paths = list(paths)
    deleted = 0
    for start in range(0, len(paths), IN_CHUNK):
        result = session.execute(delete(TABLE).where(TABLE.c.path.in_(paths[start : start + IN_CHUNK])))
        deleted += result.rowcount or 0  # type: ignore[attr-defined]
    return deleted


def find_by_hash(session: Session, value: str) -> list[LocalFile]:
    """Local files matching a hash of any kind CivitAI or A1111 print, any case.

    64 hex digits match SHA256, BLAKE3 or a full AutoV3; 10 digits AutoV2 (a SHA256 prefix); 12 digits an
    AutoV3 as A1111 shows it; 8 digits AutoV1 or CRC32.
    """
    value = value.strip().lower()
    if not value or any(c not in "0123456789abcdef" for c in value):
        return []
    c = LocalFile
    by_length: dict[int, Any] = {
        64: or_(c.sha256 == value, c.blake3 == value, c.autov3 == value),
        12: c.autov3.startswith(value, autoescape=True),
        10: c.autov2 == value,
        8: or_(c.autov1 == value, c.crc32 == value),
    }
    condition = by_length.get(len(value))
    if condition is None:
        return []
    return list(session.scalars(select(LocalFile).where(condition).order_by(LocalFile.path)))
