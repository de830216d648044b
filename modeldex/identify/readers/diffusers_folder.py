"""diffusers / transformers folders: `model_index.json` with one subfolder per component, or one component's
`config.json` beside its weights. Each component's weight files are read with the single-file readers.

Weight files, in order of preference: a sharded `*.safetensors.index.json`, plain `*.safetensors`, their
`.fp16`-style variants, then the same for `.bin`. Tensors come back keyed `<component>/<key>` (`unet/conv_in.weight`),
or bare when the folder is a single component.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modeldex.errors import ReadError
from modeldex.identify.records import Header, TensorInfo

MAX_JSON_BYTES = 16 << 20
_CONFIG_NAMES = ("config.json", "scheduler_config.json", "preprocessor_config.json", "tokenizer_config.json")
_WEIGHT_EXTENSIONS = ("safetensors", "bin")


def _load_json(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ReadError(f"{path.name} is too large for a config file")
        return json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ReadError(f"{path.name} is not valid JSON") from exc
    except OSError as exc:
        raise ReadError(f"{path.name} could not be read ({exc.strerror or exc})") from exc


def _plain_name(name: Any) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name


def _shards(index: Path) -> list[Path]:
    parsed = _load_json(index)
    weight_map = parsed.get("weight_map") if isinstance(parsed, dict) else None
    if not isinstance(weight_map, dict) or not all(_plain_name(v) for v in weight_map.values()):
        raise ReadError(f"{index.name} has no usable weight_map")
    shards = [index.parent / name for name in dict.fromkeys(weight_map.values())]
    for shard in shards:
        if not shard.is_file():
            raise ReadError(f"{shard.name}, listed in {index.name}, is missing")
    return shards


def weight_files(folder: Path) -> list[Path]:
    """The weight files that make up the model in `folder` (empty when it holds none)."""
    try:
        files = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError as exc:
        raise ReadError(f"the folder could not be listed ({exc.strerror or exc})") from exc
    for ext in _WEIGHT_EXTENSIONS:
        indexes = [p for p in files if p.name.endswith(f".{ext}.index.json")]
        singles = [p for p in files if p.name.endswith(f".{ext}") and "." not in p.name[: -len(ext) - 1]]
        variant_indexes = [p for p in files if re.fullmatch(rf".+\.{ext}\.index\.[^.]+\.json", p.name)]
        variant_singles = [p for p in files if p.name.endswith(f".{ext}") and p not in singles]
        if indexes:
            return _shards(indexes[0])
        if singles:
            return singles
        if variant_indexes:
            return _shards(variant_indexes[0])
        if variant_singles:
            return variant_singles
    return []


def is_diffusers_folder(folder: Path) -> bool:
    """A folder `identify` treats as one model: `model_index.json`, or `config.json` beside weights."""
    if (folder / "model_index.json").is_file():
        return True
    return (folder / "config.json").is_file() and bool(weight_files(folder))


def _components(folder: Path, model_index: Any) -> list[str]:
    if not isinstance(model_index, dict):
        raise ReadError("model_index.json is not a JSON object")
    names = []
    for key, value in model_index.items():
        if key.startswith("_") or not _plain_name(key) or not isinstance(value, list):
            continue
        if len(value) == 2 and all(v is not None for v in value) and (folder / key).is_dir():
            names.append(key)
    return names


def read_diffusers_folder(folder: Path, read_file: Callable[[Path], Header]) -> Header:
    """Read every component's config and weight headers; `read_file` reads one weight file."""
    model_index = None
    if (folder / "model_index.json").is_file():
        model_index = _load_json(folder / "model_index.json")
        components = _components(folder, model_index)
    elif (folder / "config.json").is_file():
        components = [""]
    else:
        raise ReadError(
            "a folder that is not a diffusers model (no model_index.json, and no config.json beside weights)"
        )

    header = Header(format="diffusers", extra={"model_index": model_index, "configs": {}, "files": {}})
    unsafe: set[str] = set()
    tensors: dict[str, TensorInfo] = {}
    component_metadata: dict[str, dict[str, str]] = {}
    for name in components:
        sub = folder / name if name else folder
        config = next((sub / c for c in _CONFIG_NAMES if (sub / c).is_file()), None)
        if config is not None:
            header.extra["configs"][name] = _load_json(config)
        files = weight_files(sub)
        header.extra["files"][name] = [str(p.relative_to(folder)) for p in files]
        for path in files:
            try:
                part = read_file(path)
            except ReadError as exc:
                raise ReadError(f"{path.relative_to(folder)}: {exc.message}") from exc
            unsafe.update(part.unsafe_globals)
            if part.metadata:
                component_metadata.setdefault(name, {}).update(part.metadata)
            for key, tensor in part.tensors.items():
                tensors[f"{name}/{key}" if name else key] = tensor
    header.tensors = tensors
    header.unsafe_globals = sorted(unsafe)
    if components == [""]:
        header.metadata = component_metadata.get("", {})
    elif component_metadata:
        header.extra["component_metadata"] = component_metadata
    return header
