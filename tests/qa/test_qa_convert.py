"""QA: `modeldex convert` with hostile output names and blocked output folders."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result
from factory import ModelFactory

from modeldex.cli.main import cli


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(cli, ["convert", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def test_a_newline_in_the_output_name_stays_on_one_line(tmp_path: Path) -> None:
    source = ModelFactory(tmp_path).embedding("sd1", style="a1111", name="emb.pt")
    out = tmp_path / "new\nline.safetensors"
    result = invoke(source, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"wrote {tmp_path}/new\\nline.safetensors (1 tensor, 12.54 kB)"
    assert out.is_file()


def test_errors_naming_a_hostile_path_stay_one_line(tmp_path: Path) -> None:
    source = ModelFactory(tmp_path).embedding("sd1", style="a1111", name="emb.pt")
    (tmp_path / "x\nemb.safetensors").write_text("already here")
    result = invoke(source, "--out", tmp_path / "x\nemb.safetensors")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "x\\nemb.safetensors already exists" in result.output


def test_an_output_folder_that_is_a_file_is_called_that(tmp_path: Path) -> None:
    source = ModelFactory(tmp_path).embedding("sd1", style="a1111", name="emb.pt")
    (tmp_path / "afile").write_text("x")
    result = invoke(source, "--out", tmp_path / "afile" / "emb.safetensors")
    assert result.exit_code == 2 and "afile is not a folder" in result.output
