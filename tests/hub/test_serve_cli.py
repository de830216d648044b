"""`modeldex serve` on the command line: argument errors, catalogue files, the user's index, a real run."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from serve_helpers import catalog_items, find_item

from modeldex.cli.main import cli


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["serve", *args])
    return result.exit_code, result.output


def test_db_and_catalog_together_is_a_usage_error() -> None:
    code, output = run("--db", "sqlite:///x.db", "--catalog", "c.json")
    assert code == 2
    assert "give --db or --catalog, not both" in output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "is not JSON"),
        ('{"models": []}', 'must hold {"items": [...]}'),
        ('{"items": [{"name": "no id"}]}', "item 1 is not a model object with a numeric id"),
        ('{"items": [{"id": 1, "modelVersions": [{"name": "no id"}]}]}', "catalogue item 1 (model 1)"),
    ],
)
def test_bad_catalogue_files_give_one_line(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "catalog.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    code, output = run("--catalog", str(path), "--port", "0")
    assert code == 2
    assert message in output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) == 1


def test_port_in_use_is_a_usage_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code, output = run("--catalog", "--port", str(port))
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in output


def test_help_names_every_option() -> None:
    code, output = run("--help")
    assert code == 0
    for option in ("--host", "--port", "--db", "--catalog", "--public-url"):
        assert option in output


def _start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "modeldex", "serve", "--port", "0", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if "serving" in line or not line:
            break
    found = re.search(r"at (http://127\.0\.0\.1:\d+)", line)
    if found is None:
        process.kill()
        pytest.fail(f"modeldex serve did not start: {line!r} {process.stderr.read()}")
    return process, found.group(1)


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()


def test_serving_a_catalogue_file_in_a_real_process(tmp_path: Path) -> None:
    item = find_item(catalog_items(), 4201)
    (tmp_path / "mine.json").write_text(json.dumps({"items": [item]}), encoding="utf-8")
    process, base = _start(["--catalog", str(tmp_path / "mine.json")], dict(os.environ))
    try:
        body = httpx.get(f"{base}/api/v1/models", timeout=10).json()
        assert [m["id"] for m in body["items"]] == [4201]
        sha = item["modelVersions"][0]["files"][0]["hashes"]["SHA256"]
        assert httpx.get(f"{base}/api/v1/model-versions/by-hash/{sha}", timeout=10).json()["id"] == 130072
    finally:
        code = _stop(process)
    assert code == 0


def test_serving_the_users_index_read_only(tmp_path: Path) -> None:
    # The index in force comes from MODELDEX_DATA_DIR (set per test by conftest): fill it, then serve it.
    from modeldex.config import load_settings
    from modeldex.db.engine import make_engine, session_factory
    from modeldex.db.migrate import ensure_schema
    from modeldex.hub.store import upsert_model

    settings = load_settings()
    engine = make_engine(settings.resolved_db_url)
    ensure_schema(engine)
    with session_factory(engine)() as session:
        upsert_model(session, find_item(catalog_items(), 7001))
        session.commit()
    engine.dispose()
    db_file = Path(settings.resolved_db_url.removeprefix("sqlite:///"))
    before = db_file.stat().st_mtime_ns
    process, base = _start([], dict(os.environ))
    try:
        models = httpx.get(f"{base}/api/v1/models", timeout=10).json()["items"]
        assert [m["id"] for m in models] == [7001]
    finally:
        code = _stop(process)
    assert code == 0
    assert db_file.stat().st_mtime_ns == before
