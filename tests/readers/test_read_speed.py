"""Headers only, fast: an SD 1.x zip checkpoint (1,143 tensors) reads in a few milliseconds.

The goal is ~100 files/s on one core; the bound asserted here is looser, because CI machines are shared.
`bench/bench_readers.py` prints the real figures.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from readers_helpers import torch_save

from modeldex.identify.readers import read_header


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_sd1_checkpoint_reads_fast(tmp_path: Path, sd1_state: OrderedDict[str, torch.Tensor], legacy: bool) -> None:
    path = torch_save({"state_dict": sd1_state, "global_step": 1}, tmp_path / "sd1.ckpt", legacy=legacy)
    read_header(path)
    runs = []
    for _ in range(15):
        start = time.perf_counter()
        header = read_header(path)
        runs.append(time.perf_counter() - start)
    assert len(header.tensors) == len(sd1_state)
    # Best of 15 (the least disturbed by other work): 5-10 ms here; 50 ms would mean something went quadratic.
    assert min(runs) < 0.05
