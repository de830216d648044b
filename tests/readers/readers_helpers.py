"""Model files the reader tests build themselves: safetensors headers, GGUF files, torch zips, malicious pickles.

A module of its own (not conftest.py) so test files can import it by a name no other test folder uses.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch

ST_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def write_safetensors(
    path: Path,
    tensors: dict[str, tuple[str, list[int]]],
    metadata: dict[str, str] | None = None,
    *,
    pad_to: int = 8,
) -> int:
    """A real safetensors file whose data is a sparse hole (any size costs no disk); returns the header length."""
    header: dict[str, Any] = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, (dtype, shape) in tensors.items():
        numel = 1
        for dim in shape:
            numel *= dim
        nbytes = numel * ST_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % pad_to)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        f.truncate(8 + len(raw) + offset)
    return len(raw)


def write_raw_safetensors(path: Path, header: bytes, buffer_len: int, length: int | None = None) -> None:
    """A safetensors file with a hand-written header (for malformed ones)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header) if length is None else length))
        f.write(header)
        f.truncate(8 + len(header) + buffer_len)


# --- GGUF -------------------------------------------------------------------------------------------------------

GGUF_U8, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL = range(8)
GGUF_STRING, GGUF_ARRAY, GGUF_U64, GGUF_I64, GGUF_F64 = 8, 9, 10, 11, 12
_GGUF_FMT = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
GGML_BLOCKS = {0: (1, 4), 1: (1, 2), 8: (32, 34), 12: (256, 144), 14: (256, 210), 30: (1, 2)}


def _gguf_str(text: str, endian: str, wide: bool) -> bytes:
    raw = text.encode()
    return struct.pack(endian + ("Q" if wide else "I"), len(raw)) + raw


def _gguf_value(kind: int, value: Any, endian: str, wide: bool) -> bytes:
    if kind == GGUF_STRING:
        return _gguf_str(value, endian, wide)
    if kind == GGUF_ARRAY:
        item_kind, items = value
        out = struct.pack(endian + "I", item_kind) + struct.pack(endian + ("Q" if wide else "I"), len(items))
        return out + b"".join(_gguf_value(item_kind, v, endian, wide) for v in items)
    return struct.pack(endian + _GGUF_FMT[kind], value)


def write_gguf(
    path: Path,
    kvs: list[tuple[str, int, Any]],
    tensors: list[tuple[str, list[int], int]],
    *,
    version: int = 3,
    endian: str = "<",
    alignment: int = 32,
) -> int:
    """A GGUF file; `tensors` give shapes in PyTorch order (written reversed, as ggml does). Returns data start."""
    wide = version >= 2
    count = "Q" if wide else "I"
    out = bytearray(b"GGUF" + struct.pack(endian + "I", version))
    out += struct.pack(endian + count, len(tensors)) + struct.pack(endian + count, len(kvs))
    for key, kind, value in kvs:
        out += _gguf_str(key, endian, wide) + struct.pack(endian + "I", kind) + _gguf_value(kind, value, endian, wide)
    offset = 0
    for name, shape, type_id in tensors:
        dims = list(reversed(shape))
        out += _gguf_str(name, endian, wide) + struct.pack(endian + "I", len(dims))
        out += struct.pack(f"{endian}{len(dims)}{count}", *dims)
        out += struct.pack(endian + "I", type_id) + struct.pack(endian + "Q", offset)
        block, nbytes = GGML_BLOCKS[type_id]
        numel = 1
        for dim in shape:
            numel *= dim
        offset += -(-(-(-numel // block) * nbytes) // alignment) * alignment
    data_start = -(-len(out) // alignment) * alignment
    with open(path, "wb") as f:
        f.write(out)
        f.truncate(data_start + offset)
    return data_start


# --- torch files ---------------------------------------------------------------------------------------------------


def cheap(shape: list[int], dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """A tensor of any shape whose storage holds one element (stride 0): realistic headers, tiny files."""
    if not shape:
        return torch.zeros((), dtype=dtype)
    return torch.zeros(1, dtype=dtype).expand(shape)


def torch_save(obj: Any, path: Path, *, legacy: bool = False) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def rewrite_zip(source: Path, target: Path, replace: dict[str, bytes], add: dict[str, bytes] | None = None) -> None:
    """Copy a torch zip, replacing some members' bytes and adding others (stored, like torch writes)."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, replace.get(info.filename, src.read(info)))
        for name, data in (add or {}).items():
            dst.writestr(name, data)


def zip_prefix(path: Path) -> str:
    with zipfile.ZipFile(path) as zf:
        return next(n for n in zf.namelist() if n.endswith("/data.pkl")).split("/")[0]


# --- malicious pickles ---------------------------------------------------------------------------------------------


class RunsCommand:
    """Pickles to `os.system(command)`: unpickling it runs the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


class RunsExec:
    """Pickles to `builtins.exec(code)`."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (self.code,))


def touch_command(canary: Path) -> str:
    return f"touch '{canary}'"


def evil_pickle(canary: Path, protocol: int = 2) -> bytes:
    return pickle.dumps({"weight": 1, "payload": RunsCommand(touch_command(canary))}, protocol=protocol)


def stack_global_pickle(canary: Path, *, via_memo: bool = False, with_pop: bool = False) -> bytes:
    """A protocol-4 pickle calling os.system through STACK_GLOBAL, the way obfuscated payloads do."""
    cmd = touch_command(canary).encode()

    def short(text: bytes) -> bytes:
        return b"\x8c" + bytes([len(text)]) + text  # SHORT_BINUNICODE

    out = io.BytesIO()
    out.write(b"\x80\x04")
    if via_memo:
        # Push the names, memoize them, drop them, then fetch them back from the memo.
        out.write(short(b"os") + b"\x94" + b"0")  # MEMOIZE (0), POP
        out.write(short(b"system") + b"\x94" + b"0")  # MEMOIZE (1), POP
        out.write(b"h\x00" + b"h\x01")  # BINGET 0, BINGET 1
    elif with_pop:
        out.write(short(b"os") + short(b"decoy") + b"0" + short(b"system"))  # the decoy is popped
    else:
        out.write(short(b"os") + short(b"system"))
    out.write(b"\x93")  # STACK_GLOBAL
    out.write(short(cmd) if len(cmd) < 256 else b"X" + struct.pack("<I", len(cmd)) + cmd)
    out.write(b"\x85R.")  # TUPLE1, REDUCE, STOP
    return out.getvalue()
