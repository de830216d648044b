"""The journal protocol: what `apply` needs from durable storage to make a sort recoverable and undoable.

`modeldex.db.sort_journal.SqlJournal` implements it over the `sort_run` / `sort_op` tables. The order of calls is
the recovery contract: the whole plan is written (`begin`, run state `applying`, file operations `pending`) before
any file is touched; each operation is marked `started` before and `done` (or `failed`) after its change; the outcome of one operation
is committed together with the `started` of the next, so each costs one transaction. A run
found in `applying` or `undoing` was interrupted; every operation can be redone or undone from the file system's
state, so the marks only need to say where to look.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from modeldex.identify.sorting.plan import SortPlan

RunState = Literal["applying", "done", "failed", "undoing", "undone", "partly_undone"]
"""`failed`: applied, but some operations failed; `partly_undone`: undo refused some operations."""
OpState = Literal["pending", "started", "done", "failed", "skipped", "undone", "refused"]
"""`skipped`: the action changes no file (skip, duplicate); `refused`: undo would have lost data, so it left it."""

INTERRUPTED_STATES: frozenset[str] = frozenset({"applying", "undoing"})


@dataclass(frozen=True, slots=True)
class OpMark:
    """A new state for one operation (and why, for `failed`/`refused`; None clears the error)."""

    seq: int
    state: OpState
    error: str | None = None


@dataclass(frozen=True, slots=True)
class JournalledOp:
    """One action of a run as stored."""

    seq: int
    action: str
    source: Path
    destination: Path | None
    sha256: str | None
    reason: str
    state: str
    error: str | None = None
    parent: int | None = None
    """For a sidecar: the seq of its model's operation."""


@dataclass(frozen=True, slots=True)
class JournalledRun:
    """A run with every operation, in seq order."""

    id: int
    started_at: datetime
    finished_at: datetime | None
    source: Path
    root: Path
    options: dict[str, Any]
    state: str
    ops: tuple[JournalledOp, ...]


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One line of `sort --history`."""

    id: int
    started_at: datetime
    finished_at: datetime | None
    source: Path
    root: Path
    mode: str
    state: str
    counts: dict[str, int] = field(default_factory=dict)
    """Operations by action for file actions that are done, plus `skip`, `duplicate`, `failed`, `undone`."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "source": str(self.source),
            "root": str(self.root),
            "mode": self.mode,
            "state": self.state,
            "counts": dict(self.counts),
        }


class Journal(Protocol):
    """Durable record of sort runs. Every method commits before it returns."""

    def begin(self, plan: SortPlan) -> JournalledRun:
        """Store a new run in state `applying` with one op per plan action (file actions `pending`, others
        `skipped`; seq = index in `plan.actions`, sidecars' `parent` from `plan.parents()`) and return it."""
        ...

    def set_op_states(self, run_id: int, marks: Sequence[OpMark]) -> None:
        """Record new operation states, all in one transaction, in order."""
        ...

    def set_run_state(self, run_id: int, state: RunState) -> None:
        """Record a run's state; a final state (`done`, `failed`, `undone`, `partly_undone`) sets `finished_at`."""
        ...

    def load(self, run_id: int) -> JournalledRun:
        """A run with its operations; raises `SortError` when there is no such run."""
        ...

    def latest_id(self) -> int | None:
        """The newest run's id, or None when there is none."""
        ...

    def summaries(self, limit: int | None = None) -> list[RunSummary]:
        """Runs, newest first."""
        ...
