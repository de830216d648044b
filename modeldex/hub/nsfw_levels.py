"""CivitAI's NSFW levels: bit flags on models, versions and images, and the legacy strings `/images` still speaks.

A model's or version's `nsfwLevel` is the OR of the levels of its content; an image has exactly one level.
Images embedded in model and version responses carry the number; `/api/v1/images` sends the legacy string in
`nsfwLevel` and the number in `browsingLevel`.
"""

from __future__ import annotations

PG = 1
PG13 = 2
R = 4
X = 8
XXX = 16
BLOCKED = 32

PUBLIC = PG
"""What anonymous callers see by default."""
SFW = PG | PG13
NSFW = R | X | XXX
ALL = PG | PG13 | R | X | XXX

# Legacy `nsfw=` values of /images, as browsing-level masks (what each string lets through).
LEGACY_FILTERS: dict[str, int] = {"None": PG, "Soft": PG | PG13, "Mature": PG | PG13 | R, "X": ALL, "Blocked": BLOCKED}

# One image's level -> the legacy string /images writes for it.
_LEGACY_NAMES: dict[int, str] = {PG: "None", PG13: "Soft", R: "Mature", X: "X", XXX: "X", BLOCKED: "Blocked"}

# The legacy string of one image -> its level (the lowest level the string stands for).
_FROM_LEGACY: dict[str, int] = {"none": PG, "soft": PG13, "mature": R, "x": X, "blocked": BLOCKED}


def legacy_name(level: int | None) -> str:
    """The legacy string (`None`, `Soft`, `Mature`, `X`, `Blocked`) for one image's level."""
    return _LEGACY_NAMES.get(level or PG, "None")


def image_level(value: object) -> int | None:
    """One image's level from what CivitAI sent: a number, a legacy string, or a boolean from before 2024."""
    if isinstance(value, bool):
        return R if value else PG
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return _FROM_LEGACY.get(value.strip().lower())
    return None


def is_nsfw(level: int | None) -> bool:
    """True when an image's level is R or above (the boolean `nsfw` of /images)."""
    return bool((level or 0) & (NSFW | BLOCKED))
