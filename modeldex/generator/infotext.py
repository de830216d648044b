"""A1111 infotext: the text under an A1111 image ("parameters"), read and written the way A1111 does.

```
a photo of a cat, (detailed:1.2)
Negative prompt: blurry
Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 512x768, Model: foo
```

`parse_a1111` returns the mapping A1111's `parse_generation_parameters` (1.10) returns: string values as written,
`Size`-like `WxH` values split into `<key>-1`/`<key>-2`, and the defaults A1111 adds for missing keys (with a user's
settings at their defaults: no styles, no skipped fields, automatic back-compatibility on).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from modeldex.generator.prompt import PromptSyntaxError, parse_prompt_attention

NEGATIVE_PREFIX = "Negative prompt:"

# `key: value` where a key is a word character then word characters, spaces, `-` or `/` (two characters at least).
_KEY_AT = re.compile(r"\s*+(\w[\w \-/]++):")
# After a failed key: the stretch of key characters every later start inside it would fail on too.
_KEY_STRETCH = re.compile(r"\s*+[\w \-/]*+")
# A value: a JSON-style double-quoted string, or anything up to the next comma; then a comma or the end.
_VALUE_AT = re.compile(r'\s*+("(?:\\.|[^\\"])++"(?=,|$)|[^,]*+)(?:,|$)')
_WORD = re.compile(r"\w")
_IMAGE_SIZE = re.compile(r"^(\d+)x(\d+)$")

# Added by A1111 when the key is missing (modules/infotext_utils.py, parse_generation_parameters).
_DEFAULTS_BEFORE_HIRES_FIX: tuple[tuple[str, Any], ...] = (
    ("Hires sampler", "Use same sampler"),
    ("Hires schedule type", "Use same scheduler"),
    ("Hires checkpoint", "Use same checkpoint"),
    ("Hires prompt", ""),
    ("Hires negative prompt", ""),
    ("Mask mode", "Inpaint masked"),
    ("Masked content", "original"),
    ("Inpaint area", "Whole picture"),
    ("Masked area padding", 32),
)
_DEFAULTS_AFTER_HIRES_FIX: tuple[tuple[str, Any], ...] = (
    ("RNG", "GPU"),
    ("Schedule type", "Automatic"),
    ("Schedule max sigma", 0),
    ("Schedule min sigma", 0),
    ("Schedule rho", 0),
    ("VAE Encoder", "Full"),
    ("VAE Decoder", "Full"),
    ("FP8 weight", "Disable"),
)
# Every key parse_a1111 may add on its own, with the value it adds.
INJECTED_DEFAULTS: dict[str, Any] = {
    "Clip skip": "1",
    "Hires resize-1": 0,
    "Hires resize-2": 0,
    **dict(_DEFAULTS_BEFORE_HIRES_FIX),
    **dict(_DEFAULTS_AFTER_HIRES_FIX),
    "Cache FP16 weight for LoRA": False,
    "Emphasis": "Original",
    "Refiner switch by sampling steps": False,
}


def parse_a1111(text: str) -> dict[str, Any]:
    """Parse an infotext exactly as A1111's `parse_generation_parameters` does.

    The last line holds the parameters only if it has at least 3 `key: value` pairs; otherwise it belongs to the
    prompt. Lines from `Negative prompt:` on are the negative prompt. Never raises.
    """
    *lines, last_line = text.strip().split("\n")
    pairs = param_pairs(last_line)
    if len(pairs) < 3:
        return _fields(lines + [last_line], [])
    return _fields(lines, pairs)


def parse_a1111_with_json(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """`parse_a1111`, except that JSON values CivitAI writes (`Hashes: {...}`, `Civitai resources: [...]`,
    `Civitai metadata: {...}`) are taken out of the parameter line whole first, as CivitAI's own reader does
    (A1111 cuts them at their first comma). Returns the fields and the decoded JSON values."""
    *lines, last_line = text.strip().split("\n")
    if len(param_pairs(last_line)) < 3:
        return _fields(lines + [last_line], []), {}
    rest, values = extract_json_values(last_line)
    return _fields(lines, param_pairs(rest)), values


_JSON_VALUE_KEY = re.compile(r"(?:^|,)\s*(Hashes|Civitai resources|Civitai metadata):\s*(?=[\[{])")
_JSON = json.JSONDecoder()


def extract_json_values(line: str) -> tuple[str, dict[str, Any]]:
    """Take `Hashes: {...}`-style JSON values out of a parameter line: (the rest of the line, key -> value)."""
    values: dict[str, Any] = {}
    kept: list[str] = []
    pos = 0
    while (m := _JSON_VALUE_KEY.search(line, pos)) is not None:
        try:
            value, end = _JSON.raw_decode(line, m.end())
        except (ValueError, RecursionError):
            end = -1
        after = end
        while 0 <= after < len(line) and line[after].isspace():
            after += 1
        if end < 0 or (after < len(line) and line[after] != ","):
            kept.append(line[pos : m.end()])
            pos = m.end()
            continue
        values[m.group(1)] = value
        kept.append(line[pos : m.start()])
        pos = end
    kept.append(line[pos:])
    return "".join(kept), values


def _fields(lines: list[str], pairs: list[tuple[str, str]]) -> dict[str, Any]:
    prompt, negative = split_prompt_lines(lines)
    res: dict[str, Any] = {}
    for key, value in pairs:
        if not value:
            continue  # A1111 fails on an empty value (value[0]) and skips the pair
        if value[0] == '"' and value[-1] == '"':
            value = unquote(value)
        size = _IMAGE_SIZE.match(value)
        if size is not None:
            res[f"{key}-1"] = size.group(1)
            res[f"{key}-2"] = size.group(2)
        else:
            res[key] = value
    res["Prompt"] = prompt
    res["Negative prompt"] = negative
    _add_defaults(res, prompt, negative)
    return res


def split_prompt_lines(lines: list[str]) -> tuple[str, str]:
    """Prompt lines, then from the line starting `Negative prompt:` on, negative prompt lines; each line stripped."""
    prompt: list[str] = []
    negative: list[str] = []
    in_negative = False
    for line in lines:
        line = line.strip()
        if line.startswith(NEGATIVE_PREFIX):
            in_negative = True
            line = line[len(NEGATIVE_PREFIX) :].strip()
        (negative if in_negative else prompt).append(line)
    return _join_lines(prompt), _join_lines(negative)


def _join_lines(lines: list[str]) -> str:
    # A1111 adds "\n" only once the text so far is non-empty: leading empty lines vanish, later ones stay.
    out = ""
    for line in lines:
        out += ("" if out == "" else "\n") + line
    return out


def _add_defaults(res: dict[str, Any], prompt: str, negative: str) -> None:
    res.setdefault("Clip skip", "1")
    hypernet = res.get("Hypernet")
    if hypernet is not None:
        res["Prompt"] += f"<hypernet:{hypernet}:{res.get('Hypernet strength', '1.0')}>"
    if "Hires resize-1" not in res:
        res["Hires resize-1"] = 0
        res["Hires resize-2"] = 0
    for key, value in _DEFAULTS_BEFORE_HIRES_FIX:
        res.setdefault(key, value)
    _restore_old_hires_fix(res)
    for key, value in _DEFAULTS_AFTER_HIRES_FIX:
        res.setdefault(key, value)
    if "Cache FP16 weight for LoRA" not in res and res["FP8 weight"] != "Disable":
        res["Cache FP16 weight for LoRA"] = False
    if "Emphasis" not in res and _uses_emphasis(prompt, negative):
        res["Emphasis"] = "Original"
    res.setdefault("Refiner switch by sampling steps", False)
    _backcompat(res)


def _restore_old_hires_fix(res: dict[str, Any]) -> None:
    """Infotexts from before A1111 1.0's hires fix rewrite give `First pass size`; turn it into Size + Hires resize."""
    first_w, first_h = res.get("First pass size-1"), res.get("First pass size-2")
    if first_w is None or first_h is None:
        return
    try:
        first_w, first_h = int(first_w), int(first_h)
        width, height = int(res.get("Size-1", 512)), int(res.get("Size-2", 512))
    except ValueError:
        return  # A1111 would crash here; the keys are left as they are
    if first_w == 0 or first_h == 0:
        if width <= 0 or height <= 0:
            return
        first_w, first_h = _old_first_pass_size(width, height)
    res["Size-1"] = first_w
    res["Size-2"] = first_h
    res["Hires resize-1"] = width
    res["Hires resize-2"] = height


