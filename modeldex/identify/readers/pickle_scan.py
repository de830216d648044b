"""List every global a pickle references, without unpickling it (what picklescan does).

`pickletools.genops` walks the opcodes; `GLOBAL` and `INST` name their global inline, `STACK_GLOBAL` takes module
and name from the two values below it on the stack, which we resolve from the preceding string pushes and memo
reads. Anything we cannot resolve counts as the unsafe `unknown.unknown`, as do `EXT*` opcodes (the extension
registry is a way to name a global without spelling it).
"""

from __future__ import annotations

import io
import pickletools
import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from modeldex.identify.readers.allowlist import global_name, is_allowed

UNKNOWN_GLOBAL = ("unknown", "unknown")

_STRING_OPS = frozenset(
    {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
)
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_EXT_OPS = frozenset({"EXT1", "EXT2", "EXT4"})

SCAN_ERRORS = (ValueError, EOFError, struct.error, OverflowError, MemoryError, RecursionError)
"""What `genops` raises on bytes that are not (or stop being) a valid pickle."""

_NOT_A_STRING = object()
_MAX_NAME = 200


@dataclass(slots=True)
class ScanResult:
    """The globals found, in order, and whether the scan reached the pickle's STOP."""

    globals: list[tuple[str, str]] = field(default_factory=list)
    complete: bool = False
    error: str | None = None

    @property
    def unsafe(self) -> list[str]:
        """`module.name` of every global outside the allow-list, sorted and unique."""
        return sorted({global_name(m, n) for m, n in self.globals if not is_allowed(m, n)})


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_NAME else text[:_MAX_NAME] + "..."


def scan_globals(source: bytes | BinaryIO) -> ScanResult:
    """Walk one pickle (from the stream's current position) and collect its globals; never raises on bad input."""
    stream = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    result = ScanResult()
    memo: dict[int, object] = {}
    recent: list[object] = []  # values pushed lately: a str, or _NOT_A_STRING
    try:
        for opcode, arg, _pos in pickletools.genops(stream):
            name = opcode.name
            if name in _STRING_OPS:
                recent.append(arg)
            elif name in _PUT_OPS:
                memo[int(arg)] = recent[-1] if recent else _NOT_A_STRING  # type: ignore[arg-type]
            elif name == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else _NOT_A_STRING
            elif name in _GET_OPS:
                recent.append(memo.get(int(arg), _NOT_A_STRING))  # type: ignore[arg-type]
            elif name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                result.globals.append((_clip(module), _clip(attr)))
                recent.append(_NOT_A_STRING)
            elif name == "STACK_GLOBAL":
                if len(recent) >= 2 and isinstance(recent[-2], str) and isinstance(recent[-1], str):
                    result.globals.append((_clip(recent[-2]), _clip(recent[-1])))
                else:
                    result.globals.append(UNKNOWN_GLOBAL)
                del recent[-2:]
                recent.append(_NOT_A_STRING)
            elif name in _EXT_OPS:
                result.globals.append(UNKNOWN_GLOBAL)
                recent.append(_NOT_A_STRING)
            elif name == "POP":
                del recent[-1:]
            elif name == "STOP":
                result.complete = True
            else:
                recent.append(_NOT_A_STRING)
            if len(recent) > 16:
                del recent[:-2]
    except SCAN_ERRORS as exc:
        result.error = str(exc) or type(exc).__name__
    return result
