"""Carrying out a sort plan against a `Journal`, finishing an interrupted run, and undoing a run.

Every operation is idempotent in both directions: `_redo` and `_undo` look at the file system (which names exist,
whether two are one inode, whether content has the journalled SHA256) and do only what is left. So a run killed at
any instant is finished or reverted by running the same code again, and nothing is ever overwritten or deleted
unless an identical copy is known to exist.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from modeldex.errors import SortError
from modeldex.identify.sorting.fsops import (
    Checkpoint,
    copy_verified,
    fsync_dir,
    move_anywhere,
    no_checkpoint,
    same_file,
    sha256_file,
)
from modeldex.identify.sorting.journal import (
    INTERRUPTED_STATES,
    Journal,
    JournalledOp,
    JournalledRun,
    OpMark,
    OpState,
    RunState,
)
from modeldex.identify.sorting.plan import FILE_ACTIONS, SortPlan, operation_of


@dataclass(frozen=True, slots=True)
class OpOutcome:
    """What became of one journalled operation."""

    seq: int
    action: str
    source: Path
    destination: Path | None
    state: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RunResult:
    """A run after apply, resume or undo."""

    run_id: int
    state: str
    outcomes: tuple[OpOutcome, ...]

    @property
    def problems(self) -> list[OpOutcome]:
        """Operations that failed or whose undo was refused."""
        return [o for o in self.outcomes if o.state in ("failed", "refused")]


class _Refused(Exception):
    """Undo would lose or overwrite data; the message says which file and why."""


def _temp_path(folder: Path, run_id: int, seq: int, direction: str) -> Path:
    # Short and unique per run and op, so a long model name cannot overflow NAME_MAX; a dot file ending in `.tmp`,
    # so a later sort of this folder skips it as partial.
    return folder / f".modeldex-{run_id}-{seq}-{direction}.tmp"


def _describe(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else ""
    return f"{exc.strerror or exc}: {where}" if where else str(exc.strerror or exc)


def _content_is(path: Path, sha256: str | None) -> bool:
    return sha256 is not None and sha256_file(path) == sha256


# --- redo -------------------------------------------------------------------------------------------------------


def _redo(op: JournalledOp, run_id: int, checkpoint: Checkpoint) -> None:
    """Bring the file system to "op done", whatever part of it already happened. Raises SortError or OSError."""
    assert op.destination is not None
    src, dst = op.source, op.destination
    tmp = _temp_path(dst.parent, run_id, op.seq, "apply")
    if os.path.lexists(tmp):
        os.unlink(tmp)  # an interrupted copy: ours, incomplete or unverified
    operation = operation_of(op.action)
    src_exists, dst_exists = os.path.lexists(src), os.path.lexists(dst)
    if operation == "link":
        if os.path.islink(dst) and os.readlink(dst) == str(src):
            return
        _need_free_destination(dst_exists, dst)
        _need_source(src_exists, src)
        _make_folder(dst.parent)
        os.symlink(src, dst)
        return
    if operation == "hardlink":
        if src_exists and dst_exists and same_file(src, dst):
            return
        _need_free_destination(dst_exists, dst)
        _need_source(src_exists, src)
        _make_folder(dst.parent)
        try:
            os.link(src, dst, follow_symlinks=False)
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                raise SortError(f"cannot hard-link {src} into {dst.parent}: another filesystem (use --copy)") from exc
            raise
        return
    if operation == "copy":
        if dst_exists:
            if _content_is(dst, op.sha256):
                return
            _need_free_destination(True, dst)
        _need_source(src_exists, src)
        _make_folder(dst.parent)
        copy_verified(src, dst, tmp, op.sha256, checkpoint)
        return
    _redo_move(src, dst, tmp, op.sha256, src_exists, dst_exists, checkpoint)


def _redo_move(
    src: Path, dst: Path, tmp: Path, sha256: str | None, src_exists: bool, dst_exists: bool, checkpoint: Checkpoint
) -> None:
    if src_exists and dst_exists:
        if same_file(src, dst):
            os.unlink(src)  # killed between link and unlink
            return
        if _content_is(dst, sha256):
            # killed after a cross-filesystem copy was put in place: the source goes only if it is that content too
            if not _content_is(src, sha256):
                raise SortError(f"{src} changed since the sort was planned; it was not moved")
            os.unlink(src)
            fsync_dir(src.parent)
            return
        _need_free_destination(True, dst)
    if dst_exists:
        if _content_is(dst, sha256):
            return
        raise SortError(f"{src} is gone and {dst} holds other content; nothing was changed")
    _need_source(src_exists, src)
    _make_folder(dst.parent)
    move_anywhere(src, dst, tmp, sha256, checkpoint)


def _make_folder(folder: Path) -> None:
    """Create `folder` and its parents; a file standing where a folder must be is named in a SortError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        blocker = next((p for p in (folder, *folder.parents) if os.path.lexists(p) and not p.is_dir()), folder)
        raise SortError(f"{blocker} is a file, not a folder; nothing was moved there") from exc


