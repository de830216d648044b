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


SMALL_LORA = {
    f"lora_unet_down_blocks_1_attentions_{i}_transformer_blocks_0_attn2_to_k.{part}": (shape, "F16")
    for i in range(2)
    for part, shape in (("lora_down.weight", (4, 768)), ("lora_up.weight", (640, 4)))
}


def started_ops(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1) as conn:
            return int(conn.execute("SELECT count(*) FROM sort_op WHERE state != 'pending'").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_ctrl_c_during_a_sort_says_how_to_resume_and_resume_finishes(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from modeldex.cli.main import cli

    source, root, data = tmp_path / "dl", tmp_path / "webui", tmp_path / "data"
    factory = ModelFactory(source)
    for i in range(400):
        factory.safetensors(f"lora {i:03d}.safetensors", SMALL_LORA, {"ss_output_name": f"lora {i:03d}"})
    root.mkdir()
    env = {"MODELDEX_DATA_DIR": str(data), "MODELDEX_CONFIG": str(tmp_path / "none.toml")}
    command = [sys.executable, "-m", "modeldex", "sort", str(source), "--into", str(root), "--settle", "0"]
    proc = subprocess.Popen(command, env=dict(os.environ, **env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and started_ops(data / "modeldex.db") < 5:
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the sort finished before the interrupt landed")
    assert proc.returncode == 130, err.decode()
    (line,) = err.decode().strip().splitlines()
    assert line.startswith("modeldex: interrupted: sort run 1 was interrupted while applying")
    assert "modeldex sort --resume 1" in line and "modeldex sort --undo 1" in line
    resumed = CliRunner().invoke(cli, ["sort", "--resume"], env=env)
    assert resumed.exit_code == 0, resumed.output
    assert list(source.iterdir()) == []
    assert len(list((root / "models" / "Lora").iterdir())) == 400
