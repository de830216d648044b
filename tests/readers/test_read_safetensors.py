"""safetensors headers: agreement with the reference library, validation, and cost independent of file size."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from readers_helpers import write_raw_safetensors, write_safetensors
from safetensors import safe_open
from safetensors.numpy import save_file

from modeldex.errors import ReadError
from modeldex.identify.readers import read_header


def test_matches_safe_open(tmp_path: Path) -> None:
    path = tmp_path / "lora.safetensors"
    arrays: dict[str, np.ndarray] = {
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": np.zeros((4, 320, 1, 1), np.float16),
        "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": np.array(4.0, np.float32),
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": np.zeros((3072, 4), np.float32),
        "flags": np.zeros((3,), np.bool_),
        "ids": np.arange(5, dtype=np.int64),
    }
    save_file(arrays, str(path), metadata={"ss_network_dim": "4", "ss_v2": "False"})

    header = read_header(path)

    assert header.format == "safetensors"
    with safe_open(str(path), framework="numpy") as reference:
        assert set(header.tensors) == set(reference.keys())
        assert header.metadata == reference.metadata()
        for key in reference.keys():
            piece = reference.get_slice(key)
            assert list(header.tensors[key].shape) == piece.get_shape()
            assert header.tensors[key].dtype == piece.get_dtype()
    (length,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert header.data_start == 8 + length
    # storage_offset is where the tensor's bytes begin in the buffer: read them back and compare.
    raw = path.read_bytes()
    ids = header.tensors["ids"]
    start = header.data_start + ids.storage_offset
    assert np.frombuffer(raw[start : start + 40], np.int64).tolist() == [0, 1, 2, 3, 4]


def test_no_metadata_and_dtypes_kept(tmp_path: Path) -> None:
    path = tmp_path / "vae.safetensors"
    write_safetensors(path, {"decoder.conv_in.weight": ("BF16", [512, 4, 3, 3]), "x": ("I8", [7])})
    header = read_header(path)
    assert header.metadata == {}
    assert header.tensors["decoder.conv_in.weight"].shape == (512, 4, 3, 3)
    assert header.tensors["decoder.conv_in.weight"].dtype == "BF16"
    assert header.tensors["x"].dtype == "I8"
    assert header.tensors["x"].storage_key is None


def test_sub_byte_and_fp8_dtypes(tmp_path: Path) -> None:
    header = json.dumps(
        {
            "a": {"dtype": "F8_E4M3", "shape": [2, 3], "data_offsets": [0, 6]},
            "b": {"dtype": "F4", "shape": [2, 4], "data_offsets": [6, 10]},
        }
    ).encode()
    path = tmp_path / "fp8.safetensors"
    write_raw_safetensors(path, header, 10)
    result = read_header(path)
    assert result.tensors["a"].dtype == "F8_E4M3"
    assert result.tensors["b"].shape == (2, 4)


def test_cost_does_not_grow_with_file_size(tmp_path: Path, sd1_shapes: dict[str, tuple[list[int], str]]) -> None:
    # A 7 GB checkpoint (a sparse file: no disk used) must read like a 1 MB one: only the header is read.
    big, small = tmp_path / "big.safetensors", tmp_path / "small.safetensors"
    shapes = {k: ("F32", shape) for k, (shape, _) in sd1_shapes.items()}
    used = sum(4 * int(np.prod(shape)) for _, shape in shapes.values())
    write_safetensors(big, shapes | {"pad": ("U8", [max(0, 7 * 10**9 - used)])})
    write_safetensors(small, {k: ("F16", [1]) for k in shapes} | {"pad": ("U8", [2**20])})
    assert big.stat().st_size >= 7 * 10**9

    proc_io = Path("/proc/self/io")

    def bytes_read() -> int:
        fields = dict(line.split(": ") for line in proc_io.read_text().splitlines())
        return int(fields["rchar"])

    for path in (big, small):
        before = bytes_read() if proc_io.exists() else None
        start = time.perf_counter()
        header = read_header(path)
        elapsed = time.perf_counter() - start
        after = bytes_read() if before is not None else None
        assert len(header.tensors) == len(shapes) + 1
        assert elapsed < 1.0
        if before is not None and after is not None:
            assert after - before < 8 + (header.data_start or 0) + 64 * 1024  # header and sniff, never the data


@pytest.mark.parametrize(
    ("header", "buffer_len", "message"),
    [
        (b"{not json", 0, "not valid JSON"),
        (b'{"a": \xff}', 0, "not valid UTF-8"),
        (b"[1, 2]", 0, "not a model file"),  # no `{` after the length: not safetensors at all
        (b'{"a": 3}', 0, "not an object"),
        (b'{"a": {"dtype": "F16", "shape": [2]}}', 4, "lacks dtype, shape or data_offsets"),
        (b'{"a": {"dtype": "F17", "shape": [2], "data_offsets": [0, 4]}}', 4, "unknown dtype"),
        (b'{"a": {"dtype": "F16", "shape": [-2], "data_offsets": [0, 4]}}', 4, "invalid shape"),
        (b'{"a": {"dtype": "F16", "shape": [2.0], "data_offsets": [0, 4]}}', 4, "invalid shape"),
        (b'{"a": {"dtype": "F16", "shape": [2], "data_offsets": [4, 0]}}', 4, "invalid data_offsets"),
        (b'{"a": {"dtype": "F16", "shape": [2], "data_offsets": [0]}}', 4, "invalid data_offsets"),
        (b'{"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 6]}}', 6, "do not hold shape"),
        (b'{"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}', 3, "truncated"),
        (b'{"__metadata__": {"step": 5}}', 0, "must map strings to strings"),
        (b'{"__metadata__": ["x"]}', 0, "must map strings to strings"),
        (b"{" + b"[" * 100_000 + b"]" * 100_000 + b"}", 0, "not valid JSON"),
    ],
)
def test_malformed_headers(tmp_path: Path, header: bytes, buffer_len: int, message: str) -> None:
    path = tmp_path / "bad.safetensors"
    write_raw_safetensors(path, header, buffer_len)
    with pytest.raises(ReadError, match=message):
        read_header(path)


def test_oversized_header_length(tmp_path: Path) -> None:
    path = tmp_path / "huge.safetensors"
    write_raw_safetensors(path, b'{"a": 1}', 0, length=100_000_001)
    with pytest.raises(ReadError, match="over the 100,000,000-byte limit"):
        read_header(path)


def test_header_past_end_of_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.safetensors"
    write_raw_safetensors(path, b'{"a": 1}', 0, length=5000)
    with pytest.raises(ReadError, match="truncated"):
        read_header(path)


def test_truncated_download(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    write_safetensors(path, {"a": ("F16", [1024, 1024]), "b": ("F16", [1024])})
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 100)
    with pytest.raises(ReadError, match="truncated.*interrupted download"):
        read_header(path)


@pytest.mark.parametrize("length", [0x280, 0x380, 0x580 + 0x10000])
def test_length_that_looks_like_a_pickle_header(tmp_path: Path, length: int) -> None:
    # A 640-byte header makes the file start with 80 02, the opening of a protocol-2 pickle.
    path = tmp_path / "small.safetensors"
    body = json.dumps({"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    write_raw_safetensors(path, body + b" " * (length - len(body)), 4)
    assert path.read_bytes()[0] == 0x80
    header = read_header(path)
    assert header.format == "safetensors"
    assert header.data_start == 8 + length