def _need_free_destination(dst_exists: bool, dst: Path) -> None:
    if dst_exists:
        raise SortError(f"{dst} appeared since the sort was planned; nothing was overwritten (sort again)")


def _need_source(src_exists: bool, src: Path) -> None:
    if not src_exists:
        raise SortError(f"{src} is gone (moved or deleted since the sort was planned)")


# --- undo -------------------------------------------------------------------------------------------------------


def _undo(op: JournalledOp, run_id: int, checkpoint: Checkpoint) -> None:
    """Bring the file system back to "op never happened". Raises _Refused where that would lose data."""
    assert op.destination is not None
    src, dst = op.source, op.destination
    tmp = _temp_path(src.parent, run_id, op.seq, "undo")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    apply_tmp = _temp_path(dst.parent, run_id, op.seq, "apply")
    if os.path.lexists(apply_tmp):
        os.unlink(apply_tmp)
    operation = operation_of(op.action)
    if operation != "move" and op.state == "failed":
        return  # a failed link or copy leaves nothing behind: whatever is at the destination is not ours
    src_exists, dst_exists = os.path.lexists(src), os.path.lexists(dst)
    if not dst_exists:
        if src_exists or op.state not in ("done", "refused"):
            return  # never placed, or already put back
        raise _Refused(f"{dst} is gone (moved or deleted since the sort); nothing to put back")
    if operation == "link":
        if os.path.islink(dst) and os.readlink(dst) == str(src):
            os.unlink(dst)
            return
        raise _Refused(f"{dst} is no longer the link this sort made; left as it is")
    if operation == "hardlink":
        if src_exists and same_file(src, dst):
            os.unlink(dst)
            return
        if not src_exists:
            raise _Refused(f"{src} is gone, so {dst} is the only copy; kept")
        raise _Refused(f"{dst} was replaced since the sort; left as it is")
    if operation == "copy":
        if not _content_is(dst, op.sha256):
            raise _Refused(f"{dst} changed since the sort (SHA256 differs); kept")
        if not src_exists:
            raise _Refused(f"{src} is gone, so {dst} is the only copy; kept")
        os.unlink(dst)
        return
    _undo_move(op, src, dst, tmp, src_exists, checkpoint)


def _undo_move(op: JournalledOp, src: Path, dst: Path, tmp: Path, src_exists: bool, checkpoint: Checkpoint) -> None:
    if src_exists:
        if same_file(src, dst):
            os.unlink(dst)  # killed between link and unlink while undoing
            return
        if _content_is(src, op.sha256):
            if _content_is(dst, op.sha256):
                os.unlink(dst)  # killed after a cross-filesystem copy back was put in place
            return  # the file is back; whatever is at the destination is not ours
        raise _Refused(f"{src} exists again with other content; {dst} left where it is")
    if not _content_is(dst, op.sha256):
        raise _Refused(f"{dst} changed since the sort (SHA256 differs); left where it is")
    _make_folder(src.parent)
    move_anywhere(dst, src, tmp, op.sha256, checkpoint)


# --- runs -------------------------------------------------------------------------------------------------------


def apply_plan(plan: SortPlan, journal: Journal, *, checkpoint: Checkpoint = no_checkpoint) -> RunResult:
    """Journal `plan` in full, then carry out its file actions in order. Failures are per file; the rest go on."""
    run = journal.begin(plan)
    checkpoint("begun")
    return _apply_ops(run, journal, checkpoint)


def resume_run(run_id: int, journal: Journal, *, checkpoint: Checkpoint = no_checkpoint) -> RunResult:
    """Finish an interrupted run (or retry a run's failed operations); an interrupted undo is finished as undo."""
    run = journal.load(run_id)
    if run.state == "undoing":
        return undo_run(run_id, journal, checkpoint=checkpoint)
    if run.state not in ("applying", "failed"):
        raise SortError(f"sort run {run_id} is {run.state}: nothing to resume")
    journal.set_run_state(run_id, "applying")
    return _apply_ops(run, journal, checkpoint)


class _Marks:
    """Operation states on their way to the journal: `now` commits what is queued plus the new mark, `later` queues.

    An operation's `started` is committed before its change begins; its outcome rides with the next operation's
    `started` (or the run's end), so each operation costs one commit. A kill loses at most queued outcomes, and
    recovery reads those from the file system anyway.
    """

    def __init__(self, journal: Journal, run_id: int) -> None:
        self.journal = journal
        self.run_id = run_id
        self.queued: list[OpMark] = []

    def later(self, seq: int, state: OpState, error: str | None = None) -> None:
        self.queued.append(OpMark(seq, state, error))

    def now(self, seq: int, state: OpState, error: str | None = None) -> None:
        self.later(seq, state, error)
        self.flush()

    def flush(self) -> None:
        if self.queued:
            self.journal.set_op_states(self.run_id, self.queued)
            self.queued = []


