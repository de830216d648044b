"""The sort journal over the `sort_run` / `sort_op` tables: `modeldex.identify.sorting.journal.Journal` made durable.

Each call is one short transaction committed before it returns, so a killed process leaves the database saying
exactly which operations were started. Marks are prepared Core statements run on a plain connection: building a
statement or going through the ORM per mark would cost more than the rename it records (1,000 files: ~1.5 s
against ~0.3 s).

When a move is marked done (or undone) the `local_file` row of the file follows it, in the same transaction, so the
index never points at a path the sort emptied.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from modeldex.db.models import LocalFile, SortOp, SortRun
from modeldex.errors import SortError
from modeldex.identify.sorting.journal import JournalledOp, JournalledRun, OpMark, RunState, RunSummary
from modeldex.identify.sorting.plan import FILE_ACTIONS, SortPlan, operation_of

RUNS: Table = SortRun.__table__  # type: ignore[assignment]  # declared as FromClause, is a Table
OPS: Table = SortOp.__table__  # type: ignore[assignment]
FILES: Table = LocalFile.__table__  # type: ignore[assignment]

FINAL_RUN_STATES = frozenset({"done", "failed", "undone", "partly_undone"})


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


_MARK = (
    update(OPS)
    .where(OPS.c.run_id == bindparam("op_run"), OPS.c.seq == bindparam("op_seq"))
    .values(state=bindparam("new_state"), error=bindparam("new_error"))
)
_FREE_PATH = delete(FILES).where(FILES.c.path == bindparam("new_path"))
_MOVE_PATH = update(FILES).where(FILES.c.path == bindparam("old_path")).values(path=bindparam("new_path"))
_IN_CHUNK = 500  # under SQLite's bound-parameter limit


class SqlJournal:
    """A `Journal` in the modeldex database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        with sessions() as session:
            bind = session.get_bind()
        self._engine = bind if isinstance(bind, Engine) else bind.engine
        # seq -> (source, destination) of each move of the runs this object loaded, and which of those paths have a
        # `local_file` row: only those are followed, so a library that was never scanned costs no extra statement.
        self._moves: dict[int, dict[int, tuple[str, str]]] = {}
        self._indexed: set[str] = set()

    def begin(self, plan: SortPlan) -> JournalledRun:
        parents = plan.parents()
        options = dict(plan.options.to_json(), parents={str(k): v for k, v in parents.items()})
        started = datetime.now(UTC)
        with self._sessions() as session:
            run_id = session.execute(
                insert(RUNS)
                .values(
                    started_at=started,
                    source=str(plan.source),
                    root=str(plan.root),
                    options=options,
                    state="applying",
                )
                .returning(RUNS.c.id)
            ).scalar_one()
            rows = [
                {
                    "run_id": run_id,
                    "seq": seq,
                    "action": action.action,
                    "source": _text(action.source, exact=action.changes_files),
                    "destination": _text(action.destination, exact=action.changes_files),
                    "sha256": action.sha256,
                    "reason": _printable(action.reason),
                    "state": "pending" if action.changes_files else "skipped",
                }
                for seq, action in enumerate(plan.actions)
            ]
            if rows:
                session.execute(insert(OPS), rows)
            session.commit()
        return self.load(run_id)

    def set_op_states(self, run_id: int, marks: Sequence[OpMark]) -> None:
        params = [{"op_run": run_id, "op_seq": m.seq, "new_state": m.state, "new_error": m.error} for m in marks]
        with self._engine.begin() as conn:
            conn.execute(_MARK, params)
            for mark in marks:
                if mark.state in ("done", "undone"):
                    self._follow_local_file(conn, run_id, mark.seq, forward=mark.state == "done")

    def _follow_local_file(self, conn: Connection, run_id: int, seq: int, *, forward: bool) -> None:
        move = self._moves.get(run_id, {}).get(seq)
        if move is None:
            return
        old, new = move if forward else (move[1], move[0])
        if old not in self._indexed:
            return
        # A row at the new path describes a file that is no longer there (the name was free when planned).
        conn.execute(_FREE_PATH, {"new_path": new})
        conn.execute(_MOVE_PATH, {"old_path": old, "new_path": new})
        self._indexed.discard(old)
        self._indexed.add(new)

    def set_run_state(self, run_id: int, state: RunState) -> None:
        values: dict[str, Any] = {"state": state}
        values["finished_at"] = datetime.now(UTC) if state in FINAL_RUN_STATES else None
        with self._sessions() as session:
            session.execute(update(RUNS).where(RUNS.c.id == run_id).values(**values))
            session.commit()

    def load(self, run_id: int) -> JournalledRun:
        with self._sessions() as session:
            run = session.execute(select(RUNS).where(RUNS.c.id == run_id)).one_or_none()
            if run is None:
                raise SortError(f"there is no sort run {run_id} (see `modeldex sort --history`)")
            rows = session.execute(select(OPS).where(OPS.c.run_id == run_id).order_by(OPS.c.seq)).all()
        parents = {int(k): int(v) for k, v in (run.options or {}).get("parents", {}).items()}
        ops = tuple(
            JournalledOp(
                seq=row.seq,
                action=row.action,
                source=Path(row.source),
                destination=Path(row.destination) if row.destination is not None else None,
                sha256=row.sha256,
                reason=row.reason or "",
                state=row.state,
                error=row.error,
                parent=parents.get(row.seq),
            )
            for row in rows
        )
        moves = {
            row.seq: (row.source, row.destination)
            for row in rows
            if row.destination is not None and row.action in FILE_ACTIONS and operation_of(row.action) == "move"
        }
        self._moves[run_id] = moves
        self._indexed |= self._indexed_among([p for move in moves.values() for p in move])
        started = _utc(run.started_at)
        assert started is not None
        return JournalledRun(
            id=run.id,
            started_at=started,
            finished_at=_utc(run.finished_at),
            source=Path(run.source),
            root=Path(run.root),
            options=dict(run.options or {}),
            state=run.state,
            ops=ops,
        )

    def _indexed_among(self, paths: list[str]) -> set[str]:
        found: set[str] = set()
        with self._engine.connect() as conn:
            for start in range(0, len(paths), _IN_CHUNK):
                chunk = paths[start : start + _IN_CHUNK]
                found.update(conn.execute(select(FILES.c.path).where(FILES.c.path.in_(chunk))).scalars())
        return found

    def latest_id(self) -> int | None:
        with self._sessions() as session:
            value: int | None = session.execute(select(func.max(RUNS.c.id))).scalar_one_or_none()
        return value

    def summaries(self, limit: int | None = None) -> list[RunSummary]:
        with self._sessions() as session:
            query = select(RUNS).order_by(RUNS.c.id.desc())
            if limit is not None:
                query = query.limit(limit)
            runs = session.execute(query).all()
            ids = [run.id for run in runs]
            counted = session.execute(
                select(OPS.c.run_id, OPS.c.action, OPS.c.state, func.count())
                .where(OPS.c.run_id.in_(ids))
                .group_by(OPS.c.run_id, OPS.c.action, OPS.c.state)
            ).all()
        counts: dict[int, Counter[str]] = {run_id: Counter() for run_id in ids}
        for run_id, action, state, n in counted:
            counts[run_id][_count_key(action, state)] += n
        summaries = []
        for run in runs:
            started = _utc(run.started_at)
            assert started is not None
            summaries.append(
                RunSummary(
                    id=run.id,
                    started_at=started,
                    finished_at=_utc(run.finished_at),
                    source=Path(run.source),
                    root=Path(run.root),
                    mode=str((run.options or {}).get("mode", "move")),
                    state=run.state,
                    counts=dict(counts[run.id]),
                )
            )
        return summaries


def _text(path: Path | None, *, exact: bool) -> str | None:
    """A path as TEXT. Paths the sort acts on must round-trip (the planner leaves names that are not UTF-8 in place);
    paths it only reports keep undecodable bytes as visible `\\x..` escapes."""
    if path is None:
        return None
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        if exact:
            raise SortError(f"cannot journal {text!r}: its name is not valid UTF-8") from None
        return _printable(text)
    return text


def _printable(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _count_key(action: str, state: str) -> str:
    """History columns: what was done by action; skips and duplicates as such; the rest by state."""
    if state in ("done", "skipped"):
        return action
    if state == "started":
        return "pending"
    return state
