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


def test_identify_at_80_columns_uses_a_table_whose_cells_stay_readable(tmp_path: Path) -> None:
    from io import StringIO

    from rich.console import Console

    from modeldex.cli import identify_cmd
    from modeldex.identify.identify import identify_path

    factory = ModelFactory(tmp_path)
    paths = [
        factory.lora("sdxl", "locon", name="detail-tweaker.safetensors"),
        factory.checkpoint("sd1", "inpaint", name="v1-5-inpainting.safetensors"),
        factory.malicious_pickle(tmp_path / "canary", name="free_model.ckpt"),
    ]
    rows = [identify_path(p, f"Downloads/{p.name}") for p in paths]
    out = StringIO()
    console = Console(file=out, width=80, highlight=False, color_system=None)
    console.print(identify_cmd._compact_table(rows) if console.width < identify_cmd._NARROW else None)
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    for whole in ("lora sdxl locon", "UNSAFE: posix.system", "checkpoint sd1", "Downloads/free_model.ckpt"):
        assert whole in text, text
    assert "Downloads/detail-tweaker.safet" in text, text  # a long path folds, but not to a sliver
