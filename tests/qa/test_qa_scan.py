"""QA: `modeldex scan` over hostile names, unsafe files, and the scan -> sort -> scan pipeline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from factory import ModelFactory

from modeldex.cli.main import cli


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(cli, [*map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def summary_value(output: str, label: str) -> str:
    """A value of the scan summary table (`label   value`)."""
    for line in output.splitlines():
        if line.strip().startswith(label + " "):
            return line.split()[-1]
    raise AssertionError(f"{label!r} not in {output!r}")


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "dl"
    factory = ModelFactory(folder)
    factory.lora("sd1", name="style.safetensors", metadata={"n": "style"})
    factory.embedding("sd1", name="bad hands.safetensors")
    factory.malicious_pickle(tmp_path / "canary", name="free_model.ckpt")
    odd = factory.lora("sdxl", name="odd.safetensors", metadata={"n": "odd"})
    os.rename(odd, os.fsencode(folder) + b"/caf\xe9.safetensors")  # Latin-1 bytes: not UTF-8
    return folder


def test_a_name_that_is_not_utf8_is_scanned_reported_and_the_rest_recorded(downloads: Path) -> None:
    first = invoke("scan", downloads)
    assert first.exit_code == 0, first.output
    assert "not recorded in the index (its name is not valid UTF-8; rename it):" in first.output
    assert "caf\\xe9.safetensors" in first.output
    lines = [json.loads(line) for line in invoke("scan", "--json", downloads).output.splitlines()]
    by_name = {Path(d["path"]).name: d for d in lines}
    assert set(by_name) == {"style.safetensors", "bad hands.safetensors", "free_model.ckpt", "caf\\xe9.safetensors"}
    assert by_name["caf\\xe9.safetensors"]["kind"] == "lora" and by_name["caf\\xe9.safetensors"]["sha256"]
    again = invoke("scan", downloads)
    assert summary_value(again.output, "unchanged (from the index)") == "3"


def test_the_summary_names_unsafe_pickles(downloads: Path, tmp_path: Path) -> None:
    result = invoke("scan", downloads)
    assert "unsafe pickles, never loaded (1):" in result.output
    assert "free_model.ckpt: posix.system" in result.output
    assert not (tmp_path / "canary").exists()


def test_scan_sort_scan_moves_the_index_with_the_files(downloads: Path, tmp_path: Path) -> None:
    root = tmp_path / "webui"
    root.mkdir()
    assert invoke("scan", downloads, root).exit_code == 0
    sorted_ = invoke("sort", downloads, "--into", root, "--settle", "0")
    assert sorted_.exit_code == 0, sorted_.output
    rescan = invoke("scan", "--json", downloads, root)
    records = [json.loads(line) for line in rescan.output.splitlines()]
    placed = {Path(r["path"]).name: r for r in records if r["path"].startswith(str(root))}
    assert set(placed) == {"style.safetensors", "bad hands.safetensors"}
    human = invoke("scan", downloads, root)
    assert summary_value(human.output, "removed (file gone)") == "0"  # the rows went in the previous scan
