"""`modeldex sort`: move identified files into a WebUI or ComfyUI library, undo-ably.

`sort SOURCE --into ROOT` plans first (`--dry-run` prints the plan), then applies it under a journal in the index
database; `--history` lists runs, `--undo [RUN]` reverts one, `--resume [RUN]` finishes one that was killed.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from modeldex.cli.common import echo_json_line, err_console, open_database, terminal_text, user_errors, utf8_text
from modeldex.config import Settings, load_settings
from modeldex.errors import SortError, UsageError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from modeldex.db.sort_journal import SqlJournal
    from modeldex.identify.sorting.apply import OpOutcome, RunResult
    from modeldex.identify.sorting.plan import SortAction, SortPlan

LOCK_NAME = "sort.lock"
TRASH_NAME = "trash"


@click.command()
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option(
    "--into",
    "root",
    type=click.Path(path_type=Path),
    metavar="ROOT",
    help="The WebUI or ComfyUI folder (default: sort.library).",
)
@click.option("--layout", type=click.Choice(["a1111", "comfyui"]), help="Folder layout (default: sort.layout).")
@click.option("--by-base/--no-by-base", "by_base", default=None, help="Per-base sub-folders (models/Lora/sdxl/).")
@click.option("--lycoris-dir/--no-lycoris-dir", "lycoris_dir", default=None, help="A1111: LyCORIS to models/LyCORIS.")
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: one object per file (or per run with --history).")
@click.option("--copy", "copy_", is_flag=True, help="Copy into the library; the source stays.")
@click.option("--link", is_flag=True, help="Leave the file in place and put a symlink in the library.")
@click.option("--hardlink", is_flag=True, help="Put a hard link in the library (same filesystem only).")
@click.option("--dedupe", is_flag=True, help="Move sources already in the library (same SHA256) to the trash.")
@click.option(
    "--quarantine", type=click.Path(path_type=Path), metavar="DIR", help="Move unsafe pickles into this folder."
)
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    default=1.0,
    show_default=True,
    help="Seconds to watch recently modified files for growth (downloads still being written).",
)
@click.option("--history", is_flag=True, help="List past sort runs.")
@click.option(
    "--undo", is_flag=False, flag_value="latest", default=None, metavar="[RUN]", help="Revert the latest run (or RUN)."
)
@click.option(
    "--resume", is_flag=False, flag_value="latest", default=None, metavar="[RUN]", help="Finish an interrupted run."
)
@user_errors
def sort(
    source: Path | None,
    root: Path | None,
    layout: str | None,
    by_base: bool | None,
    lycoris_dir: bool | None,
    dry_run: bool,
    as_json: bool,
    copy_: bool,
    link: bool,
    hardlink: bool,
    dedupe: bool,
    quarantine: Path | None,
    settle: float,
    history: bool,
    undo: str | None,
    resume: str | None,
) -> None:
    """Move the model files under SOURCE into the library ROOT, where A1111/Forge or ComfyUI look for them.

    Each file is identified from its tensors and hashed; sidecars (previews, .civitai.info...) travel with it.
    Nothing is overwritten: another file under the same name means a `-1` suffix, the same content means a
    duplicate (kept, or moved to the trash in the data folder with --dedupe). Unknown, unsafe and partial files
    stay where they are.
    Every change is journalled: `--undo` reverts a run, and a run killed half-way is finished with `--resume`.
    Exit status: 0 ok, 1 some files failed, 2 usage error.
    """
    commands = [name for name, given in (("--history", history), ("--undo", undo), ("--resume", resume)) if given]
    if len(commands) > 1:
        raise UsageError(f"{' and '.join(commands)} cannot be combined")
    settings = load_settings()
    if commands:
        if source is not None:
            raise UsageError(f"{commands[0]} takes no SOURCE")
        sessions = open_database(settings)
        if history:
            _history(_journal(sessions), as_json)
        else:
            with _sort_lock(settings), _explain_interrupt(_journal(sessions)):
                _revisit(_journal(sessions), undo, resume, as_json)
        return
    if source is None:
        raise UsageError("give the SOURCE folder to sort (or --history, --undo, --resume)")
    modes = [name for name, given in (("copy", copy_), ("link", link), ("hardlink", hardlink)) if given]
    if len(modes) > 1:
        raise UsageError("choose one of --copy, --link and --hardlink")
    if dedupe and modes:
        raise UsageError("--dedupe moves duplicate sources to the trash; it cannot be combined with --" + modes[0])
    library = root if root is not None else settings.sort.library
    if library is None:
        raise UsageError("no library: pass --into ROOT or set sort.library in the config file")
    plan_args = _PlanArgs(
        source=source,
        root=library.expanduser(),
        layout=layout or settings.sort.layout,
        by_base=settings.sort.by_base if by_base is None else by_base,
        lycoris_dir=settings.sort.lycoris_dir if lycoris_dir is None else lycoris_dir,
        mode=modes[0] if modes else "move",
        dedupe=dedupe,
        quarantine=quarantine.expanduser() if quarantine else None,
        trash=settings.data_dir / TRASH_NAME,
        settle=settle,
    )
    sessions = open_database(settings)
    journal = _journal(sessions)
    if dry_run:
        _warn_interrupted(journal)
        plan = _make_plan(plan_args, sessions)
        _print_plan(plan, as_json)
        return
    _refuse_memory_journal(settings)
    with _sort_lock(settings):
        _refuse_if_interrupted(journal)
        plan = _make_plan(plan_args, sessions)
        if not any(action.changes_files for action in plan.actions):
            # Nothing to change: no run is journalled, so `--undo` keeps meaning the last run that moved something.
            _print_nothing_to_do(plan, as_json)
            return
        from modeldex.identify.sorting.apply import apply_plan

        with _explain_interrupt(journal):
            result = apply_plan(plan, journal)
    _print_result(plan, result, as_json)
    if result.problems:
        raise SystemExit(1)


# --- planning -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PlanArgs:
    source: Path
    root: Path
    layout: str
    by_base: bool
    lycoris_dir: bool
    mode: str
    dedupe: bool
    quarantine: Path | None
    trash: Path
    settle: float


def _make_plan(args: _PlanArgs, sessions: sessionmaker[Session]) -> SortPlan:
    from modeldex.identify.layouts import LayoutOptions, check_layout
    from modeldex.identify.sorting.plan import MODES, SortOptions
    from modeldex.identify.sorting.planner import plan_sort

    mode = next(m for m in MODES if m == args.mode)  # narrows the str to the Mode literal
    options = SortOptions(
        layout=LayoutOptions(check_layout(args.layout), by_base=args.by_base, lycoris_dir=args.lycoris_dir),
        mode=mode,
        dedupe=args.dedupe,
        quarantine=args.quarantine,
        trash=args.trash,
    )
    hasher = _cached_hasher(sessions, [args.source, args.root])
    return plan_sort(args.source, args.root, options, sha256_of=hasher, settle=args.settle)


def _cached_hasher(sessions: sessionmaker[Session], roots: list[Path]) -> Callable[[Path], str]:
    """SHA256 from the scan cache where the file's size, mtime and inode are unchanged; else hash it."""
    from modeldex.db.local_files import cached_rows
    from modeldex.identify.hashing import hash_file

    folders = [os.path.abspath(r) for r in roots if r.is_dir()]
    files = [os.path.abspath(r) for r in roots if not r.is_dir()]
    with sessions() as session:
        rows = cached_rows(session, roots=folders, files=files)
    known = {path: (row.size, row.mtime_ns, row.inode, row.sha256) for path, row in rows.items() if row.sha256}

    def sha256_of(path: Path) -> str:
        hit = known.get(os.path.abspath(path))
        if hit is not None:
            st = path.stat()
            if hit[:3] == (st.st_size, st.st_mtime_ns, st.st_ino):
                return str(hit[3])
        return hash_file(path).sha256

    return sha256_of


