"""A1111 prompt editing: `[from:to:when]`, `[to:when]`, `[from::when]` and alternation `[a|b]`.

A1111 parses prompts with an ambiguous grammar (lark, Earley) and conditions each range of steps with the text the
prompt reads at that step. This module rebuilds that behaviour without lark:

* Inside brackets the syntax is strict: `(p)`, `(p:q)`, `[p]`, `[p:q:N]`, `[q:N]`, `[p|q|...]`; plain text is any
  character but `\\ [ ] ( ) : |`, or a backslash followed by any character but a newline.
* At the top level any `[ ] ( ) :` may also stand alone as literal text (an unbalanced bracket is just text), but a
  top-level `|` or a dangling backslash makes the prompt unparseable: A1111 then uses it unchanged for every step.
* Where a bracket could either open a construct or stay literal, the choice is made from the right end of the
  prompt: a closing bracket closes a construct whenever the text before it can still be read. A1111's parser
  prefers a construct too, except right before a run of literal brackets and colons, where its choice is a tie
  it settles differently from one process to the next (the order depends on Python's string hash seed:
  `[[a:2]:3` is scheduled in about half the runs). Checked against A1111's parser on thousands of random
  bracket-heavy prompts: the answer here is always one of A1111's.

`when` is a step number, or a fraction of the steps when it is written with a decimal point (A1111 1.6+); with
`old_timelines` (A1111 before 1.6) any value below 1 is a fraction.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_STRAY = frozenset("[]():")
# Characters that end a run of plain text inside brackets.
_SPECIAL = frozenset("\\[]():|")
# lark's SIGNED_NUMBER: ASCII digits, optional sign, decimal point and exponent.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Rendering recurses once per nesting level; deeper prompts are treated as unparseable (A1111 itself overflows).
MAX_NESTING = 100


@dataclass(slots=True)
class _Emphasis:
    """`(p)`, `(p:q)` or `[p]`: kept verbatim, brackets included (only its contents may change with the step)."""

    open: str
    first: list[_Node]
    second: list[_Node] | None
    close: str


@dataclass(slots=True)
class _Scheduled:
    """`[before:after:when]`; `before` is None for `[after:when]`."""

    before: list[_Node] | None
    after: list[_Node]
    number: str
    when: int = 0


@dataclass(slots=True)
class _Alternate:
    """`[a|b|...]`: option (step - 1) % n at each step."""

    options: list[list[_Node]]


_Node = str | _Emphasis | _Scheduled | _Alternate


class _Unparseable(Exception):
    """The prompt is outside A1111's grammar: it is used as it is for every step."""