def _apply_ops(run: JournalledRun, journal: Journal, checkpoint: Checkpoint) -> RunResult:
    marks = _Marks(journal, run.id)
    final: dict[int, str] = {}
    outcomes: list[OpOutcome] = []
    touched: set[Path] = set()
    for op in run.ops:
        state, error = op.state, op.error
        if op.action in FILE_ACTIONS and op.state not in ("done", "undone"):
            state, error = _apply_one(op, run.id, marks, final, checkpoint)
            if state == "done" and op.destination is not None:
                touched.update((op.source.parent, op.destination.parent))
        final[op.seq] = state
        outcomes.append(OpOutcome(op.seq, op.action, op.source, op.destination, state, error))
    for folder in touched:
        fsync_dir(folder)
    marks.flush()
    failed = any(o.state == "failed" for o in outcomes)
    run_state: RunState = "failed" if failed else "done"
    journal.set_run_state(run.id, run_state)
    return RunResult(run.id, run_state, tuple(outcomes))


def _apply_one(
    op: JournalledOp, run_id: int, marks: _Marks, final: dict[int, str], checkpoint: Checkpoint
) -> tuple[str, str | None]:
    if op.parent is not None and final.get(op.parent) != "done":
        error = "its model file was not placed, so this sidecar stays with it"
        marks.later(op.seq, "failed", error)
        return "failed", error
    marks.now(op.seq, "started")
    checkpoint(f"started {op.seq}")
    try:
        _redo(op, run_id, checkpoint)
    except SortError as exc:
        marks.later(op.seq, "failed", exc.message)
        return "failed", exc.message
    except OSError as exc:
        marks.later(op.seq, "failed", _describe(exc))
        return "failed", _describe(exc)
    marks.later(op.seq, "done")
    checkpoint(f"done {op.seq}")
    return "done", None


def _groups(ops: tuple[JournalledOp, ...]) -> Iterator[tuple[JournalledOp, list[JournalledOp]]]:
    """Each model op with its sidecar ops, newest group first (undo order)."""
    children: dict[int, list[JournalledOp]] = {}
    for op in ops:
        if op.parent is not None:
            children.setdefault(op.parent, []).append(op)
    for op in reversed(ops):
        if op.parent is None:
            yield op, children.get(op.seq, [])


def undo_run(run_id: int, journal: Journal, *, checkpoint: Checkpoint = no_checkpoint) -> RunResult:
    """Revert a run, newest operation first, model before its sidecars. Anything changed or replaced since the sort
    is left where it is and reported (`refused`), never overwritten or deleted."""
    run = journal.load(run_id)
    if run.state == "undone":
        raise SortError(f"sort run {run_id} is already undone")
    journal.set_run_state(run_id, "undoing")
    checkpoint("undoing")
    outcomes: dict[int, OpOutcome] = {}
    marks = _Marks(journal, run_id)
    for model, sidecars in _groups(run.ops):
        model_state = _undo_one(model, run_id, marks, None, checkpoint, outcomes)
        for sidecar in sidecars:
            _undo_one(sidecar, run_id, marks, model_state, checkpoint, outcomes)
        marks.flush()
    ordered = tuple(outcomes[op.seq] for op in run.ops)
    _remove_empty_trash(run.ops)
    refused = any(o.state == "refused" for o in ordered)
    state: RunState = "partly_undone" if refused else "undone"
    journal.set_run_state(run_id, state)
    return RunResult(run_id, state, ordered)


def _remove_empty_trash(ops: tuple[JournalledOp, ...]) -> None:
    """The run's own trash folder goes once everything in it went back (rmdir refuses a folder that is not empty)."""
    for folder in {op.destination.parent for op in ops if op.action == "dedupe" and op.destination is not None}:
        try:
            folder.rmdir()
        except OSError:
            pass


def _undo_one(
    op: JournalledOp,
    run_id: int,
    marks: _Marks,
    model_state: str | None,
    checkpoint: Checkpoint,
    outcomes: dict[int, OpOutcome],
) -> str:
    def record(state: str, error: str | None) -> str:
        outcomes[op.seq] = OpOutcome(op.seq, op.action, op.source, op.destination, state, error)
        return state

    if op.action not in FILE_ACTIONS or op.state in ("pending", "undone", "skipped"):
        return record(op.state, op.error)
    if model_state == "refused":
        error = "kept beside its model file, which could not be put back"
        marks.later(op.seq, "refused", error)
        return record("refused", error)
    try:
        _undo(op, run_id, checkpoint)
    except _Refused as exc:
        marks.later(op.seq, "refused", str(exc))
        return record("refused", str(exc))
    except (SortError, OSError) as exc:
        error = exc.message if isinstance(exc, SortError) else _describe(exc)
        marks.later(op.seq, "refused", error)
        return record("refused", error)
    marks.later(op.seq, "undone")
    checkpoint(f"undone {op.seq}")
    return record("undone", None)


def interrupted_runs(journal: Journal) -> list[int]:
    """Ids of runs left in `applying` or `undoing` (killed); the caller holds the sort lock, so none is live."""
    return [s.id for s in journal.summaries() if s.state in INTERRUPTED_STATES]
