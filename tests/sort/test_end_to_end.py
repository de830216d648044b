"""`modeldex sort` on real model files (the factory's), identified for real, and a `modeldex sort` process killed
with SIGKILL at random points of its apply, then finished or undone by the next command."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from factory import ModelFactory
from sort_helpers import snapshot

from modeldex.cli.main import cli


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["sort", *map(str, args)], catch_exceptions=False)


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    f = ModelFactory(tmp_path / "downloads")
    f.lora("sdxl", name="Pony style.safetensors")
    (f.root / "Pony style.preview.png").write_bytes(b"\x89PNG preview")
    (f.root / "Pony style.civitai.info").write_text('{"id": 1}')
    f.lora("sd1", "loha", name="hada.safetensors")
    f.embedding("sd1", name="bad hands.safetensors", negative=True)
    f.hypernetwork("sd1", name="painterly.pt")
    f.upscaler(name="4x-Ultra.pth")
    f.lora("sd1", name="日本語の LoRA ✓.safetensors")
    f.malicious_pickle(tmp_path / "canary", name="free_model.ckpt")
    f.lora("sd1", name="half.safetensors.part")
    (f.root / "readme.txt").write_text("thanks for downloading")
    return f.root


def test_a1111_sort_of_real_files_then_undo(downloads: Path, tmp_path: Path) -> None:
    root = tmp_path / "webui"
    root.mkdir()
    before = snapshot(downloads, root)
    result = run(
        downloads, "--into", root, "--lycoris-dir", "--quarantine", tmp_path / "jail", "--settle", "0", "--json"
    )
    assert result.exit_code == 0, result.output
    records = {Path(r["source"]).name: r for r in map(json.loads, result.output.splitlines())}
    where = {
        name: r["destination"] and str(Path(r["destination"]).relative_to(tmp_path)) for name, r in records.items()
    }
    assert where["Pony style.safetensors"] == "webui/models/Lora/Pony style.safetensors"
    assert where["Pony style.preview.png"] == "webui/models/Lora/Pony style.preview.png"
    assert where["Pony style.civitai.info"] == "webui/models/Lora/Pony style.civitai.info"
    assert where["hada.safetensors"] == "webui/models/LyCORIS/hada.safetensors"
    assert where["bad hands.safetensors"] == "webui/embeddings/bad hands.safetensors"
    assert where["painterly.pt"] == "webui/models/hypernetworks/painterly.pt"
    assert where["4x-Ultra.pth"] == "webui/models/ESRGAN/4x-Ultra.pth"
    assert where["日本語の LoRA ✓.safetensors"] == "webui/models/Lora/日本語の LoRA ✓.safetensors"
    assert where["free_model.ckpt"] == "jail/free_model.ckpt"
    assert records["free_model.ckpt"]["action"] == "quarantine"
    assert records["half.safetensors.part"]["action"] == "skip" and where["half.safetensors.part"] is None
    assert records["readme.txt"]["action"] == "skip"
    assert records["Pony style.safetensors"]["usage"] == "<lora:Pony style:0.8>"
    assert records["bad hands.safetensors"]["usage"] == "bad hands (in the negative prompt)"
    assert records["日本語の LoRA ✓.safetensors"]["usage"] == "<lora:日本語の LoRA ✓:0.8>"
    assert {r["state"] for r in records.values()} == {"done", "skipped"}
    assert not (tmp_path / "canary").exists()  # the malicious pickle was never run

    assert run("--undo").exit_code == 0
    assert snapshot(downloads, root) == before
    assert not any((tmp_path / "jail").iterdir())


def test_comfyui_by_base_dry_run_of_real_files(downloads: Path, tmp_path: Path) -> None:
    root = tmp_path / "ComfyUI"
    root.mkdir()
    result = run(downloads, "--into", root, "--layout", "comfyui", "--by-base", "--dry-run", "--settle", "0")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Pony style.safetensors -> models/loras/sdxl/Pony style.safetensors" in out
    assert "use: Load LoRA, lora_name: sdxl/Pony style.safetensors" in out
    assert "hada.safetensors -> models/loras/sd1/hada.safetensors" in out
    assert "bad hands.safetensors -> models/embeddings/sd1/bad hands.safetensors" in out
    assert "4x-Ultra.pth -> models/upscale_models/4x-Ultra.pth" in out
    assert "free_model.ckpt: unsafe pickle" in out
    assert "half.safetensors.part: partial download (.part file)" in out
    assert not any(root.iterdir())


# --- a real process, killed -------------------------------------------------------------------------------------------

SMALL_LORA = {
    f"lora_unet_down_blocks_1_attentions_{i}_transformer_blocks_0_attn2_to_k.{part}": (shape, "F16")
    for i in range(2)
    for part, shape in (("lora_down.weight", (4, 768)), ("lora_up.weight", (640, 4)))
}


def many_loras(folder: Path, count: int) -> None:
    f = ModelFactory(folder)
    for i in range(count):
        f.safetensors(f"lora {i:03d}.safetensors", SMALL_LORA, {"ss_output_name": f"lora {i:03d}"})
        if i % 2 == 0:
            (folder / f"lora {i:03d}.preview.png").write_bytes(b"preview %d" % i)


def contents(*folders: Path) -> Counter[bytes]:
    return Counter(snapshot(*folders).values())


def started_ops(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1) as conn:
            return int(conn.execute("SELECT count(*) FROM sort_op WHERE state != 'pending'").fetchone()[0])
    except sqlite3.Error:
        return 0  # not created yet, or busy


def run_finished(db: Path) -> bool:
    """Whether the newest run reached its end state (a SIGKILL sent in its last milliseconds lands after it)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute("SELECT state FROM sort_run ORDER BY id DESC LIMIT 1").fetchone()
    return row is not None and row[0] not in ("applying", "undoing")


