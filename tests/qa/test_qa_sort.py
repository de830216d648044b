"""QA: `modeldex sort` driven as a demanding user would, over real factory files and hostile names."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from factory import ModelFactory

from modeldex.cli.main import cli

NAME_MAX = 255


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["sort", *map(str, args)])


def test_a_name_too_long_for_an_aria2_neighbour_is_sorted_not_a_traceback(tmp_path: Path) -> None:
    downloads, root = tmp_path / "dl", tmp_path / "webui"
    root.mkdir()
    longest = "L" * (NAME_MAX - len(".safetensors")) + ".safetensors"
    ModelFactory(downloads).lora("sd1", name=longest)
    result = run(downloads, "--into", root, "--settle", "0", "--json")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.output.splitlines()]
    assert record["action"] == "move"
    assert os.path.exists(root / "models" / "Lora" / longest)


def test_sorting_one_file_takes_its_sidecars_along(tmp_path: Path) -> None:
    downloads, root = tmp_path / "dl", tmp_path / "webui"
    root.mkdir()
    model = ModelFactory(downloads).lora("sd1", name="solo.safetensors")
    (downloads / "solo.preview.png").write_bytes(b"preview")
    (downloads / "solo.civitai.info").write_text("{}")
    (downloads / "other.preview.png").write_bytes(b"not solo's")
    result = run(model, "--into", root, "--settle", "0")
    assert result.exit_code == 0, result.output
    lora = root / "models" / "Lora"
    assert sorted(p.name for p in lora.iterdir()) == ["solo.civitai.info", "solo.preview.png", "solo.safetensors"]
    assert sorted(p.name for p in downloads.iterdir()) == ["other.preview.png"]


def test_sorting_a_sidecar_alone_says_what_it_is(tmp_path: Path) -> None:
    downloads, root = tmp_path / "dl", tmp_path / "webui"
    root.mkdir()
    ModelFactory(downloads).lora("sd1", name="solo.safetensors")
    (downloads / "solo.preview.png").write_bytes(b"preview")
    result = run(downloads / "solo.preview.png", "--into", root, "--settle", "0", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "no model file with this name beside it" not in result.output
    assert "sort its model file" in result.output


def _env(tmp_path: Path) -> tuple[Path, Path]:
    downloads, root = tmp_path / "dl", tmp_path / "webui"
    root.mkdir()
    factory = ModelFactory(downloads)
    factory.lora("sd1", name="first.safetensors", metadata={"n": "1"})
    factory.lora("sdxl", name="second.safetensors", metadata={"n": "2"})
    (downloads / "notes.txt").write_text("not a model")
    return downloads, root


def test_sorting_twice_records_no_empty_run_and_undo_reverts_the_real_one(tmp_path: Path) -> None:
    downloads, root = _env(tmp_path)
    assert run(downloads, "--into", root, "--settle", "0").exit_code == 0
    again = run(downloads, "--into", root, "--settle", "0")
    assert again.exit_code == 0, again.output
    assert "nothing to change: skip 1 (no sort run was recorded)" in again.output
    assert "--undo" not in again.output
    history = run("--history", "--json").output.splitlines()
    assert len(history) == 1
    undone = run("--undo")
    assert undone.exit_code == 0, undone.output
    assert sorted(p.name for p in downloads.iterdir()) == ["first.safetensors", "notes.txt", "second.safetensors"]


def test_nothing_to_change_json_is_valid_and_says_no_run(tmp_path: Path) -> None:
    downloads, root = _env(tmp_path)
    (downloads / "first.safetensors").unlink()
    (downloads / "second.safetensors").unlink()
    result = run(downloads, "--into", root, "--settle", "0", "--json")
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.output.splitlines()]
    assert record["action"] == "skip" and record["run"] is None and record["state"] == "skipped"


def test_undo_twice_walks_back_through_runs(tmp_path: Path) -> None:
    downloads, root = _env(tmp_path)
    first, second = downloads / "first.safetensors", downloads / "second.safetensors"
    assert run(first, "--into", root, "--settle", "0").exit_code == 0
    assert run(second, "--into", root, "--settle", "0").exit_code == 0
    assert not first.exists() and not second.exists()
    assert run("--undo").exit_code == 0
    assert second.exists() and not first.exists()
    assert run("--undo").exit_code == 0
    assert first.exists()
    last = run("--undo")
    assert last.exit_code == 1 and "every sort run is already undone" in last.output


def test_a_file_where_the_kind_folder_should_be_is_named_and_nothing_is_lost(tmp_path: Path) -> None:
    downloads, root = _env(tmp_path)
    (root / "models").mkdir()
    (root / "models" / "Lora").write_text("someone's file")
    result = run(downloads, "--into", root, "--settle", "0")
    assert result.exit_code == 1
    assert f"{root / 'models' / 'Lora'} is a file, not a folder" in result.output
    assert "File exists" not in result.output
    assert (root / "models" / "Lora").read_text() == "someone's file"
    assert sorted(p.name for p in downloads.iterdir()) == ["first.safetensors", "notes.txt", "second.safetensors"]


def test_a_library_that_is_a_file_is_called_that(tmp_path: Path) -> None:
    downloads, _ = _env(tmp_path)
    result = run(downloads, "--into", downloads / "notes.txt", "--settle", "0")
    assert result.exit_code == 1
    assert "is not a folder" in result.output and "does not exist" not in result.output


def test_a_read_only_library_fails_per_file_and_keeps_every_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # root ignores permission bits, so the read-only filesystem is simulated: every new name in the library fails.
    downloads, root = _env(tmp_path)
    real_link, real_rename, real_mkdir = os.link, os.rename, os.mkdir

    def refuse(target: object) -> None:
        if str(os.fsdecode(target)).startswith(str(root)):  # type: ignore[arg-type]
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(target))  # type: ignore[arg-type]

    monkeypatch.setattr(os, "link", lambda s, d, **kw: (refuse(d), real_link(s, d, **kw)))
    monkeypatch.setattr(os, "rename", lambda s, d: (refuse(d), real_rename(s, d)))
    monkeypatch.setattr(os, "mkdir", lambda p, *a, **kw: (refuse(p), real_mkdir(p, *a, **kw)))
    result = run(downloads, "--into", root, "--settle", "0")
    assert result.exit_code == 1
    assert result.output.count("Read-only file system") == 2
    assert "sort run 1: failed 2, skip 1 (failed;" in result.output
    assert sorted(p.name for p in downloads.iterdir()) == ["first.safetensors", "notes.txt", "second.safetensors"]
