"""Memo indices past a pickle's end are refused before the C unpickler turns them into gigabytes (CPython gh-115952).

Python 3.11's C unpickler grows its memo array to twice a `PUT`/`LONG_BINPUT` index and zero-fills it: a 9-byte
pickle asking for index 2**31 costs 32 GB. The damaged files are read in a subprocess limited to 2 GB of address
space, so a regression fails in a second (with a MemoryError instead of our message) instead of eating the machine.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import pickletools
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from readers_helpers import cheap, rewrite_zip, torch_save, zip_prefix

from modeldex.identify.readers.pickle_bounds import walk_pickle
from modeldex.identify.readers.torch_legacy import MAGIC_NUMBER, PROTOCOL_VERSION
from modeldex.identify.readers.unpickler import load_pickle_bytes, load_pickle_stream


def long_binput(index: int) -> bytes:
    """`{}` memoized at `index` with LONG_BINPUT: 9 bytes."""
    return b"\x80\x02}r" + struct.pack("<I", index) + b"."


def put(index: int) -> bytes:
    """`{}` memoized at `index` with protocol 0's decimal PUT: 6 bytes plus the digits."""
    return b"\x80\x02}p" + str(index).encode() + b"\n."


def legacy_file(object_pickle: bytes, tail: bytes = b"") -> bytes:
    """A legacy torch file whose object pickle is `object_pickle`, followed by `tail` (where storage data lies)."""
    header = [
        pickle.dumps(MAGIC_NUMBER, 2),
        pickle.dumps(PROTOCOL_VERSION, 2),
        pickle.dumps({"little_endian": True}, 2),
    ]
    return b"".join(header) + object_pickle + pickle.dumps([], 2) + tail


EDGE = 9  # len(long_binput(i)) and len(put(7)) - 2: the smallest index each can no longer hold is its own length
DAMAGED = {
    "binput_at_end": long_binput(9),
    "binput_past_end": long_binput(10),
    "binput_2_31": long_binput(2**31 - 1),
    "binput_2_32": long_binput(2**32 - 1),
    "put_at_end": put(7),
    "put_2_31": put(2**31),
    "put_10_12": put(10**12),
}

CHILD = """
import json, resource, sys, time
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from modeldex.errors import ReadError
from modeldex.identify.readers import read_header
for name in sys.argv[1:]:
    start = time.perf_counter()
    result = {"path": name}
    try:
        result["unsafe"] = read_header(Path(name)).unsafe_globals
    except ReadError as exc:
        result["error"] = exc.message
    except MemoryError:
        result["error"] = "MemoryError"
    result["seconds"] = time.perf_counter() - start
    print(json.dumps(result), flush=True)
"""


def read_in_small_process(paths: list[Path]) -> dict[str, dict[str, object]]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, paths)], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = [json.loads(line) for line in done.stdout.splitlines()]
    return {Path(str(r["path"])).name: r for r in results}


@pytest.fixture(scope="module")
def zip_shell(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return torch_save({"w": cheap([2, 2])}, tmp_path_factory.mktemp("shell") / "shell.ckpt")


def test_damaged_memo_index_is_a_read_error_in_milliseconds(tmp_path: Path, zip_shell: Path) -> None:
    paths: list[Path] = []
    for name, data in DAMAGED.items():
        plain = tmp_path / f"{name}.pkl"
        plain.write_bytes(data)
        legacy = tmp_path / f"{name}.legacy.ckpt"
        legacy.write_bytes(legacy_file(data))
        packed = tmp_path / f"{name}.zip.ckpt"
        rewrite_zip(zip_shell, packed, {f"{zip_prefix(zip_shell)}/data.pkl": data})
        paths += [plain, legacy, packed]
    # Past 64 KB of buffered data, indices under 65,536 are let through unchecked (1 MB at most): the large ones are not.
    big_tail = tmp_path / "binput_2_31.legacy_tail.ckpt"
    big_tail.write_bytes(legacy_file(DAMAGED["binput_2_31"], tail=bytes(200_000)))
    paths.append(big_tail)

    results = read_in_small_process(paths)
    assert sorted(results) == sorted(p.name for p in paths)
    for name, result in results.items():
        assert "memo index" in str(result.get("error")), (name, result)
        assert "beyond the end" in str(result["error"]), (name, result)
        assert float(str(result["seconds"])) < 2, (name, result)


def test_unsafe_global_is_still_named_when_the_memo_index_is_damaged(tmp_path: Path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x02cos\nsystem\nr" + struct.pack("<I", 2**31) + b".")
    result = read_in_small_process([path])["evil.pkl"]
    assert result.get("unsafe") == ["os.system"], result


@pytest.mark.parametrize("data", [long_binput(EDGE - 1), put(6)], ids=["binput", "put"])
def test_last_index_inside_the_pickle_is_accepted(data: bytes) -> None:
    bounds = walk_pickle(data)
    assert bounds.complete and bounds.end == len(data)
    assert bounds.max_memo == len(data) - 1 and not bounds.memo_overflow
    assert load_pickle_bytes(data).obj == {}


def _genops_end(data: bytes) -> int:
    *_, (opcode, _arg, pos) = pickletools.genops(data)
    assert opcode.name == "STOP" and pos is not None
    return pos + 1


# The byte `r` inside strings, bytes and integers, followed by bytes that would read as a huge index.
TRAPS = {"r\x7f\x7f\x7f\x7f": 0x7F7F7F72, b"r\xff\xff\xff\xff" * 3: [1.5, -(2**40), b"p99999999999\n"], "k": None}


@pytest.mark.parametrize("protocol", range(6))
def test_walk_follows_the_opcodes_exactly(protocol: int) -> None:
    small = pickle.dumps(TRAPS, protocol)
    big = pickle.dumps({f"key{i}": (TRAPS, i, "x" * i) for i in range(2000)}, protocol)  # past 64 KB, memo > 256
    for data in (small, big):
        bounds = walk_pickle(data + b"trailing r\xff\xff\xff\xff")
        assert bounds.complete and bounds.end == _genops_end(data) == len(data)
        assert not bounds.memo_overflow
    assert load_pickle_bytes(small).obj == TRAPS


def test_walk_follows_a_torch_checkpoint(tmp_path: Path) -> None:
    path = torch_save({f"layer{i}.weight": cheap([4, 4]) for i in range(3000)}, tmp_path / "many.ckpt")
    with zipfile.ZipFile(path) as zf:
        data = zf.read(f"{zip_prefix(path)}/data.pkl")
    bounds = walk_pickle(data)
    assert bounds.complete and bounds.end == _genops_end(data) == len(data) and not bounds.memo_overflow
    contents = load_pickle_bytes(data)
    assert len(contents.obj) == 3000


def test_stream_pickles_leave_the_stream_after_their_stop() -> None:
    text = "x" * (3 << 20)  # longer than the first read: the stream is read on until the string ends
    first, second = pickle.dumps({"a": 1}, 2), pickle.dumps([text, 2], 2)
    stream = io.BytesIO(first + second + bytes(3 << 20))
    assert load_pickle_stream(stream).obj == {"a": 1}
    assert stream.tell() == len(first)
    assert load_pickle_stream(stream).obj == [text, 2]
    assert stream.tell() == len(first) + len(second)