def in_process(env: dict[str, str], *args: str | Path) -> Result:
    """The next command after the kill: run in this process (the killed one was a real process)."""
    return CliRunner().invoke(cli, ["sort", *map(str, args)], env=env, catch_exceptions=False)


@pytest.mark.slow
def test_sigkill_at_random_points_of_a_real_apply_then_recover(tmp_path: Path) -> None:
    rng = random.Random(20240611)
    files = 80
    ops = files + files // 2
    killed = 0
    for attempt in range(3):
        work = tmp_path / f"attempt{attempt}"
        source, root, data = work / "downloads", work / "webui", work / "data"
        many_loras(source, files)
        root.mkdir()
        env = {"MODELDEX_DATA_DIR": str(data), "MODELDEX_CONFIG": str(work / "none.toml")}
        before, everything = snapshot(source, root), contents(source)
        target = rng.randint(1, ops - 1)  # operations started before the kill
        command = [sys.executable, "-m", "modeldex", "sort", str(source), "--into", str(root), "--settle", "0"]
        proc = subprocess.Popen(command, env=dict(os.environ, **env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if started_ops(data / "modeldex.db") >= target:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode in (0, -signal.SIGKILL), stderr
        # under load the last operations can finish between the poll and the signal: then there is nothing to recover
        was_killed = proc.returncode == -signal.SIGKILL and not run_finished(data / "modeldex.db")
        killed += was_killed
        # nothing is missing, even mid-operation (a file may briefly have two names)
        assert not everything - contents(source, root), f"attempt {attempt}: a file went missing"
        if was_killed:
            blocked = in_process(env, source, "--into", root, "--settle", "0")
            assert blocked.exit_code == 1 and "was interrupted while applying" in blocked.output
            recover = "--undo" if attempt == 1 else "--resume"
            done = in_process(env, recover)
            assert done.exit_code == 0, done.output
            if recover == "--undo":
                assert snapshot(source, root) == before
        assert contents(source, root) == everything, f"attempt {attempt}: not every file exactly once"
        assert not list(work.rglob(".modeldex-*"))
        again = in_process(env, source, "--into", root, "--settle", "0")
        assert again.exit_code == 0, again.output
        assert list(source.iterdir()) == []
        assert len(list((root / "models/Lora").iterdir())) == ops
    assert killed >= 2, "the kill never landed inside an apply"
