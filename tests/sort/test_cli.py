"""`modeldex sort` through click: dry run (human and JSON), apply, history, undo, resume, exit codes, refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sort_helpers import FakeIdentify, open_journal, snapshot, write
from sqlalchemy import insert

from modeldex.cli.main import cli
from modeldex.db.models import LocalFile
from modeldex.identify.sorting import apply, planner
from modeldex.identify.sorting.apply import RunResult
from modeldex.identify.sorting.fsops import sha256_file
from modeldex.identify.sorting.journal import Journal
from modeldex.identify.sorting.plan import SortPlan

KINDS = {
    "style.safetensors": ("lora", "sdxl", "lora"),
    "base.safetensors": ("checkpoint", "sd1", None),
    "neg.pt": ("embedding", "sd1", None),
    "hada.safetensors": ("lora", "sd1", "loha"),
}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """Isolated settings and data folder; identify answers by file name."""
    data = tmp_path / "data"
    monkeypatch.setenv("MODELDEX_DATA_DIR", str(data))
    monkeypatch.setenv("MODELDEX_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.delenv("MODELDEX_DB_URL", raising=False)
    monkeypatch.setattr(planner, "_default_identify", FakeIdentify(KINDS))
    source, root = tmp_path / "downloads", tmp_path / "webui"
    for name in ("style.safetensors", "style.preview.png", "base.safetensors", "neg.pt", "notes.txt"):
        write(source / name)
    root.mkdir()
    return source, root, data


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["sort", *map(str, args)], catch_exceptions=False)


def test_dry_run_prints_the_plan_and_changes_nothing(env: tuple[Path, Path, Path]) -> None:
    source, root, _ = env
    before = snapshot(source, root)
    result = run(source, "--into", root, "--dry-run", "--settle", "0")
    assert result.exit_code == 0, result.output
    assert "move       style.safetensors -> models/Lora/style.safetensors" in result.output
    assert "use: <lora:style:0.8>" in result.output
    assert "move       style.preview.png -> models/Lora/style.preview.png" in result.output
    assert "skip       notes.txt: not recognised as a model" in result.output
    assert "plan: move 4, skip 1 (dry run: nothing was changed)" in result.output
    assert snapshot(source, root) == before

    as_json = run(source, "--into", root, "--dry-run", "--json", "--settle", "0", "--layout", "comfyui")
    records = [json.loads(line) for line in as_json.output.splitlines()]
    style = next(r for r in records if r["source"].endswith("style.safetensors"))
    assert style == {
        "source": str(source / "style.safetensors"),
        "destination": str(root / "models/loras/style.safetensors"),
        "action": "move",
        "reason": "lora (sdxl)",
        "kind": "lora",
        "base": "sdxl",
        "usage": "Load LoRA, lora_name: style.safetensors",
        "sha256": style["sha256"],
        "sidecar_of": None,
    }
    assert len(style["sha256"]) == 64
    assert {r["action"] for r in records} == {"move", "skip"}


def test_apply_history_undo(env: tuple[Path, Path, Path]) -> None:
    source, root, _ = env
    before = snapshot(source, root)
    applied = run(source, "--into", root, "--settle", "0", "--by-base")
    assert applied.exit_code == 0, applied.output
    assert (root / "models/Lora/sdxl/style.safetensors").is_file()
    assert (root / "models/Lora/sdxl/style.preview.png").is_file()
    assert "sort run 1: move 4, skip 1 (done; revert it with `modeldex sort --undo 1`)" in applied.output

    history = run("--history")
    assert history.exit_code == 0
    assert "    1  " in history.output and "done" in history.output and "[move 4, skip 1]" in history.output
    [record] = [json.loads(line) for line in run("--history", "--json").output.splitlines()]
    assert record["id"] == 1 and record["state"] == "done" and record["counts"] == {"move": 4, "skip": 1}

    undone = run("--undo")
    assert undone.exit_code == 0, undone.output
    assert "undone     style.safetensors <- models/Lora/sdxl/style.safetensors" in undone.output
    assert snapshot(source, root) == before
    again = run("--undo", "1")
    assert again.exit_code == 1 and "already undone" in again.output


def test_copy_json_apply_and_a_failure_exit_status(
    env: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, root, _ = env
    write(root / "embeddings/neg.pt", b"not the same")
    result = run(source, "--into", root, "--copy", "--json", "--settle", "0")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    neg = next(r for r in records if r["source"].endswith("neg.pt"))
    assert neg["destination"] == str(root / "embeddings/neg-1.pt") and neg["state"] == "done" and neg["run"] == 1
    assert (source / "neg.pt").is_file() and (root / "embeddings/neg-1.pt").is_file()

    # a file that takes the destination name between plan and apply makes that file fail, and only it
    write(source / "base.safetensors", b"a new base")
    real_apply = apply.apply_plan

    def intrude_then_apply(plan: SortPlan, journal: Journal) -> RunResult:
        write(root / "models/Stable-diffusion/base-1.safetensors", b"arrived meanwhile")
        return real_apply(plan, journal)

    monkeypatch.setattr(apply, "apply_plan", intrude_then_apply)
    failed = run(source, "--into", root, "--settle", "0")
    assert failed.exit_code == 1
    assert "FAILED     base.safetensors -> models/Stable-diffusion/base-1.safetensors" in failed.output
    assert "appeared since the sort was planned" in failed.output
    assert (source / "base.safetensors").read_bytes() == b"a new base"
    assert (root / "models/Stable-diffusion/base-1.safetensors").read_bytes() == b"arrived meanwhile"
    assert "(failed; revert it with `modeldex sort --undo 2`)" in failed.output


def test_usage_errors_exit_2(env: tuple[Path, Path, Path]) -> None:
    source, root, _ = env
    cases = [
        ([source], "no library"),
        ([source, "--into", root, "--copy", "--link"], "choose one of"),
        ([source, "--into", root, "--dedupe", "--hardlink"], "--dedupe"),
        (["--history", "--undo"], "cannot be combined"),
        (["--undo", "x"], "run number"),
        ([], "give the SOURCE"),
        (["--history", source], "takes no SOURCE"),
        ([source, "--into", root, "--layout", "invoke"], "invoke"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    missing = run(source / "nope", "--into", root)
    assert missing.exit_code == 1 and "does not exist" in missing.output


def test_library_and_layout_come_from_settings(env: tuple[Path, Path, Path], tmp_path: Path) -> None:
    source, root, _ = env
    (tmp_path / "config.toml").write_text(f'[sort]\nlibrary = "{root}"\nlayout = "comfyui"\nby_base = true\n')
    result = run(source, "--dry-run", "--settle", "0")
    assert result.exit_code == 0, result.output
    assert "models/loras/sdxl/style.safetensors" in result.output
    flat = run(source, "--dry-run", "--settle", "0", "--no-by-base", "--layout", "a1111")
    assert "models/Lora/style.safetensors" in flat.output


def test_an_interrupted_run_blocks_new_sorts_until_resumed_or_undone(env: tuple[Path, Path, Path]) -> None:
    source, root, data = env
    assert run(source, "--into", root, "--settle", "0").exit_code == 0
    journal = open_journal(data / "modeldex.db")
    journal.set_run_state(1, "applying")  # as a kill -9 would have left it
    write(source / "hada.safetensors")
    blocked = run(source, "--into", root, "--settle", "0")
    assert blocked.exit_code == 1
    assert "sort run 1 was interrupted while applying" in blocked.output
    assert "modeldex sort --resume 1" in blocked.output and "modeldex sort --undo 1" in blocked.output
    assert (source / "hada.safetensors").is_file()
    dry = run(source, "--into", root, "--settle", "0", "--dry-run")
    assert dry.exit_code == 0 and "interrupted" in dry.output
    resumed = run("--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "sort run 1:" in resumed.output and "(done;" in resumed.output
    assert run("--resume").exit_code == 1
    assert run(source, "--into", root, "--settle", "0").exit_code == 0
    assert (root / "models/Lora/hada.safetensors").is_file()


def test_dedupe_and_quarantine(env: tuple[Path, Path, Path], tmp_path: Path) -> None:
    source, root, data = env
    write(root / "models/Lora/style.safetensors", (source / "style.safetensors").read_bytes())
    write(source / "evil_unsafe.ckpt")
    jail = tmp_path / "jail"
    result = run(source, "--into", root, "--dedupe", "--quarantine", jail, "--settle", "0")
    assert result.exit_code == 0, result.output
    assert "dedupe" in result.output and "quarantine" in result.output
    assert (jail / "evil_unsafe.ckpt").is_file()
    assert [p.name for p in (data / "trash").rglob("*.safetensors")] == ["style.safetensors"]
    assert run("--undo").exit_code == 0
    assert (source / "style.safetensors").is_file() and (source / "evil_unsafe.ckpt").is_file()


def test_a_name_that_is_not_utf8_stays_and_prints(env: tuple[Path, Path, Path]) -> None:
    source, root, _ = env
    bad = Path(os.fsdecode(bytes(source) + b"/style \xff.safetensors"))
    write(bad, b"a lora with a latin-1 name")
    dry = run(source, "--into", root, "--settle", "0", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    record = next(json.loads(line) for line in dry.output.splitlines() if "\\xff" in line)
    assert record["source"] == str(source) + "/style \\xff.safetensors"
    assert record["action"] == "skip" and "not valid UTF-8" in record["reason"]
    applied = run(source, "--into", root, "--settle", "0")
    assert applied.exit_code == 0, applied.output
    assert "skip       style \\xff.safetensors: its name is not valid UTF-8" in applied.output
    assert bad.exists() and (root / "models/Lora/style.safetensors").is_file()


def test_hashes_come_from_the_scan_cache_while_the_file_is_unchanged(env: tuple[Path, Path, Path]) -> None:
    source, root, data = env
    assert run("--history").exit_code == 0  # creates the database
    style = source / "style.safetensors"
    st = style.stat()
    journal = open_journal(data / "modeldex.db")
    row = {"path": str(style), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino, "sha256": "ab" * 32}
    with journal._sessions() as session:
        session.execute(insert(LocalFile), [dict(row, unsafe_globals=[], evidence=[], user_overrides={})])
        session.commit()

    def planned_sha() -> str:
        result = run(source, "--into", root, "--dry-run", "--json", "--settle", "0")
        return str(next(json.loads(x)["sha256"] for x in result.output.splitlines() if "style.safetensors" in x))

    assert planned_sha() == "ab" * 32
    os.utime(style, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert planned_sha() == sha256_file(style)
