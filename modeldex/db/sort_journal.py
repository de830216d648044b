"""The sort journal over the `sort_run` / `sort_op` tables: `modeldex.identify.sorting.journal.Journal` made durable.

Each call is one short transaction committed before it returns, so a killed process leaves the database saying
exactly which operations were started. Marks are single UPDATE statements through SQLAlchemy Core (an ORM flush
per mark would cost more than the rename it records).

When a move is marked done (or undone) the `local_file` row of the file follows it, in the same transaction, so the
index never points at a path the sort emptied.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from modeldex.db.models import LocalFile, SortOp, SortRun
from modeldex.errors import SortError
from modeldex.identify.sorting.journal import JournalledOp, JournalledRun, OpState, RunState, RunSummary
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


class SqlJournal:
    """A `Journal` in the modeldex database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        # seq -> (action, source, destination) of the runs this object touched, for moving `local_file` rows.
        self._moves: dict[int, dict[int, tuple[str, str, str | None]]] = {}

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
                    "source": str(action.source),
                    "destination": str(action.destination) if action.destination is not None else None,
                    "sha256": action.sha256,
                    "reason": action.reason,
                    "state": "pending" if action.changes_files else "skipped",
                }
                for seq, action in enumerate(plan.actions)
            ]
            if rows:
                session.execute(insert(OPS), rows)
            session.commit()
        return self.load(run_id)

    def set_op_state(self, run_id: int, seq: int, state: OpState, error: str | None = None) -> None:
        with self._sessions() as session:
            session.execute(
                update(OPS).where(OPS.c.run_id == run_id, OPS.c.seq == seq).values(state=state, error=error)
            )
            if state in ("done", "undone"):
                self._follow_local_file(session, run_id, seq, forward=state == "done")
            session.commit()

    def _follow_local_file(self, session: Session, run_id: int, seq: int, *, forward: bool) -> None:
        known = self._moves.get(run_id, {}).get(seq)
        if known is None:
            return
        action, source, destination = known
        if destination is None or action not in FILE_ACTIONS or operation_of(action) != "move":
            return
        old, new = (source, destination) if forward else (destination, source)
        # A row at the new path describes a file that is no longer there (the name was free when planned).
        session.execute(delete(FILES).where(FILES.c.path == new))
        session.execute(update(FILES).where(FILES.c.path == old).values(path=new))

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
        self._moves[run_id] = {row.seq: (row.action, row.source, row.destination) for row in rows}
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


def _count_key(action: str, state: str) -> str:
    """History columns: what was done by action; skips and duplicates as such; the rest by state."""
    if state in ("done", "skipped"):
        return action
    if state == "started":
        return "pending"
    return state
