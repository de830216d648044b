"""Applying plans for real against the journal database: every mode, cross-filesystem moves, undo, refusals."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sort_helpers import FakeIdentify, snapshot, write
from sqlalchemy import insert, select

from modeldex.db.models import LocalFile
from modeldex.db.sort_journal import SqlJournal
from modeldex.errors import SortError
from modeldex.identify.layouts import LayoutOptions
from modeldex.identify.sorting import fsops
from modeldex.identify.sorting.apply import apply_plan, resume_run, undo_run
from modeldex.identify.sorting.plan import Mode, SortOptions, SortPlan
from modeldex.identify.sorting.planner import plan_sort

KINDS = {
    "style.safetensors": ("lora", "sdxl", "lora"),
    "base.safetensors": ("checkpoint", "sd1", None),
    "neg.pt": ("embedding", "sd1", None),
}


def make_plan(source: Path, root: Path, mode: Mode = "move", **options: object) -> SortPlan:
    opts = SortOptions(LayoutOptions(), mode=mode, **options)  # type: ignore[arg-type]
    return plan_sort(source, root, opts, identify=FakeIdentify(KINDS), settle=0)


def downloads(source: Path) -> None:
    write(source / "style.safetensors")
    write(source / "style.preview.png")
    write(source / "style.civitai.info")
    write(source / "base.safetensors")
    write(source / "neg.pt")
    write(source / "notes.txt")


@pytest.fixture
def lib(tmp_path: Path) -> tuple[Path, Path]:
    source, root = tmp_path / "downloads", tmp_path / "webui"
    downloads(source)
    root.mkdir()
    return source, root


def test_move_then_undo_restores_everything(lib: tuple[Path, Path], journal: SqlJournal) -> None:
    source, root = lib
    before = snapshot(source, root)
    result = apply_plan(make_plan(source, root), journal)
    assert result.state == "done" and not result.problems
    assert (root / "models/Lora/style.safetensors").read_bytes() == before["downloads/style.safetensors"]
    assert (root / "models/Lora/style.preview.png").read_bytes() == before["downloads/style.preview.png"]
    assert (root / "models/Stable-diffusion/base.safetensors").is_file()
    assert (root / "embeddings/neg.pt").is_file()
    assert sorted(p.name for p in source.iterdir()) == ["notes.txt"]
    run = journal.load(result.run_id)
    assert run.state == "done" and run.finished_at is not None
    assert {op.state for op in run.ops} == {"done", "skipped"}

    undone = undo_run(result.run_id, journal)
    assert undone.state == "undone" and not undone.problems
    after = snapshot(source, root)
    assert after == before
    with pytest.raises(SortError, match="already undone"):
        undo_run(result.run_id, journal)


def test_history_counts(lib: tuple[Path, Path], journal: SqlJournal) -> None:
    source, root = lib
    first = apply_plan(make_plan(source, root), journal)
    write(source / "style.safetensors", (root / "models/Lora/style.safetensors").read_bytes())
    second = apply_plan(make_plan(source, root), journal)
    newest, oldest = journal.summaries()
    assert (newest.id, oldest.id) == (second.run_id, first.run_id)
    assert oldest.counts == {"move": 5, "skip": 1}
    assert newest.counts == {"duplicate": 1, "skip": 1}
    assert oldest.state == newest.state == "done" and oldest.mode == "move"
    assert journal.latest_id() == second.run_id
    assert newest.to_json()["source"] == str(source)


def test_undo_refuses_a_changed_file_and_keeps_its_sidecars_with_it(
    lib: tuple[Path, Path], journal: SqlJournal
) -> None:
    source, root = lib
    result = apply_plan(make_plan(source, root), journal)
    edited = root / "models/Lora/style.safetensors"
    edited.write_bytes(b"retrained in place")
    (root / "embeddings/neg.pt").unlink()
    undone = undo_run(result.run_id, journal)
    assert undone.state == "partly_undone"
    problems = {o.source.name: o.error for o in undone.problems}
    assert "changed since the sort" in str(problems["style.safetensors"])
    assert "kept beside its model" in str(problems["style.preview.png"])
    assert "gone" in str(problems["neg.pt"])
    assert edited.read_bytes() == b"retrained in place"
    assert (root / "models/Lora/style.preview.png").is_file()
    assert (source / "base.safetensors").is_file()  # the rest went back
    assert journal.summaries()[0].state == "partly_undone"
    # once the user puts the file back as it was, undoing again finishes the job
    again = undo_run(result.run_id, journal)
    assert {o.source.name for o in again.problems} == {
        "style.safetensors",
        "style.preview.png",
        "style.civitai.info",
        "neg.pt",
    }


@pytest.mark.parametrize("mode", ["copy", "link", "hardlink"])
def test_copy_link_and_hardlink_leave_the_source_and_undo_cleanly(
    lib: tuple[Path, Path], journal: SqlJournal, mode: Mode
) -> None:
    source, root = lib
    before = snapshot(source)
    result = apply_plan(make_plan(source, root, mode), journal)
    assert result.state == "done"
    assert snapshot(source) == before
    placed = root / "models/Lora/style.safetensors"
    assert placed.read_bytes() == (source / "style.safetensors").read_bytes()
    if mode == "link":
        assert placed.is_symlink() and os.readlink(placed) == str(source / "style.safetensors")
    elif mode == "hardlink":
        assert placed.stat().st_ino == (source / "style.safetensors").stat().st_ino
    else:
        assert not placed.is_symlink() and placed.stat().st_ino != (source / "style.safetensors").stat().st_ino
    assert (root / "models/Lora/style.preview.png").exists()
    assert undo_run(result.run_id, journal).state == "undone"
    assert snapshot(source) == before
    assert [p for p in root.rglob("*") if not p.is_dir()] == []


def test_undo_keeps_a_copy_whose_original_is_gone(lib: tuple[Path, Path], journal: SqlJournal) -> None:
    source, root = lib
    result = apply_plan(make_plan(source, root, "hardlink"), journal)
    (source / "neg.pt").unlink()
    undone = undo_run(result.run_id, journal)
    assert [o.error for o in undone.problems] == [
        f"{source / 'neg.pt'} is gone, so {root / 'embeddings/neg.pt'} is the only copy; kept"
    ]
    assert (root / "embeddings/neg.pt").is_file()


def test_move_across_filesystems_is_a_verified_copy(
    two_filesystems: tuple[Path, Path], journal: SqlJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    copies: list[str] = []
    real_copy = fsops.copy_verified

    def spy(src: Path, dst: Path, *args: object, **kwargs: object) -> None:
        copies.append(src.name)
        real_copy(src, dst, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fsops, "copy_verified", spy)
    fs_a, fs_b = two_filesystems
    source, root = fs_a / "downloads", fs_b / "webui"
    downloads(source)
    root.mkdir()
    before = snapshot(source)
    with pytest.raises(OSError):
        os.rename(source / "neg.pt", root / "neg.pt")  # the simulation works
    result = apply_plan(make_plan(source, root), journal)
    assert result.state == "done", result.problems
    assert sorted(copies) == [
        "base.safetensors",
        "neg.pt",
        "style.civitai.info",
        "style.preview.png",
        "style.safetensors",
    ]
    assert (root / "models/Lora/style.safetensors").read_bytes() == before["downloads/style.safetensors"]
    assert sorted(p.name for p in source.iterdir()) == ["notes.txt"]
    assert not [p for p in root.rglob(".modeldex-*")]
    assert undo_run(result.run_id, journal).state == "undone"
    assert snapshot(source) == before
    assert not [p for p in fs_a.rglob(".modeldex-*")]


def test_hardlink_across_filesystems_fails_cleanly(two_filesystems: tuple[Path, Path], journal: SqlJournal) -> None:
    fs_a, fs_b = two_filesystems
    source, root = fs_a / "downloads", fs_b / "webui"
    downloads(source)
    root.mkdir()
    result = apply_plan(make_plan(source, root, "hardlink"), journal)
    assert result.state == "failed"
    errors = {o.source.name: o.error for o in result.problems}
    assert "another filesystem" in str(errors["style.safetensors"])
    assert "its model file was not placed" in str(errors["style.preview.png"])
    assert all((source / n).is_file() for n in ("style.safetensors", "style.preview.png", "neg.pt"))


def test_a_destination_that_appears_after_planning_is_never_overwritten(
    lib: tuple[Path, Path], journal: SqlJournal
) -> None:
    source, root = lib
    plan = make_plan(source, root)
    intruder = write(root / "models/Lora/style.safetensors", b"arrived meanwhile")
    result = apply_plan(plan, journal)
    assert result.state == "failed"
    errors = {o.source.name: o.error for o in result.problems}
    assert set(errors) == {"style.safetensors", "style.preview.png", "style.civitai.info"}
    assert "appeared since the sort was planned" in str(errors["style.safetensors"])
    assert intruder.read_bytes() == b"arrived meanwhile"
    assert (source / "style.safetensors").is_file() and (source / "style.preview.png").is_file()
    assert (root / "embeddings/neg.pt").is_file()  # the others went on
    # after the user clears the name, resume finishes the failed ones
    intruder.unlink()
    resumed = resume_run(result.run_id, journal)
    assert resumed.state == "done" and (root / "models/Lora/style.preview.png").is_file()
    with pytest.raises(SortError, match="nothing to resume"):
        resume_run(result.run_id, journal)
    # undo of a run whose ops once failed still restores everything
    assert undo_run(result.run_id, journal).state == "undone"
    assert (source / "style.safetensors").is_file()


def test_a_source_changed_after_planning_is_not_moved_across_filesystems(
    two_filesystems: tuple[Path, Path], journal: SqlJournal
) -> None:
    fs_a, fs_b = two_filesystems
    source, root = fs_a / "downloads", fs_b / "webui"
    downloads(source)
    root.mkdir()
    plan = make_plan(source, root)
    (source / "neg.pt").write_bytes(b"edited after planning")
    result = apply_plan(plan, journal)
    assert [o.error for o in result.problems] == [
        f"{source / 'neg.pt'} changed since the sort was planned (SHA256 differs); it was not moved"
    ]
    assert (source / "neg.pt").read_bytes() == b"edited after planning"
    assert not (root / "embeddings/neg.pt").exists()


def test_dedupe_goes_to_the_trash_and_undo_brings_it_back(
    lib: tuple[Path, Path], journal: SqlJournal, tmp_path: Path
) -> None:
    source, root = lib
    write(root / "models/Stable-diffusion/mine.safetensors", (source / "base.safetensors").read_bytes())
    before = snapshot(source, root)
    trash = tmp_path / "data" / "trash"
    plan = make_plan(source, root, dedupe=True, trash=trash)
    result = apply_plan(plan, journal)
    assert result.state == "done"
    assert not (source / "base.safetensors").exists()
    assert [p.name for p in trash.rglob("*.safetensors")] == ["base.safetensors"]
    assert undo_run(result.run_id, journal).state == "undone"
    assert snapshot(source, root) == before


def test_quarantine_and_back(lib: tuple[Path, Path], journal: SqlJournal, tmp_path: Path) -> None:
    source, root = lib
    write(source / "evil_unsafe.ckpt")
    write(source / "evil_unsafe.preview.jpg")
    jail = tmp_path / "jail"
    result = apply_plan(make_plan(source, root, quarantine=jail), journal)
    assert sorted(p.name for p in jail.iterdir()) == ["evil_unsafe.ckpt", "evil_unsafe.preview.jpg"]
    undo_run(result.run_id, journal)
    assert (source / "evil_unsafe.ckpt").is_file() and not any(jail.iterdir())


def test_the_index_row_follows_a_moved_file(lib: tuple[Path, Path], journal: SqlJournal) -> None:
    source, root = lib
    sessions = journal._sessions
    with sessions() as session:
        session.execute(
            insert(LocalFile),
            [{"path": str(source / "neg.pt"), "size": 1, "mtime_ns": 1, "inode": 1, "kind": "embedding",
              "unsafe_globals": [], "evidence": [], "user_overrides": {}, "scanned_at": datetime.now(UTC)}],
        )  # fmt: skip
        session.commit()

    def paths() -> list[str]:
        with sessions() as session:
            return list(session.scalars(select(LocalFile.path)))

    result = apply_plan(make_plan(source, root), journal)
    assert paths() == [str(root / "embeddings/neg.pt")]
    undo_run(result.run_id, journal)
    assert paths() == [str(source / "neg.pt")]


def test_unknown_run_is_a_clear_error(journal: SqlJournal) -> None:
    with pytest.raises(SortError, match="no sort run 42"):
        journal.load(42)
    assert journal.latest_id() is None and journal.summaries() == []