# --- the journal, the lock, interrupted runs -------------------------------------------------------------------------


def _journal(sessions: sessionmaker[Session]) -> SqlJournal:
    from modeldex.db.sort_journal import SqlJournal

    return SqlJournal(sessions)


@contextmanager
def _sort_lock(settings: Settings) -> Iterator[None]:
    """One sort, undo or resume at a time per data folder; a run found `applying` under the lock is truly dead."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; the journal still records everything
        yield
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / LOCK_NAME
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SortError(f"another modeldex sort is running (it holds {path}); wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _refuse_memory_journal(settings: Settings) -> None:
    """A journal in an in-memory database vanishes on exit, and with it every way to undo or resume the run."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.resolved_db_url)
    database = url.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in database or url.query.get("mode") == "memory"
    if url.get_backend_name() == "sqlite" and in_memory:
        raise SortError(
            f"the index database {settings.resolved_db_url} is in memory: the sort journal would "
            "vanish on exit and the run could not be undone; set db_url to a file (or use --dry-run)"
        )


@contextmanager
def _explain_interrupt(journal: SqlJournal) -> Iterator[None]:
    """Ctrl-C while files move: say which run stopped part-way and how to finish or revert it (exit 130)."""
    try:
        yield
    except KeyboardInterrupt:
        found = _interrupted(journal)
        if not found:
            raise
        err_console.print(f"modeldex: interrupted: {_interrupted_message(*found[0])}", markup=False, soft_wrap=True)
        sys.exit(130)