def _old_first_pass_size(width: int, height: int) -> tuple[int, int]:
    """A1111's old automatic first pass: about 512x512 pixels, same aspect, sides rounded up to multiples of 64."""
    scale = math.sqrt(512 * 512 / (width * height))
    return math.ceil(scale * width / 64) * 64, math.ceil(scale * height / 64) * 64


def _uses_emphasis(prompt: str, negative: str) -> bool:
    if "(" not in prompt + negative and "[" not in prompt + negative:
        return False  # no bracket, no weight other than 1
    try:
        runs = parse_prompt_attention(prompt) + parse_prompt_attention(negative)
    except PromptSyntaxError:
        return True  # A1111 raises here; a malformed weight is still an attempt at emphasis
    return any(weight != 1.0 and text != "BREAK" for text, weight in runs)


def _backcompat(res: dict[str, Any]) -> None:
    """A1111's `infotext_versions.backcompat`: switches that old versions implied, keyed on `Version`."""
    res.update(implied_by_version(res.get("Version"), res.get("Prompt", ""), res.get("Sampler"), res.get("Refiner")))


def implied_by_version(version: object, prompt: str, sampler: object, refiner: object) -> dict[str, bool]:
    """The switches an infotext's `Version` turns on in A1111 (set whatever the infotext says about them)."""
    key = a1111_version_key(version)
    if key is None:
        return {}
    out: dict[str, bool] = {}
    if key < _V1_6_0 and "[" in prompt:
        out["Old prompt editing timelines"] = True
    if key < _V1_6_0 and sampler in ("DDIM", "PLMS"):
        out["Pad conds v0"] = True
    if key < _V1_7_0_225:
        out["Downcast alphas_cumprod"] = True
    if key < _V1_8_0 and refiner:
        out["Refiner switch by sampling steps"] = True
    return out


