"""QA: `modeldex meta` over hostile images: control characters, huge infotexts, garbage EXIF, odd files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner, Result
from PIL import Image, PngImagePlugin

from modeldex.cli.main import cli

PARAMS = "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512"


def png(path: Path, parameters: str) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", parameters)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    return path


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(cli, ["meta", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def test_escape_sequences_in_an_infotext_do_not_reach_the_terminal(tmp_path: Path) -> None:
    image = png(tmp_path / "evil\nname.png", f"a\x1b]0;pwned\x07 cat\n{PARAMS}, Model: x\x1b[2Jy, Version: v\x00")
    result = invoke(image)
    assert result.exit_code == 0, result.output
    assert not any(ch in result.output for ch in "\x1b\x07\x00")
    assert result.output.splitlines()[0].startswith(str(tmp_path / "evil\\nname.png"))
    assert "Model:     x\\x1b[2Jy" in result.output
    record = json.loads(invoke("--json", image).output)
    assert record["path"] == str(image) and record["params"]["model"] == "x\x1b[2Jy"


def test_an_infotext_of_thousands_of_lines_is_summarised_quickly(tmp_path: Path) -> None:
    prompt = "\n".join(f"line {i}, (word:1.{i % 9})" for i in range(20000))
    image = png(tmp_path / "huge.png", f"{prompt}\nNegative prompt: bad\n{PARAMS}")
    human = invoke(image)
    assert human.exit_code == 0
    assert max(len(line) for line in human.output.splitlines()) < 400
    record = json.loads(invoke("--json", image).output)
    assert record["params"]["prompt"] == prompt and record["params"]["steps"] == 20


def test_garbage_exif_truncated_png_and_a_folder_are_one_line_each(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(
        tmp_path / "garbage.jpg", exif=b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08" + b"\xff" * 64
    )
    good = png(tmp_path / "good.png", f"cat\n{PARAMS}")
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    os.mkdir(tmp_path / "folder.png")
    result = invoke(tmp_path / "garbage.jpg", tmp_path / "cut.png", tmp_path / "folder.png", good)
    assert result.exit_code == 1
    blocks = result.output.strip().split("\n\n")
    assert len(blocks) == 4 and all(len(b.splitlines()) == 1 for b in blocks[:3]), result.output
    assert blocks[3].splitlines()[0].endswith("[png:parameters]")