def _interrupted(journal: SqlJournal) -> list[tuple[int, str]]:
    from modeldex.identify.sorting.journal import INTERRUPTED_STATES

    return [(s.id, s.state) for s in journal.summaries() if s.state in INTERRUPTED_STATES]


def _interrupted_message(run_id: int, state: str) -> str:
    doing = "applying" if state == "applying" else "undoing"
    return (
        f"sort run {run_id} was interrupted while {doing} (killed, crashed or powered off): "
        f"finish it with `modeldex sort --resume {run_id}` or revert it with `modeldex sort --undo {run_id}`"
    )


def _refuse_if_interrupted(journal: SqlJournal) -> None:
    found = _interrupted(journal)
    if found:
        raise SortError(_interrupted_message(*found[0]) + ", then sort again")


def _warn_interrupted(journal: SqlJournal) -> None:
    for run_id, state in _interrupted(journal):
        err_console.print(f"modeldex: warning: {_interrupted_message(run_id, state)}", markup=False, soft_wrap=True)


def _run_id(journal: SqlJournal, given: str, flag: str) -> int:
    if given != "latest":
        try:
            return int(given)
        except ValueError:
            raise UsageError(f"{flag} takes a run number (see `modeldex sort --history`), not {given!r}") from None
    if flag == "--resume":
        found = _interrupted(journal)
        if not found:
            raise SortError("no interrupted sort run to resume (see `modeldex sort --history`)")
        return found[0][0]
    # The newest run not yet undone: `--undo` twice reverts the last two runs, as an editor's undo would.
    summaries = journal.summaries()
    if not summaries:
        raise SortError("there is no sort run to undo")
    for summary in summaries:
        if summary.state != "undone":
            return summary.id
    raise SortError("every sort run is already undone (see `modeldex sort --history`)")


def _revisit(journal: SqlJournal, undo: str | None, resume: str | None, as_json: bool) -> None:
    from modeldex.identify.sorting.apply import resume_run, undo_run

    if undo is not None:
        run_id = _run_id(journal, undo, "--undo")
        result = undo_run(run_id, journal)
    else:
        assert resume is not None
        run_id = _run_id(journal, resume, "--resume")
        result = resume_run(run_id, journal)
    _print_outcomes(journal, result, as_json)
    if result.problems:
        raise SystemExit(1)


# --- output -------------------------------------------------------------------------------------------------------

_WIDTH = 11


def _show(path: Path | None, *bases: Path) -> str:
    if path is None:
        return "-"
    for base in bases:
        if base.is_dir() and (path == base or base in path.parents):
            return terminal_text(str(path.relative_to(base)) or path.name)
    return terminal_text(str(path))


def _action_json(action: SortAction) -> dict[str, object]:
    record = action.to_json()
    for key in ("source", "destination", "sidecar_of", "reason"):
        if record[key] is not None:
            record[key] = utf8_text(record[key])
    return record


def _describe_action(action: SortAction, plan: SortPlan) -> list[str]:
    src = _show(action.source, plan.source, plan.source.parent)
    if action.action == "skip":
        return [f"{'skip':<{_WIDTH}}{src}: {terminal_text(action.reason)}"]
    dst = _show(action.destination, plan.root)
    lines = [f"{action.action:<{_WIDTH}}{src} -> {dst}"]
    details = []
    if action.sidecar_of is None and action.kind is not None:
        details.append(f"{action.kind} ({action.base})")
    if action.action in ("duplicate", "dedupe", "quarantine"):
        details.append(terminal_text(action.reason))
    if action.usage and action.action not in ("dedupe", "quarantine"):
        details.append(f"use: {terminal_text(action.usage)}")
    if details:
        lines.append(" " * _WIDTH + " · ".join(details))
    return lines


