"""`modeldex convert` through click's CliRunner."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from click.testing import CliRunner
from convert_helpers import assert_same_tensors, flatten, save, sd_like_state

from modeldex.cli.main import cli


class RunsCommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def test_convert_writes_and_reports(tmp_path: Path) -> None:
    source = save({"state_dict": sd_like_state(), "global_step": 12}, tmp_path / "m.ckpt")
    result = CliRunner().invoke(cli, ["convert", str(source)])
    assert result.exit_code == 0, result.output
    assert "m.safetensors" in result.output and "10 tensors" in result.output
    assert "unwrapped: state_dict" in result.output and "global_step" in result.output
    assert_same_tensors(tmp_path / "m.safetensors", flatten(torch.load(source, weights_only=True)["state_dict"]))


def test_convert_json_and_out(tmp_path: Path) -> None:
    source = save(sd_like_state(), tmp_path / "m.pt")
    out = tmp_path / "elsewhere.safetensors"
    result = CliRunner().invoke(cli, ["convert", str(source), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["output"] == str(out) and record["tensors"] == 10 and record["bytes"] == out.stat().st_size


def test_existing_output_needs_force(tmp_path: Path) -> None:
    source = save(sd_like_state(), tmp_path / "m.pt")
    (tmp_path / "m.safetensors").write_bytes(b"keep me")
    refused = CliRunner().invoke(cli, ["convert", str(source)])
    assert refused.exit_code == 2
    assert "--force" in refused.output
    assert (tmp_path / "m.safetensors").read_bytes() == b"keep me"
    forced = CliRunner().invoke(cli, ["convert", str(source), "--force"])
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "m.safetensors").read_bytes() != b"keep me"


def test_unsafe_pickle_exits_1_naming_the_global(tmp_path: Path) -> None:
    canary = tmp_path / "CANARY"
    source = save({"w": torch.zeros(2), "x": RunsCommand(f"touch {canary}")}, tmp_path / "evil.pt")
    result = CliRunner().invoke(cli, ["convert", str(source)])
    assert result.exit_code == 1
    assert "system" in result.output
    assert "Traceback" not in result.output
    assert not canary.exists()
    assert sorted(os.listdir(tmp_path)) == ["evil.pt"]


def test_unreadable_file_is_one_line_error(tmp_path: Path) -> None:
    source = tmp_path / "junk.ckpt"
    source.write_bytes(b"<html>not a model</html>")
    result = CliRunner().invoke(cli, ["convert", str(source)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert sorted(os.listdir(tmp_path)) == ["junk.ckpt"]


def test_help_lists_convert() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert "convert" in result.output
