"""A1111 prompt syntax: attention weights, prompt editing, extra-network tags and `AND` sub-prompts.

The order A1111 applies them in: extra-network tags are taken out of the prompt first (`extract_extra_networks`),
the rest is split on `AND` (`split_and`), each sub-prompt is scheduled over the steps (`prompt_schedules`) and each
scheduled text is weighted (`parse_prompt_attention`) before it is tokenized.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modeldex.errors import GenerationError
from modeldex.generator.prompt_editing import prompt_schedules

__all__ = [
    "ExtraNetwork",
    "PromptSyntaxError",
    "extract_extra_networks",
    "parse_prompt_attention",
    "prompt_schedules",
    "split_and",
]


class PromptSyntaxError(GenerationError, ValueError):
    """A prompt A1111 itself would refuse (a malformed weight, a LoRA tag without a name)."""

    title = "prompt"


# One token of A1111's attention syntax; group 1 is the number of an explicit `:weight)`.
_ATTENTION_TOKEN = re.compile(
    r"""
      \\[()\[\]\\]              # an escaped bracket or backslash: that character, literally
    | \\                        # any other backslash disappears
    | [(\[]                     # opening brackets
    | :\s*([+-]?[.\d]+)\s*\)    # `:1.3)` closes a round bracket with that weight
    | [)\]]                     # closing brackets
    | [^\\()\[\]:]+             # plain text
    | :                         # a colon that is not a weight
    """,
    re.VERBOSE,
)
_BREAK_WORD = re.compile(r"\bBREAK\b")


@dataclass(slots=True)
class _Piece:
    text: str
    weight: float


_ROUND = 1.1
_SQUARE = 1 / 1.1
BREAK_WEIGHT = -1.0


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """Split a prompt into (text, weight) runs exactly as A1111 does.

    `(x)` multiplies by 1.1, `[x]` divides by 1.1, `(x:1.3)` multiplies by 1.3, nesting multiplies, brackets left
    open close at the end, `\\(` `\\)` `\\[` `\\]` `\\\\` are literal, `BREAK` becomes `("BREAK", -1.0)` and neighbouring
    runs with equal weights are merged. Extra-network tags are not removed here (see `extract_extra_networks`).
    Raises `PromptSyntaxError` where A1111 raises, e.g. for `(photo:1.2.3)`.
    """
    pieces: list[_Piece] = []
    round_open: list[int] = []
    square_open: list[int] = []
    for match in _ATTENTION_TOKEN.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token[0] == "\\":
            pieces.append(_Piece(token[1:], 1.0))
        elif token == "(":
            round_open.append(len(pieces))
        elif token == "[":
            square_open.append(len(pieces))
        elif weight is not None and round_open:
            _scale_from(pieces, round_open.pop(), _weight_value(weight, token))
        elif token == ")" and round_open:
            _scale_from(pieces, round_open.pop(), _ROUND)
        elif token == "]" and square_open:
            _scale_from(pieces, square_open.pop(), _SQUARE)
        else:
            for i, part in enumerate(_split_break(token)):
                if i:
                    pieces.append(_Piece("BREAK", BREAK_WEIGHT))
                pieces.append(_Piece(part, 1.0))
    _scale_unclosed(pieces, round_open, _ROUND)
    _scale_unclosed(pieces, square_open, _SQUARE)
    if not pieces:
        return [("", 1.0)]
    merged: list[tuple[str, float]] = []
    for piece in pieces:
        if merged and merged[-1][1] == piece.weight:
            merged[-1] = (merged[-1][0] + piece.text, merged[-1][1])
        else:
            merged.append((piece.text, piece.weight))
    return merged


def _weight_value(number: str, token: str) -> float:
    try:
        return float(number)
    except ValueError:
        raise PromptSyntaxError(f"attention weight {_short(number)!r} in {_short(token)!r} is not a number") from None


def _scale_from(pieces: list[_Piece], start: int, factor: float) -> None:
    for i in range(start, len(pieces)):
        pieces[i].weight *= factor


def _scale_unclosed(pieces: list[_Piece], starts: list[int], factor: float) -> None:
    """Brackets still open at the end scale everything after them, outermost first, one multiplication each.

    Piece i is multiplied once per open bracket at or before it. Pieces that start from the same weight share
    their chain of products, so this stays linear where scaling every suffix in turn would be quadratic.
    """
    if not starts:
        return
    chains: dict[str, tuple[int, float]] = {}
    opened = 0
    for i, piece in enumerate(pieces):
        while opened < len(starts) and starts[opened] <= i:
            opened += 1
        if not opened:
            continue
        key = piece.weight.hex()  # tells -0.0 from 0.0, unlike the float itself
        done, value = chains.get(key, (0, piece.weight))
        for _ in range(opened - done):
            value *= factor
        chains[key] = (opened, value)
        piece.weight = value


def _split_break(token: str) -> list[str]:
    """`re.split(r"\\s*\\bBREAK\\b\\s*", token)`, in linear time even around long runs of spaces."""
    if "BREAK" not in token:
        return [token]
    parts: list[str] = []
    last = 0
    for match in _BREAK_WORD.finditer(token):
        start, end = match.start(), match.end()
        if start < last:
            continue
        while start > last and token[start - 1].isspace():
            start -= 1
        while end < len(token) and token[end].isspace():
            end += 1
        parts.append(token[last:start])
        last = end
    parts.append(token[last:])
    return parts


@dataclass(frozen=True)
class ExtraNetwork:
    """One `<kind:arg:arg...>` tag, as A1111's extra-network code reads it.

    For `lora` and its alias `lyco`: `<lora:name:te:unet:dyn>` positionally or `te=`, `unet=`, `dyn=` by name; the
    text-encoder weight defaults to 1 and the UNet weight to the text-encoder weight. For `hypernet`: one weight,
    default 1. Other kinds keep their arguments and have no weights.
    """

    kind: str
    name: str
    args: tuple[str, ...]
    te_multiplier: float | None
    unet_multiplier: float | None
    dyn_dim: int | None
    tag: str

    @property
    def weight(self) -> float | None:
        """The single weight most tags carry (the text-encoder weight for LoRA)."""
        return self.te_multiplier


_EXTRA_NETWORK_TAG = re.compile(r"<(\w+):([^>]+)>")
LORA_KINDS = frozenset({"lora", "lyco"})


def extract_extra_networks(text: str) -> tuple[str, list[ExtraNetwork]]:
    """Remove every `<kind:args>` tag from a prompt as A1111 does; returns the rest and the tags in order.

    Raises `PromptSyntaxError` for a LoRA or hypernetwork tag whose weights A1111 could not read.
    """
    last_close = text.rfind(">")
    if last_close == -1:
        return text, []
    # Every `<` before the last `>` is scanned once; text after it cannot hold a tag (and would be rescanned).
    head, tail = text[: last_close + 1], text[last_close + 1 :]
    found: list[ExtraNetwork] = []

    def take(match: re.Match[str]) -> str:
        found.append(_extra_network(match.group(1), match.group(2), match.group(0)))
        return ""

    return _EXTRA_NETWORK_TAG.sub(take, head) + tail, found


def _extra_network(kind: str, arg_text: str, tag: str) -> ExtraNetwork:
    args = tuple(arg_text.split(":"))
    positional: list[str] = []
    named: dict[str, str] = {}
    for arg in args:
        parts = arg.split("=", 2)
        if len(parts) == 2:
            named[parts[0]] = parts[1]
        else:
            positional.append(arg)
    te: float | None = None
    unet: float | None = None
    dyn: int | None = None
    if kind in LORA_KINDS:
        if not positional:
            raise PromptSyntaxError(f"{_short(tag)} names no network")
        te = _tag_number(positional[1], tag) if len(positional) > 1 else 1.0
        te = _tag_number(named["te"], tag) if "te" in named else te
        unet = _tag_number(positional[2], tag) if len(positional) > 2 else te
        unet = _tag_number(named["unet"], tag) if "unet" in named else unet
        dyn = _tag_int(positional[3], tag) if len(positional) > 3 else None
        dyn = _tag_int(named["dyn"], tag) if "dyn" in named else dyn
        name = positional[0]
    elif kind == "hypernet":
        te = unet = _tag_number(args[1], tag) if len(args) > 1 else 1.0
        name = args[0]
    else:
        name = positional[0] if positional else args[0]
    return ExtraNetwork(kind, name, args, te, unet, dyn, tag)


def _tag_number(value: str, tag: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise PromptSyntaxError(f"{_short(tag)}: weight {_short(value)!r} is not a number") from None


def _tag_int(value: str, tag: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise PromptSyntaxError(f"{_short(tag)}: dimension {_short(value)!r} is not an integer") from None


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_AND = re.compile(r"\bAND\b")
_WEIGHT_SUFFIX = re.compile(r"\s*([-+]?(?:\d+\.?|\d*\.\d+))")


def split_and(text: str) -> list[tuple[str, float]]:
    """A1111's composable prompts: split on the word `AND`, each part with its `:weight` suffix (default 1).

    Text keeps its leading spaces and loses its trailing ones, as in A1111 (`"a AND b:0.5"` ->
    `[("a", 1.0), (" b", 0.5)]`).
    """
    return [_subprompt_weight(part) for part in _AND.split(text)]


def _subprompt_weight(part: str) -> tuple[str, float]:
    stripped = part.rstrip()
    colon = stripped.rfind(":")
    if colon != -1:
        m = _WEIGHT_SUFFIX.fullmatch(stripped, colon + 1)
        if m is not None:
            return stripped[:colon].rstrip(), float(m.group(1))
    return stripped, 1.0
