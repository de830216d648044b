"""Walk a pickle's opcodes before the C unpickler runs it, to refuse memo indices it would turn into huge allocations.

Python 3.11's C unpickler stores memo entries in an array and, on `PUT`/`LONG_BINPUT` with an index past its end,
grows the array to twice the index and zero-fills it (CPython gh-115952, fixed after 3.11.7): a 1 KB pickle asking
for memo index 2**31 costs 32 GB. A pickler numbers its memo entries 0, 1, 2... one per memoized object, so an
index can never reach the pickle's own length in bytes; one that does is damage (or an attack), and we say so
before unpickling.

The walk must see exactly the opcode boundaries the unpickler sees (the byte `r` also appears inside strings and
integers), so it follows the opcode grammar. To stay cheap it lets one regular expression consume each run of
opcodes that cannot matter (fixed-size arguments, lines, `LONG_BINPUT` below 65,536) and handles the rest one at a
time in Python: length-prefixed strings, larger memo indices, `FRAME`, `STOP`. An SD 1.x checkpoint's 36,000
opcodes take about 1,100 Python steps (one per string), about 1 ms.
"""

from __future__ import annotations

import pickletools
import re
from dataclasses import dataclass

_SMALL_MEMO = 1 << 16
"""`LONG_BINPUT`/`PUT` indices below this cost the unpickler at most 1 MB: not worth a Python step each."""

_LINE_ARGS = frozenset(
    {"stringnl", "stringnl_noescape", "decimalnl_short", "decimalnl_long", "floatnl", "unicodestringnl"}
)
_SPECIAL = frozenset({b"r", b"p", b".", b"\x95"})  # LONG_BINPUT, PUT, STOP, FRAME: always checked in Python


def _opcode_tables() -> tuple[re.Pattern[bytes], re.Pattern[bytes], dict[int, tuple[int, bool]]]:
    """The run patterns (strict, lax) and, for length-prefixed opcodes, (bytes in the length, signed?)."""
    no_arg: list[bytes] = []
    fixed: dict[int, list[bytes]] = {}
    line: list[bytes] = []
    pair: list[bytes] = []
    prefixed: dict[int, tuple[int, bool]] = {}
    for op in pickletools.opcodes:
        code = op.code.encode("latin-1")
        arg = op.arg
        if code in _SPECIAL:
            continue
        if arg is None:
            no_arg.append(code)
        elif arg.n > 0:
            fixed.setdefault(arg.n, []).append(code)
        elif arg.name == "stringnl_noescape_pair":
            pair.append(code)
        elif arg.name in _LINE_ARGS:
            line.append(code)
        else:  # the length comes first: 1 byte, 4 signed, 4 unsigned or 8 unsigned
            width, signed = {
                pickletools.TAKEN_FROM_ARGUMENT1: (1, False),
                pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
                pickletools.TAKEN_FROM_ARGUMENT4U: (4, False),
                pickletools.TAKEN_FROM_ARGUMENT8U: (8, False),
            }[arg.n]
            prefixed[code[0]] = (width, signed)

    def charset(codes: list[bytes]) -> bytes:
        return b"[" + b"".join(re.escape(c) for c in codes) + b"]"

    branches = [charset(no_arg)]  # the most frequent first: sre tries branches in order
    branches += [charset(codes) + b"." * n for n, codes in sorted(fixed.items())]
    branches += [charset(line) + b"[^\n]*\n", charset(pair) + b"[^\n]*\n[^\n]*\n"]
    strict = re.compile(b"(?:" + b"|".join(branches) + b")*+", re.DOTALL)
    small_memo = [b"r..\x00\x00", b"p[0-9]{1,4}\n"]  # indices below 65,536
    lax = re.compile(b"(?:" + b"|".join(branches[:1] + small_memo + branches[1:]) + b")*+", re.DOTALL)
    return strict, lax, prefixed


_RUN_STRICT, _RUN_LAX, _PREFIXED = _opcode_tables()
_LONG_BINPUT, _PUT, _STOP, _FRAME = b"rp.\x95"
_KNOWN = frozenset(op.code.encode("latin-1")[0] for op in pickletools.opcodes)


@dataclass(frozen=True, slots=True)
class Bounds:
    """Where the walk ended and why, and the largest memo index stored on the way."""

    end: int
    """Just past STOP, or where the unpickler will fail (an unknown opcode, an argument past the data's end)."""
    complete: bool
    """STOP was reached."""
    max_memo: int = -1
    needs: int = 0
    """When not complete: how many bytes the next opcode needs from `start`; more than the data means truncated."""

    @property
    def memo_overflow(self) -> bool:
        """A memo index no honest pickle of this length can hold."""
        return self.max_memo >= self.end


def _put_index(line: bytes) -> int | None:
    # PyLong_FromString reads the line as a C string (up to a NUL), with int()'s grammar; None: the unpickler fails.
    try:
        return int(line.split(b"\x00", 1)[0])
    except ValueError:
        return None


def walk_pickle(data: bytes, start: int = 0) -> Bounds:
    """Follow the pickle starting at `data[start]` up to its STOP or to where the unpickler would stop."""
    size = len(data)
    pos = start
    max_memo = -1
    # Below 64 KB every memo index is checked; above, the indices under 65,536 (1 MB of memo at most) are let through
    # in the run, and the pickle's own length can only be known at its STOP, so a short pickle followed by other
    # data is held to 65,536, not to its length.
    run = (_RUN_LAX if size - start >= _SMALL_MEMO else _RUN_STRICT).match
    while True:
        matched = run(data, pos)  # a `*+` run always matches, if only the empty string
        pos = matched.end() if matched else pos
        if pos >= size:
            return Bounds(pos - start, False, max_memo, pos + 1 - start)
        op = data[pos]
        if op == _STOP:
            return Bounds(pos + 1 - start, True, max_memo)
        if op == _LONG_BINPUT:
            if pos + 5 > size:
                return Bounds(pos - start, False, max_memo, pos + 5 - start)
            max_memo = max(max_memo, int.from_bytes(data[pos + 1 : pos + 5], "little"))
            pos += 5
        elif op == _PUT:
            eol = data.find(b"\n", pos + 1)
            if eol < 0:
                return Bounds(pos - start, False, max_memo, size + 1 - start)
            index = _put_index(data[pos + 1 : eol])
            if index is None or index < 0:
                return Bounds(pos - start, False, max_memo)
            max_memo = max(max_memo, index)
            pos = eol + 1
        elif op in _PREFIXED or op == _FRAME:
            width, signed = _PREFIXED.get(op, (8, False))
            head = pos + 1 + width
            if head > size:
                return Bounds(pos - start, False, max_memo, head - start)
            length = int.from_bytes(data[pos + 1 : head], "little", signed=signed)
            if length < 0:
                return Bounds(pos - start, False, max_memo)
            if head + length > size:
                return Bounds(pos - start, False, max_memo, head + length - start)
            # A frame's length only announces what follows; its opcodes are walked like any others.
            pos = head if op == _FRAME else head + length
        elif op in _KNOWN:  # a fixed-size or line argument cut off by the end of the data
            return Bounds(pos - start, False, max_memo, size + 1 - start)
        else:
            return Bounds(pos - start, False, max_memo)


__all__ = ["Bounds", "walk_pickle"]
