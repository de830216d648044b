"""`modeldex scan` through click, against a database in a tmp data folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hashing_helpers import write_lora, write_noise

from modeldex.cli.main import cli
from modeldex.identify.records import Identification

HASH_FIELDS = ["sha256", "autov1", "autov2", "autov3", "crc32", "blake3"]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("MODELDEX_DATA_DIR", str(data))
    monkeypatch.setenv("MODELDEX_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.delenv("MODELDEX_DB_URL", raising=False)
    monkeypatch.delenv("MODELDEX_SORT__LIBRARY", raising=False)
    return data


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    write_lora(root / "a.safetensors", seed=1)
    write_noise(root / "b.ckpt", 2000, seed=2)
    (root / "b.preview.png").write_bytes(b"not a model")
    return root


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["scan", *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_lines_carry_identify_fields_then_stat_and_hashes(library: Path) -> None:
    code, out, _ = invoke("--json", str(library))
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [Path(r["path"]).name for r in records] == ["a.safetensors", "b.ckpt"]
    identify_fields = list(Identification(path="x").to_json())
    for record in records:
        assert list(record) == [*identify_fields, "size", "mtime_ns", *HASH_FIELDS]
        data = Path(record["path"]).read_bytes()
        assert record["size"] == len(data)
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
        assert record["autov2"] == record["sha256"][:10]
        for name in HASH_FIELDS:
            assert record[name] is None or record[name] == record[name].lower()
    assert records[0]["kind"] == "lora" and records[0]["autov3"] is not None
    assert records[1]["autov3"] is None and records[1]["error"]


def test_second_run_comes_from_the_index_with_the_same_output(library: Path) -> None:
    _, first, _ = invoke("--json", str(library))
    _, second, _ = invoke("--json", "--jobs", "2", str(library))
    assert second == first
    code, human, _ = invoke(str(library))
    assert code == 0
    assert "unchanged (from the index)" in human and " 2" in human


def test_path_as_given_is_echoed(library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(library.parent)
    _, out, _ = invoke("--json", "lib")
    assert [json.loads(line)["path"] for line in out.splitlines()] == ["lib/a.safetensors", "lib/b.ckpt"]


def test_default_path_is_the_configured_library(library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELDEX_SORT__LIBRARY", str(library))
    code, out, _ = invoke("--json")
    assert code == 0
    assert len(out.splitlines()) == 2


def test_no_path_and_no_library_is_a_usage_error() -> None:
    code, out, err = invoke()
    assert code == 2 and out == ""
    assert "no PATH given and no library configured" in err
    assert "Traceback" not in err


def test_bad_jobs_is_a_usage_error(library: Path) -> None:
    code, _, err = invoke("--jobs", "0", str(library))
    assert code == 2 and "--jobs" in err


def test_human_summary_lists_kinds_and_errors(library: Path) -> None:
    code, out, _ = invoke(str(library))
    assert code == 0
    assert "identified and hashed" in out
    assert "lora" in out and "errors" in out and "b.ckpt" in out


def test_missing_path_is_an_error_record_not_a_failure(tmp_path: Path) -> None:
    code, out, _ = invoke("--json", str(tmp_path / "nope.safetensors"))
    assert code == 0
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert "no such file" in record["error"] and record["sha256"] is None and record["size"] is None


def test_unusable_database_is_one_line_not_a_traceback(library: Path, tmp_path: Path, isolated: Path) -> None:
    isolated.mkdir(parents=True)
    (isolated / "modeldex.db").write_bytes(b"this is not a database" * 100)
    code, _, err = invoke(str(library))
    assert code == 1
    assert "Traceback" not in err and "database" in err


def test_vanished_file_is_reported(library: Path) -> None:
    invoke(str(library))
    (library / "b.ckpt").unlink()
    code, out, _ = invoke(str(library))
    assert code == 0
    assert "removed from the index (gone)" in out and "b.ckpt" in out


def test_many_files_show_progress_on_stderr_and_a_summary(tmp_path: Path) -> None:
    for i in range(60):
        write_noise(tmp_path / "many" / f"{i:02d}.bin", 100 + i, seed=i)
    code, out, err = invoke("--jobs", "2", str(tmp_path / "many"))
    assert code == 0
    assert "scanning" in err and "60/60 files" in err
    assert "identified and hashed" in out and "60" in out
