"""Header reading speed: files per second for the common containers, and why the pickle path unpickles first.

Builds (in a temp folder) an SD 1.x checkpoint with the real 1,143 keys and shapes (each storage one element, so the
files are small) as a torch zip and as a legacy file, plus a 7 GB sparse safetensors file with the same keys, then
times `read_header` on each with the page cache warm. Also times the opcode scan (`pickletools.genops`) against
the restricted C unpickler on the same data.pkl: the scan alone costs more than a whole read, which is why it only
runs when the unpickler refuses something.

    .venv/bin/python bench/bench_readers.py [--repeats 200]
Needs torch (to write the checkpoints only).
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

KEYSET = Path("/work/shared/reference/keysets/sd1-ldm.json.gz")


def sd1_shapes() -> dict[str, tuple[list[int], str]]:
    if KEYSET.exists():
        data = json.loads(gzip.decompress(KEYSET.read_bytes()))
        return {
            k: (shape, dtype)
            for comp in ("clip_l", "vae", "diffuser", "scheduler")
            for k, (shape, dtype) in data["components"][comp].items()
        }
    return {f"model.diffusion_model.blocks.{i}.weight": ([320, 320, 3, 3], "float32") for i in range(1143)}


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return min(runs), statistics.median(runs)


def main() -> None:
    import torch

    from modeldex.identify.readers import read_header
    from modeldex.identify.readers.pickle_scan import scan_globals
    from modeldex.identify.readers.unpickler import load_pickle_bytes

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    shapes = sd1_shapes()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        state = {
            k: torch.zeros(1, dtype=getattr(torch, dt)).expand(s) if s else torch.zeros((), dtype=getattr(torch, dt))
            for k, (s, dt) in shapes.items()
        }
        ckpt = {"state_dict": state, "global_step": 470000}
        zip_path, legacy_path = root / "sd1.ckpt", root / "sd1-legacy.ckpt"
        torch.save(ckpt, zip_path)
        torch.save(ckpt, legacy_path, _use_new_zipfile_serialization=False)

        st_path = root / "sd1.safetensors"
        header, offset = {}, 0
        for key, (shape, _) in shapes.items():
            n = 4
            for d in shape:
                n *= d
            header[key] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + n]}
            offset += n
        header["pad"] = {"dtype": "U8", "shape": [7 * 10**9 - offset], "data_offsets": [offset, 7 * 10**9]}
        raw = json.dumps(header).encode()
        with open(st_path, "wb") as f:
            f.write(len(raw).to_bytes(8, "little") + raw)
            f.truncate(8 + len(raw) + 7 * 10**9)

        print(f"{len(shapes)} tensors per file, best / median of {args.repeats} runs")
        for name, path in (("torch zip", zip_path), ("legacy torch", legacy_path), ("safetensors 7 GB", st_path)):
            best, median = timed(lambda p=path: read_header(p), args.repeats)
            print(f"  {name:18s} {best * 1000:6.2f} / {median * 1000:6.2f} ms  -> {1 / median:6.0f} files/s")

        with zipfile.ZipFile(zip_path) as zf:
            data = zf.read(next(n for n in zf.namelist() if n.endswith("data.pkl")))
        best, median = timed(lambda: load_pickle_bytes(data), args.repeats)
        print(f"  restricted unpickle of data.pkl ({len(data):,} bytes): {median * 1000:.2f} ms")
        best, median = timed(lambda: scan_globals(data), max(5, args.repeats // 10))
        print(f"  genops globals scan of the same:                 {median * 1000:.2f} ms")


if __name__ == "__main__":
    main()
