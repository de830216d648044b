"""QA: MODELDEX_DB_URL pointing at things that are not usable databases: one clear line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from factory import ModelFactory

from modeldex.cli.main import cli


def invoke(monkeypatch: pytest.MonkeyPatch, url: str, *args: str | Path) -> tuple[int, str]:
    monkeypatch.setenv("MODELDEX_DB_URL", url)
    result = CliRunner().invoke(cli, [*map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def test_a_non_database_file_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    junk = ModelFactory(tmp_path).random_bytes("junk.db", size=8192)
    code, output = invoke(monkeypatch, f"sqlite:///{junk}", "scan", tmp_path)
    assert code == 1 and output.startswith("modeldex: database:") and "not a database" in output
    assert output.count("\n") == 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://me:hunter2@db.lan/models", "the database driver 'psycopg' is not installed"),
        ("mysql://me:hunter2@db.lan/models", "the database driver 'MySQLdb' is not installed"),
        ("nosuchdb://me:hunter2@db.lan/models", "SQLAlchemy knows no database called 'nosuchdb'"),
    ],
)
def test_a_missing_driver_is_one_line_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, expected: str
) -> None:
    code, output = invoke(monkeypatch, url, "sort", "--history")
    assert code == 1 and output.startswith("modeldex: database:") and expected in output
    assert "hunter2" not in output and "***" in output


def test_a_database_folder_blocked_by_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "blocker").write_text("a file")
    code, output = invoke(monkeypatch, f"sqlite:///{tmp_path}/blocker/index.db", "scan", tmp_path)
    assert code == 1 and "a file is in the way" in output


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_sort_refuses_an_in_memory_journal_but_dry_run_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    downloads, root = tmp_path / "dl", tmp_path / "webui"
    root.mkdir()
    model = ModelFactory(downloads).lora("sd1", name="style.safetensors")
    code, output = invoke(monkeypatch, url, "sort", downloads, "--into", root, "--settle", "0")
    assert code == 1 and "in memory" in output and "could not be undone" in output
    assert model.exists()
    code, output = invoke(monkeypatch, url, "sort", downloads, "--into", root, "--settle", "0", "--dry-run")
    assert code == 0 and "move       style.safetensors" in output