def _count_line(counts: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items())) or "no files"


def _print_plan(plan: SortPlan, as_json: bool) -> None:
    if as_json:
        for action in plan.actions:
            echo_json_line(_action_json(action))
        return
    for action in plan.actions:
        for line in _describe_action(action, plan):
            click.echo(line)
    click.echo(f"plan: {_count_line(plan.counts())} (dry run: nothing was changed)")


def _print_nothing_to_do(plan: SortPlan, as_json: bool) -> None:
    if as_json:
        for action in plan.actions:
            echo_json_line(dict(_action_json(action), run=None, state="skipped", error=None))
        return
    for action in plan.actions:
        for line in _describe_action(action, plan):
            click.echo(line)
    click.echo(f"nothing to change: {_count_line(plan.counts())} (no sort run was recorded)")


def _print_result(plan: SortPlan, result: RunResult, as_json: bool) -> None:
    outcomes = {o.seq: o for o in result.outcomes}
    if as_json:
        for seq, action in enumerate(plan.actions):
            outcome = outcomes[seq]
            echo_json_line(dict(_action_json(action), run=result.run_id, state=outcome.state, error=outcome.error))
        return
    for seq, action in enumerate(plan.actions):
        lines = _describe_action(action, plan)
        outcome = outcomes[seq]
        if outcome.state == "failed":
            error = terminal_text(outcome.error or "")
            lines = [f"{'FAILED':<{_WIDTH}}{lines[0][_WIDTH:]}", " " * _WIDTH + f"error: {error}"]
        for line in lines:
            click.echo(line)
    _print_summary(result)


def _print_outcomes(journal: SqlJournal, result: RunResult, as_json: bool) -> None:
    run = journal.load(result.run_id)
    for outcome in result.outcomes:
        if as_json:
            echo_json_line(_outcome_json(outcome, result.run_id))
            continue
        if outcome.destination is None or outcome.state == "skipped":
            continue
        src, dst = _show(outcome.source, run.source, run.source.parent), _show(outcome.destination, run.root)
        arrow = "<-" if outcome.state in ("undone", "refused") else "->"
        click.echo(f"{outcome.state:<{_WIDTH}}{src} {arrow} {dst}")
        if outcome.error:
            click.echo(" " * _WIDTH + terminal_text(outcome.error))
    if not as_json:
        _print_summary(result)


def _outcome_json(outcome: OpOutcome, run_id: int) -> dict[str, object]:
    return {
        "run": run_id,
        "seq": outcome.seq,
        "action": outcome.action,
        "source": utf8_text(str(outcome.source)),
        "destination": utf8_text(str(outcome.destination)) if outcome.destination is not None else None,
        "state": outcome.state,
        "error": outcome.error,
    }


def _print_summary(result: RunResult) -> None:
    counts: Counter[str] = Counter()
    for o in result.outcomes:
        counts[o.action if o.state in ("done", "skipped") else o.state] += 1
    run = result.run_id
    if result.state in ("undone", "partly_undone"):
        tail = "undone" if result.state == "undone" else "partly undone: the files marked refused were left as they are"
    else:
        tail = f"{result.state}; revert it with `modeldex sort --undo {run}`"
    click.echo(f"sort run {run}: {_count_line(counts)} ({tail})")


def _history(journal: SqlJournal, as_json: bool) -> None:
    summaries = journal.summaries()
    if as_json:
        for summary in summaries:
            echo_json_line(summary.to_json())
        return
    if not summaries:
        click.echo("no sort runs yet")
        return
    click.echo(f"{'RUN':>5}  {'STARTED':<19}  {'STATE':<13}  {'MODE':<8}  SOURCE -> LIBRARY  [COUNTS]")
    for s in summaries:
        started = s.started_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        counts = _count_line(Counter(s.counts))
        where = terminal_text(f"{s.source} -> {s.root}")
        click.echo(f"{s.id:>5}  {started:<19}  {s.state:<13}  {s.mode:<8}  {where}  [{counts}]")
