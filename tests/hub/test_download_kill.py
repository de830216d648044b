"""`modeldex download` killed with SIGKILL at random moments, again and again, then run to the end.

Each round starts the real CLI in a child process against the fault server (CivitAI and a slow file host) and
kills it after a random delay drawn from one of several windows: while starting, early, in the middle and late in
the transfer, and around the end (verifying, sorting). After every kill nothing but the whole, verified file may
appear in the library; the next run takes the job over at once (the dead worker's lock is gone) and resumes its
`.part`. The last run must exit 0 with the file's SHA256 equal to CivitAI's.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from factory import ModelFactory
from faultserver import FaultServer, Recorded, Reply, file_handler

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")]

VERSION_ID = 7301
WINDOWS = [(0.1, 0.7), (0.7, 1.2), (1.2, 1.7), (1.7, 2.2), (2.2, 2.7), (0.3, 2.7), (0.3, 2.7)]
"""Seconds after start at which a round kills the child: one draw from each window, shuffled."""


def version(data: bytes, host: str) -> dict[str, object]:
    return {
        "id": VERSION_ID,
        "modelId": 7300,
        "name": "v1",
        "baseModel": "SD 1.5",
        "model": {"name": "Killable", "type": "LORA"},
        "files": [
            {
                "id": 7302,
                "name": "killable.safetensors",
                "type": "Model",
                "primary": True,
                "sizeKB": len(data) / 1024,
                "hashes": {"SHA256": hashlib.sha256(data).hexdigest().upper()},
            }
        ],
        "images": [],
    }


def test_killed_at_random_points_the_download_ends_whole_and_verified(
    tmp_path: Path, fault_server: FaultServer, file_host: FaultServer, factory: ModelFactory
) -> None:
    data = factory.lora("sd1", te=False, name="killable.safetensors").read_bytes()  # 6.9 MB
    sha256 = hashlib.sha256(data).hexdigest()
    whole = file_handler(data, filename="killable.safetensors")

    def slow(request: Recorded) -> Reply:  # about 1.5 MB/s: a whole transfer takes several rounds
        reply = whole(request)
        reply.chunk_size, reply.chunk_delay = 64 * 1024, 0.04
        return reply

    fault_server.script(f"/api/v1/model-versions/{VERSION_ID}", Reply.json(version(data, file_host.url)))
    fault_server.script(f"/api/download/models/{VERSION_ID}", Reply.redirect(file_host.url + "/signed/killable"))
    file_host.script("/signed/killable", slow)
    library = tmp_path / "webui"
    library.mkdir()
    env = dict(
        os.environ,
        MODELDEX_CIVITAI_URL=fault_server.url,
        MODELDEX_DATA_DIR=str(tmp_path / "data"),
        MODELDEX_CONFIG=str(tmp_path / "config.toml"),
    )
    command = [sys.executable, "-m", "modeldex", "download", f"v:{VERSION_ID}", "--into", str(library), "--no-preview"]
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    delays = [rng.uniform(lo, hi) for lo, hi in WINDOWS]
    rng.shuffle(delays)
    placed = library / "models" / "Lora" / "killable.safetensors"
    killed = 0
    for delay in delays:
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            child.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            killed += 1
        else:
            assert child.returncode == 0, f"seed {seed}: {child.stderr.read().decode() if child.stderr else ''}"
        finally:
            if child.stderr:
                child.stderr.close()
        for path in library.rglob("*"):
            if path.is_file() and ".modeldex-downloads" not in path.parts:
                if path.name.endswith(".civitai.info"):
                    assert json.loads(path.read_text())["id"] == VERSION_ID
                    continue
                assert path == placed and hashlib.sha256(path.read_bytes()).hexdigest() == sha256, f"seed {seed}"
        for part in library.rglob("*.part"):
            assert part.stat().st_size <= len(data), f"seed {seed}"
    started = time.monotonic()
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, f"seed {seed}: {final.stderr}"
    assert time.monotonic() - started < 30, f"seed {seed}: the last run waited for a dead worker's lease"
    assert hashlib.sha256(placed.read_bytes()).hexdigest() == sha256
    assert not (library / ".modeldex-downloads").exists()
    listed = subprocess.run(
        [sys.executable, "-m", "modeldex", "jobs", "--json"], env=env, capture_output=True, text=True, check=True
    )
    jobs = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [j["state"] for j in jobs] == ["done"], f"seed {seed}: one job, taken over by each run"
    ranges = [r.headers.get("range") for r in file_host.requests_to("/signed/killable")]
    if killed and len(ranges) > 1:
        assert any(r and r != "bytes=0-" for r in ranges), f"seed {seed}: no run resumed a part ({ranges})"


def test_ctrl_c_leaves_a_queued_job_that_the_next_run_resumes(
    tmp_path: Path, fault_server: FaultServer, file_host: FaultServer, factory: ModelFactory
) -> None:
    data = factory.lora("sd1", te=False, name="killable.safetensors").read_bytes()
    whole = file_handler(data, filename="killable.safetensors")

    def slow(request: Recorded) -> Reply:
        reply = whole(request)
        reply.chunk_size, reply.chunk_delay = 64 * 1024, 0.04
        return reply

    fault_server.script(f"/api/v1/model-versions/{VERSION_ID}", Reply.json(version(data, file_host.url)))
    fault_server.script(f"/api/download/models/{VERSION_ID}", Reply.redirect(file_host.url + "/signed/killable"))
    file_host.script("/signed/killable", slow)
    library = tmp_path / "webui"
    library.mkdir()
    env = dict(
        os.environ,
        MODELDEX_CIVITAI_URL=fault_server.url,
        MODELDEX_DATA_DIR=str(tmp_path / "data"),
        MODELDEX_CONFIG=str(tmp_path / "config.toml"),
    )
    command = [sys.executable, "-m", "modeldex", "download", f"v:{VERSION_ID}", "--into", str(library), "--no-preview"]
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not list(library.rglob("*.part")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 130 and "run the same command again" in stderr
    listed = subprocess.run(
        [sys.executable, "-m", "modeldex", "jobs", "--json"], env=env, capture_output=True, text=True, check=True
    )
    job = json.loads(listed.stdout)
    assert job["state"] == "queued" and 0 < job["bytes_done"] < len(data)
    (part,) = library.rglob("*.part")
    kept = part.stat().st_size
    file_host.script("/signed/killable", whole)  # full speed for the rest
    final = subprocess.run(command + ["--json"], env=env, capture_output=True, text=True, timeout=60)
    assert final.returncode == 0, final.stderr
    outcome = json.loads(final.stdout)
    assert outcome["resumed_from"] == kept and outcome["fetched"] == len(data) - kept
    placed = library / "models" / "Lora" / "killable.safetensors"
    assert hashlib.sha256(placed.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
