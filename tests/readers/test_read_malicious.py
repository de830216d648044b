"""Malicious pickles: every offending global is named, and nothing from the file ever runs (the canary stays away).

Each payload would create `CANARY` if unpickled normally; the first test proves that with plain `pickle.loads`.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from readers_helpers import (
    RunsCommand,
    RunsExec,
    cheap,
    evil_pickle,
    rewrite_zip,
    stack_global_pickle,
    torch_save,
    touch_command,
    zip_prefix,
)

from modeldex.errors import ReadError
from modeldex.identify.readers import read_header
from modeldex.identify.readers.allowlist import is_allowed
from modeldex.identify.readers.pickle_scan import scan_globals

SYSTEM = f"{os.system.__module__}.system"  # how pickle names os.system: posix.system on Linux


def pickle_ends(data: bytes) -> list[int]:
    """Where each of the back-to-back pickles in `data` ends (just past its STOP)."""
    stream, ends = io.BytesIO(data), list[int]()
    while len(ends) < 5:
        for opcode, _arg, _pos in pickletools.genops(stream):
            if opcode.name == "STOP":
                ends.append(stream.tell())
    return ends


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    return tmp_path / "CANARY"


def test_payloads_really_are_live(canary: Path) -> None:
    # The same bytes the tests below feed the reader do run when unpickled normally: the canary test is meaningful.
    pickle.loads(stack_global_pickle(canary))
    assert canary.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_checkpoint_with_a_reduce_payload(tmp_path: Path, canary: Path, legacy: bool) -> None:
    state = {"state_dict": {"conv.weight": cheap([4, 4])}, "extra": RunsCommand(touch_command(canary))}
    path = torch_save(state, tmp_path / "model.ckpt", legacy=legacy)

    header = read_header(path)

    assert header.unsafe_globals == [SYSTEM]
    assert header.tensors == {}
    assert not canary.exists()


def test_exec_payload_in_zip(tmp_path: Path, canary: Path) -> None:
    path = torch_save({"a": RunsExec(f"open({str(canary)!r}, 'w')")}, tmp_path / "exec.pt")
    header = read_header(path)
    assert header.unsafe_globals == ["builtins.exec"]
    assert not canary.exists()


def test_data_pkl_replaced_by_payload(tmp_path: Path, canary: Path) -> None:
    source = torch_save({"a": torch.zeros(3)}, tmp_path / "good.pt")
    target = tmp_path / "bad.pt"
    rewrite_zip(source, target, {f"{zip_prefix(source)}/data.pkl": evil_pickle(canary)})
    assert read_header(target).unsafe_globals == [SYSTEM]
    assert not canary.exists()


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ({}, ["os.system"]),
        ({"via_memo": True}, ["os.system"]),
        # A decoy string pushed and popped between the two names: both the scan and the unpickler see through it.
        ({"with_pop": True}, ["os.system"]),
    ],
    ids=["plain", "memo", "decoy"],
)
def test_stack_global_obfuscation(tmp_path: Path, canary: Path, variant: dict[str, bool], expected: list[str]) -> None:
    payload = stack_global_pickle(canary, **variant)
    source = torch_save({"a": torch.zeros(3)}, tmp_path / "good.pt")
    for target in (tmp_path / "bad.pt", tmp_path / "bad.pkl"):
        if target.suffix == ".pt":
            rewrite_zip(source, target, {f"{zip_prefix(source)}/data.pkl": payload})
        else:
            target.write_bytes(payload)
        header = read_header(target)
        assert set(expected) <= set(header.unsafe_globals)
        assert not canary.exists()


def test_scan_resolves_memoized_stack_global(canary: Path) -> None:
    assert scan_globals(stack_global_pickle(canary, via_memo=True)).globals == [("os", "system")]
    assert scan_globals(stack_global_pickle(canary)).unsafe == ["os.system"]


def test_extra_pickle_member_in_zip(tmp_path: Path, canary: Path) -> None:
    source = torch_save({"conv.weight": cheap([8, 4, 3, 3])}, tmp_path / "good.pt")
    target = tmp_path / "smuggled.pt"
    prefix = zip_prefix(source)
    rewrite_zip(
        source, target, {}, add={f"{prefix}/extra.pkl": evil_pickle(canary), f"{prefix}/notes": b"\x80\x02K\x01."}
    )

    header = read_header(target)

    assert header.unsafe_globals == [SYSTEM]
    assert header.extra["unsafe_members"] == {f"{prefix}/extra.pkl": [SYSTEM]}
    assert set(header.extra["unexpected_members"]) == {f"{prefix}/extra.pkl", f"{prefix}/notes"}
    assert list(header.tensors) == ["conv.weight"]  # data.pkl itself is clean and was read
    assert not canary.exists()


def test_second_data_pkl_is_scanned(tmp_path: Path, canary: Path) -> None:
    source = torch_save({"a": torch.zeros(3)}, tmp_path / "good.pt")
    target = tmp_path / "two.pt"
    rewrite_zip(source, target, {}, add={"other/data.pkl": evil_pickle(canary, protocol=4)})
    assert SYSTEM in read_header(target).unsafe_globals
    assert not canary.exists()


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_plain_pickle_payload(tmp_path: Path, canary: Path, protocol: int) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(evil_pickle(canary, protocol=protocol))
    assert read_header(path).unsafe_globals == [SYSTEM]
    assert not canary.exists()


def test_truncated_payload_is_still_unsafe(tmp_path: Path, canary: Path) -> None:
    # pickle.load runs REDUCE before it notices the missing STOP, so a cut-off payload is still dangerous.
    payload = evil_pickle(canary)
    path = tmp_path / "cut.pkl"
    path.write_bytes(payload[:-1])
    assert read_header(path).unsafe_globals == [SYSTEM]
    assert not canary.exists()


def test_payload_in_place_of_the_legacy_magic(tmp_path: Path, canary: Path) -> None:
    good = torch_save({"a": torch.zeros(3)}, tmp_path / "good.pt", legacy=True).read_bytes()
    path = tmp_path / "bad_magic.pt"
    path.write_bytes(evil_pickle(canary) + good[pickle_ends(good)[0] :])
    assert read_header(path).unsafe_globals == [SYSTEM]
    assert not canary.exists()


def test_payload_in_legacy_sys_info(tmp_path: Path, canary: Path) -> None:
    good = torch_save({"a": torch.zeros(3)}, tmp_path / "good.pt", legacy=True).read_bytes()
    ends = pickle_ends(good)  # magic, protocol, sys_info, object, storage keys: replace sys_info
    path = tmp_path / "bad_sysinfo.pt"
    path.write_bytes(good[: ends[1]] + evil_pickle(canary) + good[ends[2] :])
    assert read_header(path).unsafe_globals == [SYSTEM]
    assert not canary.exists()


@pytest.mark.parametrize(
    "name",
    [
        ("builtins", "eval"),
        ("builtins", "getattr"),
        ("builtins", "open"),
        ("builtins", "__import__"),
        ("__builtin__", "apply"),
        ("builtins", "compile"),
        ("os", "system"),
        ("subprocess", "Popen"),
        ("torch.nn.modules.linear", "Linear"),
        ("torch", "load"),
        ("torch.serialization", "load"),
        ("functools", "partial"),
        ("operator", "attrgetter"),
        ("copyreg", "_reconstructor"),
        ("pytorch_lightningX", "Trainer"),
        ("numpy", "load"),
    ],
)
def test_allow_list_refuses(name: tuple[str, str]) -> None:
    assert not is_allowed(*name)


def test_reading_runs_no_subprocess_or_import(tmp_path: Path, canary: Path) -> None:
    # In a fresh interpreter: reading every payload imports neither torch nor the modules the payloads name.
    files = []
    for i, payload in enumerate([evil_pickle(canary), stack_global_pickle(canary, with_pop=True)]):
        path = tmp_path / f"p{i}.pkl"
        path.write_bytes(payload)
        files.append(str(path))
    code = (
        "import sys\nfrom pathlib import Path\nfrom modeldex.identify.readers import read_header\n"
        f"for p in {files!r}: print(read_header(Path(p)).unsafe_globals)\n"
        "assert 'torch' not in sys.modules and 'subprocess' not in sys.modules, sorted(sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "system" in out.stdout
    assert not canary.exists()


def test_zip_member_names_are_not_trusted(tmp_path: Path) -> None:
    # A data.pkl deeper than one folder is not the checkpoint's pickle; with no real one, the zip is not a checkpoint.
    path = tmp_path / "nested.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a/b/data.pkl", pickle.dumps({"x": 1}, protocol=2))
    with pytest.raises(ReadError, match="not a torch checkpoint"):
        read_header(path)
