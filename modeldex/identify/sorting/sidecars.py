"""Sidecar files: the previews and metadata that A1111 extensions, CivitAI helpers and ComfyUI Manager keep next to a
model under the same stem (`NAME.preview.png`, `NAME.civitai.info`...). They move, and are renamed, with their model.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SIDECAR_SUFFIXES = (
    ".preview.png",
    ".preview.jpg",
    ".preview.jpeg",
    ".preview.webp",
    ".civitai.info",
    ".cm-info.json",
    ".metadata.json",
    ".json",
    ".yaml",
)
"""Longest first where one ends another (`.cm-info.json` before `.json`), so a name matches its most specific suffix."""


def model_stem(path: Path) -> str:
    """The name without its last extension: what A1111 calls the model and what its sidecars start with."""
    return path.stem if path.suffix else path.name


def sidecar_suffix(name: str, stem: str) -> str | None:
    """The sidecar suffix that turns `stem` into `name`, or None when `name` is not a sidecar of `stem`."""
    if not name.startswith(stem):
        return None
    rest = name[len(stem) :]
    return rest if rest in SIDECAR_SUFFIXES else None


def sidecar_name(stem: str, suffix: str) -> str:
    """The sidecar file name for a model stem (used when the model is renamed)."""
    return stem + suffix


def attach_sidecars(models: Iterable[Path], others: Iterable[Path]) -> dict[Path, list[Path]]:
    """For each model, the files among `others` in the same folder that are its sidecars, in name order.

    A file is claimed by at most one model: the one whose stem it extends with a sidecar suffix.
    """
    by_folder_stem: dict[tuple[Path, str], Path] = {}
    found: dict[Path, list[Path]] = {}
    for model in models:
        by_folder_stem[(model.parent, model_stem(model))] = model
        found[model] = []
    for other in sorted(others):
        for suffix in SIDECAR_SUFFIXES:
            if other.name.endswith(suffix):
                owner = by_folder_stem.get((other.parent, other.name[: -len(suffix)]))
                if owner is not None and owner != other:
                    found[owner].append(other)
                    break
    return found


def looks_like_sidecar(path: Path) -> bool:
    """Whether the name ends with a sidecar suffix (a lone preview or info file is still not a model)."""
    return any(path.name.endswith(suffix) for suffix in SIDECAR_SUFFIXES)
