"""Property tests: any bytes, in any container shell, give a Header or a ReadError: never another exception, never a hang."""

from __future__ import annotations

import io
import json
import pickle
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from readers_helpers import GGUF_ARRAY, GGUF_STRING, GGUF_U32, write_gguf

from modeldex.errors import ReadError
from modeldex.identify.readers import read_header
from modeldex.identify.records import Header

FUZZ = settings(
    max_examples=150,
    deadline=5000,  # generous: the CI machine is shared; a hang is what this catches, not slowness
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
pytestmark = [
    pytest.mark.timeout(240),
    # pickletools decodes a mutated protocol-0 STRING with an invalid escape and warns; that is the point here.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:pickletools"),
]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def read_bytes(workdir: Path, content: bytes, name: str = "fuzz.bin") -> Header | None:
    path = workdir / name
    path.write_bytes(content)
    try:
        header = read_header(path)
    except ReadError as exc:
        assert exc.message  # a message for the user, never empty
        return None
    assert isinstance(header, Header)
    return header


def _torch_zip(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _torch_legacy(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


SAMPLE_STATE = {
    "state_dict": {"a.weight": torch.zeros(3, 4, dtype=torch.float16), "b": torch.arange(5)},
    "global_step": 7,
    "names": ["x", "y"],
}
ZIP_SAMPLE = _torch_zip(SAMPLE_STATE)
LEGACY_SAMPLE = _torch_legacy(SAMPLE_STATE)
with zipfile.ZipFile(io.BytesIO(ZIP_SAMPLE)) as _zf:
    DATA_PKL = _zf.read("archive/data.pkl")


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for pos, value in edits:
        out[pos % len(out)] = value
    return bytes(out[:cut] if cut is not None else out)


edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8)
cuts = st.none() | st.integers(1, 10**6)


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(workdir: Path, content: bytes) -> None:
    read_bytes(workdir, content)


@FUZZ
@given(st.binary(max_size=2048), st.integers(-64, 64))
def test_behind_a_safetensors_length(workdir: Path, body: bytes, skew: int) -> None:
    content = b"{" + body
    read_bytes(workdir, struct.pack("<Q", max(0, len(content) + skew)) + content)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
entries = st.fixed_dictionaries(
    {},
    optional={
        "dtype": st.sampled_from(["F16", "F32", "BF16", "I64", "F4", "F6_E2M3", "BOOL", "X"]) | json_values,
        "shape": st.lists(st.integers(-2, 40), max_size=4) | json_values,
        "data_offsets": st.lists(st.integers(-2, 200), max_size=3) | json_values,
    },
)


@FUZZ
@given(
    st.dictionaries(st.text(max_size=10), entries | json_values, max_size=6),
    st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.text(max_size=5) | json_values, max_size=3)),
    st.integers(0, 300),
)
def test_safetensors_json_headers(workdir: Path, tensors: dict[str, object], meta: object, buffer_len: int) -> None:
    header = dict(tensors)
    if meta is not None:
        header["__metadata__"] = meta
    raw = json.dumps(header).encode()
    content = struct.pack("<Q", len(raw)) + raw + b"\x00" * buffer_len
    result = read_bytes(workdir, content)
    if result is not None:
        for info in result.tensors.values():
            assert info.storage_offset + (result.data_start or 0) <= len(content)


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from([b"", b"\x80\x02", b"\x80\x04", b"\x80\x05"]))
def test_zip_shell_with_arbitrary_data_pkl(workdir: Path, body: bytes, proto: bytes) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", proto + body)
        zf.writestr("archive/data/0", b"\x00" * 64)
        zf.writestr("archive/version", b"3\n")
    read_bytes(workdir, buf.getvalue())


@FUZZ
@given(edits, cuts)
def test_mutated_data_pkl(workdir: Path, changes: list[tuple[int, int]], cut: int | None) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(ZIP_SAMPLE)) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info.filename, _mutate(data, changes, cut) if info.filename.endswith("data.pkl") else data)
    read_bytes(workdir, buf.getvalue())


@FUZZ
@given(edits, cuts)
def test_mutated_torch_files(workdir: Path, changes: list[tuple[int, int]], cut: int | None) -> None:
    read_bytes(workdir, _mutate(ZIP_SAMPLE, changes, cut))
    read_bytes(workdir, _mutate(LEGACY_SAMPLE, changes, cut))


@FUZZ
@given(
    st.binary(max_size=2048), st.sampled_from([b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"(", b"c", b"}"])
)
def test_behind_a_pickle_header(workdir: Path, body: bytes, start: bytes) -> None:
    read_bytes(workdir, start + body)


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from([1, 2, 3, 4]))
def test_behind_a_gguf_magic(workdir: Path, body: bytes, version: int) -> None:
    read_bytes(workdir, b"GGUF" + struct.pack("<I", version) + body)


@pytest.fixture(scope="module")
def gguf_sample(workdir: Path) -> bytes:
    path = workdir / "sample.gguf"
    kvs = [
        ("general.architecture", GGUF_STRING, "sd1"),
        ("general.alignment", GGUF_U32, 32),
        ("names", GGUF_ARRAY, (GGUF_STRING, ["a", "b"])),
    ]
    write_gguf(path, kvs, [("input_blocks.0.0.weight", [320, 4, 3, 3], 1), ("out.bias", [4], 0)])
    return path.read_bytes()


@FUZZ
@given(edits, cuts)
def test_mutated_gguf(workdir: Path, gguf_sample: bytes, changes: list[tuple[int, int]], cut: int | None) -> None:
    read_bytes(workdir, _mutate(gguf_sample, changes, cut))


@FUZZ
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | st.binary(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.tuples(inner, inner)
            | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=3)
        ),
        max_leaves=20,
    )
)
def test_any_plain_pickle_of_builtin_values(workdir: Path, value: object) -> None:
    for protocol in (0, 2, 5):
        header = read_bytes(workdir, pickle.dumps(value, protocol=protocol))
        assert header is None or header.unsafe_globals == []


def test_shared_reference_bomb_is_bounded(workdir: Path) -> None:
    # 40 levels of [x, x]: tiny as a pickle, 2**40 leaves as a tree. Flattening must give up, not hang.
    inner: object = {"t": torch.zeros(1)}
    for _ in range(40):
        inner = [inner, inner]
    with pytest.raises(ReadError, match="more than"):
        read_header(_write(workdir, _torch_zip({"state": inner})))


def test_self_referencing_list(workdir: Path) -> None:
    loop: list[object] = [torch.zeros(2)]
    loop.append(loop)
    header = read_header(_write(workdir, _torch_zip({"loop": loop})))
    assert list(header.tensors) == ["loop.0"]


def _write(workdir: Path, content: bytes) -> Path:
    path = workdir / "crafted.pt"
    path.write_bytes(content)
    return path
