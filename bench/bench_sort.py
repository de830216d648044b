"""Sort 1,000 files on one filesystem (goal: < 2 s), as `modeldex sort` does it.

Builds a downloads folder of small but real safetensors models (SD1/SDXL LoRAs and embeddings, every file distinct,
a third with a `.preview.png` sidecar), then times, with a journal database at the newest schema:
  - plan: walk, partial check, identify each file from its header, SHA256 each file, pick destinations;
  - apply: journal the plan, move every file and sidecar (started/done marks committed per operation);
  - undo: the same run reverted (not part of the goal; printed for reference);
  - cli: the whole `modeldex sort` command on a second, identical folder, in a fresh process (interpreter start,
    settings, database open and migration check included).
The total of plan + apply is the figure the goal is about. Files per second counts model files (sidecars ride along).

    .venv/bin/python bench/bench_sort.py [--files 1000] [--dir /some/tmp]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from modeldex.db.engine import make_engine, session_factory
from modeldex.db.migrate import ensure_schema
from modeldex.db.sort_journal import SqlJournal
from modeldex.identify.layouts import LayoutOptions
from modeldex.identify.sorting.apply import apply_plan, undo_run
from modeldex.identify.sorting.plan import SortOptions
from modeldex.identify.sorting.planner import plan_sort

SD1_TE = 768
SDXL_CROSS = 2048


def lora(rank: int, cross_dim: int, salt: int) -> dict[str, np.ndarray]:
    """A kohya LoRA with a few attention modules; `salt` makes every file's bytes distinct."""
    tensors: dict[str, np.ndarray] = {}
    for block in range(2):
        stem = f"lora_unet_down_blocks_1_attentions_{block}_transformer_blocks_0_attn2_to_k"
        tensors[f"{stem}.lora_down.weight"] = np.full((rank, cross_dim), salt % 251, dtype=np.float16)
        tensors[f"{stem}.lora_up.weight"] = np.zeros((640, rank), dtype=np.float16)
        tensors[f"{stem}.alpha"] = np.array(float(rank), dtype=np.float32)
    return tensors


def embedding(dim: int, salt: int) -> dict[str, np.ndarray]:
    return {"emb_params": np.full((2, dim), salt % 251, dtype=np.float32)}


def build(source: Path, files: int) -> None:
    source.mkdir(parents=True)
    for i in range(files):
        if i % 4 == 3:
            name, tensors = f"embedding {i:04d}.safetensors", embedding(SD1_TE, i)
        else:
            name, tensors = f"lora {i:04d}.safetensors", lora(4, SD1_TE if i % 2 else SDXL_CROSS, i)
        save_file(tensors, str(source / name), metadata={"ss_output_name": name, "salt": str(i)})
        if i % 3 == 0:
            (source / name).with_suffix(".preview.png").write_bytes(b"\x89PNG fake preview %d" % i)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=None, help="where to build the folders (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        source, root = work / "downloads", work / "webui"
        build(source, args.files)
        root.mkdir()
        engine = make_engine(f"sqlite:///{work / 'modeldex.db'}")
        ensure_schema(engine)
        journal = SqlJournal(session_factory(engine))

        t0 = time.perf_counter()
        plan = plan_sort(source, root, SortOptions(LayoutOptions(by_base=True)), settle=0)
        t1 = time.perf_counter()
        result = apply_plan(plan, journal)
        t2 = time.perf_counter()
        undone = undo_run(result.run_id, journal)
        t3 = time.perf_counter()

        moved = sum(1 for a in plan.actions if a.action == "move" and a.sidecar_of is None)
        sidecars = sum(1 for a in plan.actions if a.sidecar_of is not None)
        assert result.state == "done" and not result.problems, result.problems[:3]
        assert undone.state == "undone", undone.problems[:3]
        assert moved == args.files, plan.counts()
        total = t2 - t0
        print(f"files: {args.files} models + {sidecars} sidecars, one filesystem")
        print(f"plan:  {t1 - t0:6.3f} s  ({args.files / (t1 - t0):8.0f} files/s)  identify + SHA256 + destinations")
        print(f"apply: {t2 - t1:6.3f} s  ({args.files / (t2 - t1):8.0f} files/s)  journalled moves")
        print(
            f"sort:  {total:6.3f} s  ({args.files / total:8.0f} files/s)  goal < 2 s: {'met' if total < 2 else 'MISSED'}"
        )
        print(f"undo:  {t3 - t2:6.3f} s  ({args.files / (t3 - t2):8.0f} files/s)  (hash-checked, for reference)")

        source2, root2 = work / "downloads2", work / "webui2"
        build(source2, args.files)
        root2.mkdir()
        env = dict(os.environ, MODELDEX_DATA_DIR=str(work / "data"), MODELDEX_CONFIG=str(work / "none.toml"))
        env.pop("MODELDEX_DB_URL", None)
        command = [sys.executable, "-m", "modeldex", "sort", str(source2), "--into", str(root2), "--settle", "0"]
        subprocess.run(command[:4] + ["--history"], env=env, check=True, capture_output=True)  # create the DB
        t4 = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        t5 = time.perf_counter()
        assert done.returncode == 0, done.stderr[-2000:]
        print(f"cli:   {t5 - t4:6.3f} s  ({args.files / (t5 - t4):8.0f} files/s)  `modeldex sort` in a fresh process")


if __name__ == "__main__":
    main()
