"""kill -9 during apply or undo, at every step of every operation, then recovery: nothing is ever lost.

A forked child runs the apply with a checkpoint hook that SIGKILLs it at step N; the parent then finishes the run
(resume) or reverts it (undo) and checks the files. N goes up until the child survives, so every step is covered.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections import Counter
from collections.abc import Callable
from itertools import count
from pathlib import Path

import pytest
from sort_helpers import FakeIdentify, open_journal, snapshot, write

from modeldex.identify.layouts import LayoutOptions
from modeldex.identify.sorting.apply import apply_plan, interrupted_runs, resume_run, undo_run
from modeldex.identify.sorting.journal import Journal
from modeldex.identify.sorting.plan import SortOptions, SortPlan
from modeldex.identify.sorting.planner import plan_sort

KINDS = {
    "style.safetensors": ("lora", "sdxl", "lora"),
    "base.safetensors": ("checkpoint", "sd1", None),
    "neg.pt": ("embedding", "sd1", None),
}


def populate(source: Path, root: Path) -> None:
    # Content from the relative name only, so every scenario's files compare equal to the reference's.
    for name in ("style.safetensors", "style.preview.png", "base.safetensors", "neg.pt", "sub/neg.pt"):
        write(source / name, f"{name} bytes\n" * 50)  # sub/neg.pt: same name, other content, becomes neg-1.pt
    write(source / "copy of base.safetensors", (source / "base.safetensors").read_bytes())  # deduped to the trash
    root.mkdir(parents=True)


def make_plan(source: Path, root: Path, trash: Path) -> SortPlan:
    options = SortOptions(LayoutOptions(), dedupe=True, trash=trash)
    return plan_sort(source, root, options, identify=FakeIdentify(KINDS), settle=0)


def run_in_child(db_path: Path, work: Callable[[Journal, Callable[[str], None]], object], kill_at: int) -> bool:
    """Run `work` in a forked child that SIGKILLs itself at checkpoint `kill_at`; True when it was killed."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        code = 0
        try:
            calls = 0

            def checkpoint(_label: str) -> None:
                nonlocal calls
                calls += 1
                if calls == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)

            work(open_journal(db_path), checkpoint)
        except BaseException:  # noqa: BLE001 - a forked child must never return into pytest
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status):
        assert os.WEXITSTATUS(status) == 0, "the child failed without being killed"
        return False
    assert os.WTERMSIG(status) == signal.SIGKILL
    return True


def contents(*folders: Path) -> Counter[bytes]:
    """Every file's content, counted: a move loses nothing and duplicates nothing when this does not change."""
    return Counter(data for data in snapshot(*folders).values())


def leftovers(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob(".modeldex-*")]


def scenario(base: Path, db_template: Path, fs: tuple[Path, Path] | None) -> tuple[Path, Path, Path, Path]:
    """Fresh source, library, trash and database under `base` (source and library on two fake filesystems)."""
    side_a, side_b = fs if fs else (base, base)
    source, root = side_a / base.name / "downloads", side_b / base.name / "webui"
    trash = side_a / base.name / "trash"
    populate(source, root)
    db = base / "db" / "modeldex.db"
    db.parent.mkdir(parents=True)
    shutil.copyfile(db_template, db)
    return source, root, trash, db


@pytest.mark.parametrize("cross_fs", [False, True], ids=["same-fs", "exdev"])
def test_kill_during_apply_then_recover(
    tmp_path: Path, migrated_db: Path, two_filesystems: tuple[Path, Path], cross_fs: bool
) -> None:
    """Killed at step N, the run is resumed (odd N) or undone (even N). Steps come three (same filesystem) or more
    per operation, so every kind of step is recovered both ways over the run's operations."""
    fs = two_filesystems if cross_fs else None
    ref_source, ref_root, ref_trash, ref_db = scenario(tmp_path / "reference", migrated_db, fs)
    before = snapshot(ref_source, ref_root)
    everything = contents(ref_source)
    apply_plan(make_plan(ref_source, ref_root, ref_trash), open_journal(ref_db))
    after = snapshot(ref_source, ref_root)
    assert after != before

    for kill_at in count(1):
        source, root, trash, db = scenario(tmp_path / f"kill{kill_at}", migrated_db, fs)
        plan = make_plan(source, root, trash)
        killed = run_in_child(db, lambda journal, cp, plan=plan: apply_plan(plan, journal, checkpoint=cp), kill_at)
        journal = open_journal(db)
        if not killed:
            assert kill_at > 16, "too few steps: the hook is not reached"
            assert snapshot(source, root) == after
            break
        recovery = "resume" if kill_at % 2 else "undo"
        [run_id] = interrupted_runs(journal)
        # mid-operation a file may have two names (link, then unlink), but none is ever missing
        assert not everything - contents(source, root, trash), f"killed at step {kill_at}"
        if recovery == "resume":
            assert resume_run(run_id, journal).state == "done"
            assert snapshot(source, root) == after, f"killed at step {kill_at}"
        else:
            assert undo_run(run_id, journal).state == "undone"
            assert snapshot(source, root) == before, f"killed at step {kill_at}"
        assert contents(source, root, trash) == everything
        assert leftovers(source.parent, root.parent) == []
        assert interrupted_runs(journal) == []


@pytest.mark.parametrize("cross_fs", [False, True], ids=["same-fs", "exdev"])
def test_kill_during_undo_then_undo_again(
    tmp_path: Path, migrated_db: Path, two_filesystems: tuple[Path, Path], cross_fs: bool
) -> None:
    fs = two_filesystems if cross_fs else None
    for kill_at in count(1):
        source, root, trash, db = scenario(tmp_path / f"kill{kill_at}", migrated_db, fs)
        before = snapshot(source, root)
        everything = contents(source)
        run_id = apply_plan(make_plan(source, root, trash), open_journal(db)).run_id
        killed = run_in_child(db, lambda journal, cp, run_id=run_id: undo_run(run_id, journal, checkpoint=cp), kill_at)
        journal = open_journal(db)
        if killed:
            assert interrupted_runs(journal) == [run_id]
            assert not everything - contents(source, root, trash), f"killed at step {kill_at}"
            # `resume` of an interrupted undo finishes the undo
            assert resume_run(run_id, journal).state == "undone"
        assert snapshot(source, root) == before, f"killed at step {kill_at}"
        assert contents(source, root, trash) == everything
        assert leftovers(source.parent, root.parent) == []
        if not killed:
            assert kill_at > 10
            break
