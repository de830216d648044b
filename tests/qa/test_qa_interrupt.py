"""QA: Ctrl-C (SIGINT) in the middle of a long scan, in a real process: a prompt, clean stop that keeps the index."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from factory import ModelFactory


@pytest.mark.slow
def test_ctrl_c_stops_a_scan_promptly_and_the_next_scan_goes_on(tmp_path: Path) -> None:
    factory = ModelFactory(tmp_path / "library")
    for i in range(6):  # sparse 6.9 GB checkpoints: far more hashing than the test waits for
        factory.checkpoint("sdxl", name=f"big{i}.safetensors", metadata={"i": str(i)})
    data = tmp_path / "data"
    env = dict(os.environ, MODELDEX_DATA_DIR=str(data), MODELDEX_CONFIG=str(tmp_path / "none.toml"))
    command = [sys.executable, "-m", "modeldex", "scan", "--jobs", "2", str(tmp_path / "library")]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not (data / "modeldex.db").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # hashing under way on both workers
    assert proc.poll() is None, "the scan ended before it could be interrupted"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    waited = time.monotonic() - sent
    assert proc.returncode == 130, err.decode()
    assert waited < 3.0, f"Ctrl-C took {waited:.1f} s: the workers kept hashing"
    lines = err.decode().strip().splitlines()
    assert lines[-1].startswith("modeldex: interrupted: the files finished so far are in the index")
    assert "Traceback" not in err.decode()
    with sqlite3.connect(data / "modeldex.db") as db:
        rows = db.execute("SELECT count(*), count(sha256) FROM local_file").fetchone()
    assert rows[0] == rows[1]  # no half-hashed row was stored