def prompt_schedules(
    text: str, steps: int, *, hires_steps: int | None = None, old_timelines: bool = False
) -> list[tuple[int, str]]:
    """The prompt as A1111 conditions it: `[(last_step, text), ...]`, last_step ascending, the last one == steps.

    `hires_steps` schedules the hires-fix pass the way A1111 does (integers count from the end of the first pass,
    fractions from 1.0); `old_timelines` is A1111's "Old prompt editing timelines" (infotext versions before 1.6).
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    if hires_steps is None or old_timelines:
        total, int_offset, frac_offset = steps, 0, 0.0
    else:
        if hires_steps < 1:
            raise ValueError(f"hires_steps must be at least 1, not {hires_steps}")
        total, int_offset, frac_offset = hires_steps, steps, 1.0
    try:
        nodes = _parse(text)
        boundaries = {total}
        _collect_steps(nodes, total, int_offset, frac_offset, old_timelines, boundaries, 0)
        return [(step, "".join(_render(nodes, step))) for step in sorted(boundaries)]
    except _Unparseable:
        return [(total, text)]


def _when(number: str, total: int, int_offset: int, frac_offset: float, old_timelines: bool) -> int:
    value = float(number)
    if old_timelines:
        value = value * total if value < 1 else value
    elif "." in number:
        value = (value - frac_offset) * total
    else:
        value = value - int_offset
    # A1111 crashes on an infinite `when` (int(inf)); the nearest finite reading is used instead.
    if math.isinf(value):
        return total if value > 0 else -1
    return min(total, int(value))


def _collect_steps(
    nodes: list[_Node],
    total: int,
    int_offset: int,
    frac_offset: float,
    old_timelines: bool,
    out: set[int],
    depth: int,
) -> None:
    """Every step at which some part of the prompt changes, found in every branch (taken or not), as A1111 does."""
    if depth > MAX_NESTING:
        raise _Unparseable
    for node in nodes:
        if isinstance(node, str):
            continue
        if isinstance(node, _Emphasis):
            children = [node.first] + ([node.second] if node.second is not None else [])
        elif isinstance(node, _Scheduled):
            node.when = _when(node.number, total, int_offset, frac_offset, old_timelines)
            if node.when >= 1:
                out.add(node.when)
            children = ([node.before] if node.before is not None else []) + [node.after]
        else:
            out.update(range(1, total + 1))
            children = node.options
        for child in children:
            _collect_steps(child, total, int_offset, frac_offset, old_timelines, out, depth + 1)


def _render(nodes: list[_Node], step: int) -> list[str]:
    out: list[str] = []
    stack: list[list[_Node] | str] = [nodes]
    # An explicit stack: nesting depth is bounded, but rendering runs once per schedule entry.
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        for node in reversed(item):
            if isinstance(node, str):
                stack.append(node)
            elif isinstance(node, _Emphasis):
                stack.append(node.close)
                if node.second is not None:
                    stack.append(node.second)
                    stack.append(":")
                stack.append(node.first)
                stack.append(node.open)
            elif isinstance(node, _Scheduled):
                if step <= node.when:
                    if node.before is not None:
                        stack.append(node.before)
                else:
                    stack.append(node.after)
            else:
                stack.append(node.options[(step - 1) % len(node.options)])
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.escaped = self._escape_pairs()
        # start index of an unescaped `[`/`(` -> (node, end) when a construct opens there, else None
        self.groups: dict[int, tuple[_Node, int] | None] = {}
        starts = [i for i, c in enumerate(text) if c in "[(" and i - 1 not in self.escaped]
        # Right to left, so every nested construct is known before the one around it: no recursion.
        for start in reversed(starts):
            self.groups[start] = self._group(start)
        self.group_ending_at = {end: start for start, found in self.groups.items() if found for end in [found[1]]}

    def _escape_pairs(self) -> set[int]:
        """Start indices of `\\x` pairs; a backslash before a newline or at the end makes the prompt unparseable."""
        pairs: set[int] = set()
        i = self.text.find("\\")
        while i != -1:
            if i + 1 >= self.n or self.text[i + 1] == "\n":
                raise _Unparseable
            pairs.add(i)
            i = self.text.find("\\", i + 2)
        return pairs

    def _prompt(self, pos: int) -> tuple[list[_Node], int] | None:
        """Plain text and constructs up to the next `] ) : |` at this level (or the end)."""
        text, n = self.text, self.n
        nodes: list[_Node] = []
        run = pos
        while pos < n:
            c = text[pos]
            if c == "\\":
                pos += 2
            elif c in "[(":
                found = self.groups[pos]
                if found is None:
                    return None
                if run < pos:
                    nodes.append(text[run:pos])
                nodes.append(found[0])
                pos = run = found[1]
            elif c in _SPECIAL:
                break
            else:
                pos += 1
        if run < pos:
            nodes.append(text[run:pos])
        return nodes, pos

    def _skip_space(self, pos: int) -> int:
        while pos < self.n and self.text[pos].isspace():
            pos += 1
        return pos

    def _number_then_close(self, pos: int) -> tuple[str, int] | None:
        """`[WS] NUMBER [WS] ]` from pos: the number and the index after `]`."""
        text = self.text
        m = _NUMBER.match(text, self._skip_space(pos))
        if m is None:
            return None
        end = self._skip_space(m.end())
        if end < self.n and text[end] == "]":
            return m.group(0), end + 1
        return None

    def _group(self, start: int) -> tuple[_Node, int] | None:
        text, n = self.text, self.n
        first = self._prompt(start + 1)
        if first is None or first[1] >= n:
            return None
        first_nodes, pos = first
        sep = text[pos]
        if text[start] == "(":
            if sep == ")":
                return _Emphasis("(", first_nodes, None, ")"), pos + 1
            if sep != ":":
                return None
            second = self._prompt(pos + 1)
            if second is None or second[1] >= n or text[second[1]] != ")":
                return None
            return _Emphasis("(", first_nodes, second[0], ")"), second[1] + 1
        if sep == "]":
            return _Emphasis("[", first_nodes, None, "]"), pos + 1
        if sep == "|":
            options = [first_nodes]
            while pos < n and text[pos] == "|":
                option = self._prompt(pos + 1)
                if option is None:
                    return None
                options.append(option[0])
                pos = option[1]
            if pos < n and text[pos] == "]":
                return _Alternate(options), pos + 1
            return None
        if sep != ":":
            return None
        closing = self._number_then_close(pos + 1)
        if closing is not None:
            return _Scheduled(None, first_nodes, closing[0]), closing[1]
        second = self._prompt(pos + 1)
        if second is None or second[1] >= n or text[second[1]] != ":":
            return None
        closing = self._number_then_close(second[1] + 1)
        if closing is None:
            return None
        return _Scheduled(first_nodes, second[0], closing[0]), closing[1]

    def top_level(self) -> list[_Node]:
        n = self.n
        ok = self._parseable_prefixes()
        if not ok[n]:
            raise _Unparseable
        reversed_nodes: list[_Node] = []
        end = n
        while end > 0:
            i = end - 1
            if i - 1 in self.escaped:
                reversed_nodes.append(self.text[i - 1 : end])
                end = i - 1
                continue
            c = self.text[i]
            if c not in _STRAY:
                reversed_nodes.append(c)
                end = i
                continue
            start = self.group_ending_at.get(end)
            found = self.groups[start] if start is not None and ok[start] else None
            if start is not None and found is not None:
                reversed_nodes.append(found[0])
                end = start
            else:
                reversed_nodes.append(c)
                end = i
        reversed_nodes.reverse()
        return _merge_text(reversed_nodes)

    def _parseable_prefixes(self) -> list[bool]:
        """ok[j]: text[:j] can be read as top-level text (constructs, literal brackets, plain characters)."""
        n = self.n
        ok = [False] * (n + 1)
        ok[0] = True
        for j in range(1, n + 1):
            i = j - 1
            if i in self.escaped:
                continue  # a backslash is always followed by its partner
            if i - 1 in self.escaped:
                ok[j] = ok[i - 1]
            elif self.text[i] != "|":
                ok[j] = ok[i]
            start = self.group_ending_at.get(j)
            if start is not None and ok[start]:
                ok[j] = True
        return ok


def _merge_text(nodes: list[_Node]) -> list[_Node]:
    merged: list[_Node] = []
    for node in nodes:
        if isinstance(node, str) and merged and isinstance(merged[-1], str):
            merged[-1] += node
        else:
            merged.append(node)
    return merged


def _parse(text: str) -> list[_Node]:
    return _Parser(text).top_level()
