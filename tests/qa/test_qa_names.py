"""QA: file names with newlines, escape sequences and bytes that are not UTF-8, through every command's output."""

from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner
from factory import ModelFactory

from modeldex.cli.common import terminal_text
from modeldex.cli.main import cli

HOSTILE = "new\nline \x1b[2J.safetensors"


def test_terminal_text_escapes_controls_and_keeps_other_scripts() -> None:
    assert terminal_text("a\nb\tc\x1b[31m") == "a\\nb\\tc\\x1b[31m"
    assert terminal_text("ünïcödé 🎨 style") == "ünïcödé 🎨 style"
    assert terminal_text(os.fsdecode(b"bad\xffname")) == "bad\\xffname"


def test_identify_table_keeps_one_line_per_file(tmp_path: Path) -> None:
    path = ModelFactory(tmp_path).lora("sd1", name=HOSTILE)
    result = CliRunner().invoke(cli, ["identify", str(path)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    rows = result.output.splitlines()
    assert len(rows) == 3, rows  # header, the file, the summary
    assert "new\\nline \\x1b[2J.safetensors" in rows[1]


def test_identify_json_keeps_the_real_name(tmp_path: Path) -> None:
    path = ModelFactory(tmp_path).lora("sd1", name=HOSTILE)
    result = CliRunner().invoke(cli, ["identify", "--json", str(path)])
    (line,) = result.output.splitlines()
    assert json.loads(line)["path"] == str(path)


def test_sort_plan_keeps_one_line_per_file_and_json_the_real_name(tmp_path: Path) -> None:
    downloads, root = tmp_path / "dl", tmp_path / "webui"
    root.mkdir()
    ModelFactory(downloads).lora("sd1", name=HOSTILE)
    args = ["sort", str(downloads), "--into", str(root), "--settle", "0", "--dry-run"]
    human = CliRunner().invoke(cli, args)
    assert human.exit_code == 0, human.output
    assert "\x1b" not in human.output
    first, detail, summary = human.output.splitlines()
    assert first.startswith("move ") and "new\\nline" in first and first.count("->") == 1
    assert "<lora:new\\nline \\x1b[2J:0.8>" in detail
    assert summary.startswith("plan: move 1")
    (line,) = CliRunner().invoke(cli, [*args, "--json"]).output.splitlines()
    assert json.loads(line)["source"] == str(downloads / HOSTILE)