def param_pairs(line: str) -> list[tuple[str, str]]:
    """Every `key: value` pair of a parameter line, raw (quoted values still quoted).

    The same pairs as `re.findall` with A1111's pattern, in linear time: that pattern retries every start position
    inside a long run of key characters and goes quadratic on hostile text.
    """
    pairs: list[tuple[str, str]] = []
    pos, n = 0, len(line)
    while pos < n:
        key = _KEY_AT.match(line, pos)
        if key is None:
            pos = _next_key_start(line, pos)
            continue
        value = _VALUE_AT.match(line, key.end())
        assert value is not None  # the unquoted branch matches anything up to a comma or the end
        pairs.append((key.group(1), value.group(1)))
        pos = value.end()
    return pairs


def _next_key_start(line: str, pos: int) -> int:
    """Where a key can next start after one failed at pos.

    A key is a run of key characters right before a colon. Starting anywhere in the same run ends at the same
    character, so if that is not a colon the whole run is skipped.
    """
    stretch = _KEY_STRETCH.match(line, pos)
    assert stretch is not None
    end = stretch.end()
    if end == pos:
        return pos + 1
    if end < len(line) and line[end] == ":":
        # The run ends in a colon but did not start with a word character (or was one character long): a key
        # may still start at a later word character inside it.
        word = _WORD.search(line, pos + 1, end)
        return word.start() if word is not None else end
    return end


def unquote(value: str) -> str:
    """A1111's unquote: a value in double quotes is a JSON string; anything else (or bad JSON) stays as it is."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, str) else value


def quote(value: object) -> str:
    """A value as A1111 writes it: JSON-quoted when it holds `,` `:` or a newline.

    Also quoted, so that A1111 reads back exactly what was written: empty values, values with leading or
    trailing spaces, and values holding a double quote or a carriage return.
    """
    text = str(value)
    if text == "" or text != text.strip() or any(c in text for c in ',:\n"\r'):
        return json.dumps(text, ensure_ascii=False)
    return text


def is_param_key(key: str) -> bool:
    """Whether A1111's parser can read this key back (`\\w[\\w \\-/]+`)."""
    return _KEY_AT.fullmatch(key + ":") is not None and not key[0].isspace()


