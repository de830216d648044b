"""CivitAI image `meta` objects, sorted into what an infotext would hold and everything else.

CivitAI's own reader (automatic.metadata.ts) renames a few infotext keys to camelCase (`cfgScale`, `clipSkip`,
`negativePrompt`, ...) and keeps every other key as A1111 wrote it; numbers may arrive as numbers or strings.
Other tools' JSON (Fooocus, some ComfyUI savers) uses snake_case names for the same things.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from modeldex.generator.infotext import is_param_key

# meta spelling -> infotext key
CIVITAI_KEYS = {
    "prompt": "Prompt",
    "negativePrompt": "Negative prompt",
    "steps": "Steps",
    "sampler": "Sampler",
    "cfgScale": "CFG scale",
    "seed": "Seed",
    "clipSkip": "Clip skip",
    "negative_prompt": "Negative prompt",
    "cfg_scale": "CFG scale",
    "guidance_scale": "CFG scale",
    "sampler_name": "Sampler",
}
_IMAGE_SIZE = re.compile(r"^(\d+)x(\d+)$")
_Scalar = str | int | float | bool


def split_civitai_meta(meta: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(infotext-style fields as `parse_a1111` would give them, JSON values `Hashes` and `Civitai resources`,
    everything else). Null values are dropped; where both spellings are present the infotext one wins."""
    a1111: dict[str, Any] = {}
    json_values: dict[str, Any] = {}
    other: dict[str, Any] = {}
    for key, value in meta.items():
        if value is None:
            continue
        key = str(key)
        name = CIVITAI_KEYS.get(key, key)
        if key == "hashes" or name == "Hashes":
            json_values["Hashes"] = value
        elif key in ("civitaiResources", "Civitai resources"):
            json_values["Civitai resources"] = value
        elif name in ("Prompt", "Negative prompt") and isinstance(value, str):
            a1111[name] = value
        elif name[:1].isupper() and is_param_key(name) and isinstance(value, _Scalar):
            a1111.update(_infotext_value(name, value))
        else:
            other[key] = value
    for civitai_key, name in CIVITAI_KEYS.items():
        value = meta.get(name)
        if civitai_key in meta and isinstance(value, _Scalar):
            a1111.update(_infotext_value(name, value))
    if "Size-1" not in a1111:
        width, height = _dimension(other.get("width")), _dimension(other.get("height"))
        if width is not None and height is not None:
            a1111["Size-1"], a1111["Size-2"] = width, height
            del other["width"], other["height"]
    return a1111, json_values, other


def _infotext_value(name: str, value: _Scalar) -> dict[str, str]:
    """The value as an infotext would carry it, `WxH` split the way A1111's parser splits it."""
    text = ("True" if value else "False") if isinstance(value, bool) else str(value)
    size = _IMAGE_SIZE.match(text)
    if size is not None:
        return {f"{name}-1": size.group(1), f"{name}-2": size.group(2)}
    return {name: text}


def _dimension(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value))
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    return None