def format_a1111(prompt: str, negative_prompt: str, params: Mapping[str, object], raw: Iterable[str] = ()) -> str:
    """An infotext from a prompt, a negative prompt and ordered parameters (None values are left out); `raw`
    items are appended to the parameter line as they are (e.g. `Hashes: {...}`).

    Raises ValueError for a key A1111 could not read back.
    """
    for key in params:
        if not is_param_key(key):
            raise ValueError(f"{key!r} cannot be an infotext key (letters, digits, spaces, - and / only)")
    negative = f"\n{NEGATIVE_PREFIX} {negative_prompt}" if negative_prompt else ""
    items = [f"{key}: {quote(value)}" for key, value in params.items() if value is not None]
    line = ", ".join(items + list(raw))
    return f"{prompt}{negative}\n{line}".strip()


VersionKey = tuple[Any, ...]


def a1111_version_key(text: object) -> VersionKey | None:
    """A comparable key for an infotext `Version` as A1111 reads it, or None when A1111 could not read it.

    A1111 keeps the first two dash-separated parts (`v1.7.0-225-gabcdef` -> `v1.7.0-225`) and parses them as a
    PEP 440 version (`v1.7.0-225` is 1.7.0.post225, `1.8.0-RC` is 1.8.0rc0). Forge's `f2.0.1v1.10.1-...` is
    not a version to A1111, so it gets no back-compatibility switches.
    """
    if not isinstance(text, str):
        return None
    m = _FIRST_TWO_PARTS.match(text)
    if m is not None:
        text = m.group(1)
    return _pep440_key(text)


_FIRST_TWO_PARTS = re.compile(r"([^-]+-[^-]+)-.*")
_PEP440 = re.compile(
    r"""
    \s*v?
    (?:(?P<epoch>[0-9]+)!)?
    (?P<release>[0-9]+(?:\.[0-9]+)*)
    (?:[-_.]?(?P<pre_l>alpha|beta|preview|pre|a|b|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?
    (?:-(?P<post_n1>[0-9]+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?)?
    (?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
    \s*
    """,
    re.VERBOSE | re.IGNORECASE,
)
_PRE_RANK = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}
# Each optional part sorts below (0,), as given (1, ...), or above (2,) everything given.
_BELOW = (0,)
_ABOVE = (2,)


def _pep440_key(text: str) -> VersionKey | None:
    m = _PEP440.fullmatch(text)
    if m is None:
        return None
    release = [int(part) for part in m.group("release").split(".")]
    while release and release[-1] == 0:
        release.pop()
    has_post = m.group("post_n1") is not None or m.group("post_l") is not None
    if m.group("pre_l") is not None:
        pre: tuple[int, ...] = (1, _PRE_RANK[m.group("pre_l").lower()], int(m.group("pre_n") or 0))
    elif m.group("dev_l") is not None and not has_post:
        pre = _BELOW  # 1.0.dev1 sorts before 1.0a1
    else:
        pre = _ABOVE
    post = (1, int(m.group("post_n1") or m.group("post_n2") or 0)) if has_post else _BELOW
    dev = (1, int(m.group("dev_n") or 0)) if m.group("dev_l") is not None else _ABOVE
    local: tuple[tuple[int, int, str], ...] = ()
    if m.group("local"):
        local = tuple(
            (1, int(part), "") if part.isdigit() else (0, 0, part.lower())
            for part in re.split(r"[-_.]", m.group("local"))
        )
    return (int(m.group("epoch") or 0), tuple(release), pre, post, dev, local)


def _constant(text: str) -> VersionKey:
    key = _pep440_key(text)
    assert key is not None
    return key


_V1_6_0 = _constant("1.6.0")
_V1_7_0_225 = _constant("v1.7.0-225")
_V1_8_0 = _constant("1.8.0")
