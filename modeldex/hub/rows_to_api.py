"""Index rows rendered as CivitAI API v1 JSON: what `modeldex serve` answers and `.civitai.info` sidecars hold.

Each object starts from the row's `raw` (so fields modeldex does not model survive the round trip), then the
columns are laid over it (they are the truth, and rows made without `raw` still render), then nested lists are
rebuilt from their rows in the order `raw` remembers (see modeldex/hub/store.py).

`origin` (e.g. `http://127.0.0.1:8765`) rewrites every `downloadUrl` to that server's `/api/download/models/...`,
keeping the query (`type`, `format`, `size`, `fp`) that picks the file; without it the stored URLs are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from modeldex.db.models import FileHash, Image, Model, ModelVersion, VersionFile
from modeldex.hub.nsfw_levels import is_nsfw, legacy_name

PUBLISHED = "Published"
ARCHIVED = "Archived"
TAKEN_DOWN = "TakenDown"

# AIR type names (urn:air:{ecosystem}:{type}:civitai:{model}@{version}); CivitAI writes `unknown` for the rest.
_AIR_TYPES = {
    "AestheticGradient": "ag",
    "Checkpoint": "checkpoint",
    "Hypernetwork": "hypernet",
    "TextualInversion": "embedding",
    "MotionModule": "motion",
    "Upscaler": "upscaler",
    "VAE": "vae",
    "LORA": "lora",
    "DoRA": "dora",
    "LoCon": "lycoris",
    "Controlnet": "controlnet",
}

# AIR ecosystems of the common base model families, by prefix of CivitAI's `baseModel` (longest prefix wins).
# Families not listed fall back to the base model name, lower-cased without spaces: a guess, as CivitAI's own
# table lives in its base-model constants and changes with each new family.
_AIR_ECOSYSTEMS = {
    "SD 1": "sd1",
    "SD 2": "sd2",
    "SD 3": "sd3",
    "SDXL": "sdxl",
    "Pony": "sdxl",
    "Illustrious": "sdxl",
    "NoobAI": "sdxl",
    "Flux.1": "flux1",
    "Flux.2": "flux2",
    "Other": "other",
}

Row = TypeVar("Row", Image, ModelVersion, VersionFile)


def model_to_api(model: Model, *, origin: str | None = None, image_levels: int | None = None) -> dict[str, Any]:
    """A model as `/models/{id}` and the items of `/models` write it, with its published versions.

    `image_levels` keeps only the embedded images whose NSFW level has a bit in that mask (None: all of them).
    """
    out = _base(model.raw, ("modelVersions",))
    out["id"] = model.id
    out["name"] = model.name
    _put(out, "description", model.description)
    out["type"] = model.type
    out["nsfw"] = bool(model.nsfw)
    if model.mode is not None:
        out["mode"] = model.mode
    else:
        out.pop("mode", None)  # CivitAI leaves `mode` out for live models
    if model.creator is not None:
        out["creator"] = {"username": model.creator.username, "image": model.creator.image_url}
    out["tags"] = list(model.tags or [])
    versions = [v for v in model.versions if is_published(v)]
    order = _id_list((model.raw or {}).get("modelVersions"))
    out["modelVersions"] = [
        version_to_api(v, origin=origin, standalone=False, image_levels=image_levels)
        for v in _ordered(versions, order, newest_first=True)
    ]
    return out


def version_to_api(
    version: ModelVersion, *, origin: str | None = None, standalone: bool = True, image_levels: int | None = None
) -> dict[str, Any]:
    """A version as `/model-versions/{id}` (standalone) or inside a model's `modelVersions` (not standalone).

    Standalone adds `modelId`, `model` and `air`. An archived model's versions have no files and no `downloadUrl`,
    a taken-down model's no images, as on CivitAI.
    """
    model = version.model
    out = _base(version.raw, ("files", "images", "modelId", "model", "air"))
    out["id"] = version.id
    if standalone:
        out["modelId"] = version.model_id
    out["name"] = version.name
    _put(out, "baseModel", version.base_model)
    _put(out, "baseModelType", version.base_model_type)
    out["trainedWords"] = list(version.trained_words or [])
    _put(out, "description", version.description)
    _put_date(out, "publishedAt", version.published_at)
    _put_date(out, "earlyAccessEndsAt", version.early_access_ends_at)
    if standalone:
        _put(out, "status", version.status)
        out["air"] = (version.raw or {}).get("air") or air_urn(version)
        info = {k: v for k, v in (model.raw or {}).items() if k in ("poi", "minor")}
        out["model"] = {"name": model.name, "type": model.type, "nsfw": bool(model.nsfw), **info}
        if model.mode is not None:
            out["model"]["mode"] = model.mode
    else:
        out.pop("status", None)  # lists show only published versions and leave the status out
    raw = version.raw or {}
    archived = model.mode == ARCHIVED
    if "files" in raw or version.files:
        files = [] if archived else _ordered(version.files, _id_list(raw.get("files")))
        primary = primary_file(files)
        out["files"] = [file_to_api(f, origin=origin, primary=f is primary) for f in files]
    if "images" in raw or version.images:
        images = [] if model.mode == TAKEN_DOWN else _ordered(version.images, _id_list(raw.get("images")))
        out["images"] = [image_to_api(i) for i in images if _shown(i, image_levels)]
    if archived:
        out.pop("downloadUrl", None)
    elif origin is not None:
        out["downloadUrl"] = local_download_url(origin, version.id)
    else:
        _put(out, "downloadUrl", version.download_url)
    return out


def file_to_api(file: VersionFile, *, origin: str | None = None, primary: bool | None = None) -> dict[str, Any]:
    """A version's file: name, type, sizeKB, metadata (format, size, fp), hashes, scans, primary, downloadUrl."""
    out = _base(file.raw, ("hashes",))
    out["id"] = file.id
    out["name"] = file.name
    _put(out, "type", file.type)
    _put(out, "sizeKB", file.size_kb)
    metadata = dict(out.get("metadata") or {}) if isinstance(out.get("metadata"), Mapping) else {}
    for key, value in (("format", file.format), ("size", file.size), ("fp", file.fp)):
        if value is not None:
            metadata[key] = value
    out["metadata"] = metadata
    _put(out, "pickleScanResult", file.pickle_scan_result)
    _put(out, "virusScanResult", file.virus_scan_result)
    out["hashes"] = hashes_to_api(file.hashes, (file.raw or {}).get("hashes"))
    out["primary"] = bool(file.primary) if primary is None else primary
    if origin is not None:
        out["downloadUrl"] = local_download_url(origin, file.version_id, _file_query(file, out["primary"]))
    else:
        _put(out, "downloadUrl", file.download_url)
    return out


def hashes_to_api(hashes: Iterable[FileHash], order: object = None) -> dict[str, str]:
    """`{"AutoV2": "…", "SHA256": "…"}` in the order CivitAI sent the algorithms, upper-case values."""
    by_algo = {h.algo: h.value.upper() for h in hashes}
    names = [n for n in order if isinstance(n, str) and n in by_algo] if isinstance(order, list) else []
    return {name: by_algo[name] for name in [*names, *sorted(set(by_algo) - set(names))]}


def image_to_api(image: Image) -> dict[str, Any]:
    """An image as embedded in a version: numeric `nsfwLevel`, `meta` whole (null when the image has none).

    Fields kept in `raw` come back (an image also seen in `/images` keeps its `postId`, `stats`...); the keys the
    columns decide are taken from the columns.
    """
    return _image_out(image, _EMBEDDED_IMAGE_KEYS, nsfw_level=image.nsfw_level)


def images_item_to_api(image: Image, *, with_meta: bool) -> dict[str, Any]:
    """An item of `/images`: legacy string `nsfwLevel`, numeric `browsingLevel`, `meta` only `with_meta`."""
    keys = (*_IMAGES_ITEM_KEYS, "meta") if with_meta else _IMAGES_ITEM_KEYS
    out = _image_out(image, keys, nsfw_level=legacy_name(image.nsfw_level))
    if not with_meta:
        out.pop("meta", None)
    return out


def referenced_versions(image: Image) -> list[int]:
    """The image's own version and every version its `meta.civitaiResources` names, without repeats."""
    ids: list[int] = [image.version_id] if image.version_id is not None else []
    resources = (image.meta or {}).get("civitaiResources")
    if isinstance(resources, list):
        for resource in resources:
            value = resource.get("modelVersionId") if isinstance(resource, Mapping) else None
            if isinstance(value, int) and not isinstance(value, bool) and value not in ids:
                ids.append(value)
    return ids


def primary_file(files: Sequence[VersionFile]) -> VersionFile | None:
    """The file CivitAI downloads when no type or format is asked for: the flagged one, else the first model file."""
    for file in files:
        if file.primary:
            return file
    for file in files:
        if file.type == "Model":
            return file
    return files[0] if files else None


def is_published(version: ModelVersion) -> bool:
    """True unless CivitAI said the version is something else than published (draft, scheduled, deleted)."""
    return version.status in (None, PUBLISHED)


def air_urn(version: ModelVersion) -> str:
    """`urn:air:{ecosystem}:{type}:civitai:{modelId}@{versionId}` for a version."""
    base = version.base_model or "Other"
    matches = [prefix for prefix in _AIR_ECOSYSTEMS if base.startswith(prefix)]
    ecosystem = _AIR_ECOSYSTEMS[max(matches, key=len)] if matches else base.lower().replace(" ", "")
    kind = _AIR_TYPES.get(version.model.type, "unknown")
    return f"urn:air:{ecosystem}:{kind}:civitai:{version.model_id}@{version.id}"


def local_download_url(origin: str, version_id: int, query: Mapping[str, str] | None = None) -> str:
    """`{origin}/api/download/models/{version_id}` with the file-picking query, if any."""
    url = f"{origin.rstrip('/')}/api/download/models/{version_id}"
    return f"{url}?{urlencode(dict(query))}" if query else url


def iso_timestamp(value: datetime) -> str:
    """A timestamp as CivitAI writes it: UTC, milliseconds, `Z`."""
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# --- helpers ------------------------------------------------------------------------------------------------------


def _file_query(file: VersionFile, primary: bool) -> dict[str, str]:
    """The query of the file's CivitAI download URL when it had one; else type and format for a non-primary file."""
    stored = urlsplit(file.download_url or "").query
    if stored:
        return {k: v for k, v in parse_qsl(stored) if k != "token"}
    if primary:
        return {}
    return {k: v for k, v in (("type", file.type), ("format", file.format)) if v}


def _base(raw: Mapping[str, Any] | None, drop: Iterable[str]) -> dict[str, Any]:
    dropped = set(drop)
    return {k: v for k, v in (raw or {}).items() if k not in dropped}


def _put(out: dict[str, Any], key: str, value: object) -> None:
    """Lay a column over raw: a value wins, a null column keeps whatever raw had (including the key's absence)."""
    if value is not None:
        out[key] = value


def _put_date(out: dict[str, Any], key: str, value: datetime | None) -> None:
    if value is not None:
        out[key] = iso_timestamp(value)


def _id_list(value: object) -> list[int]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]


def _ordered(rows: Iterable[Row], order: Sequence[int], *, newest_first: bool = False) -> list[Row]:
    """Rows in the order raw remembers; rows it does not list follow, by id (newest first for versions)."""
    position = {row_id: i for i, row_id in enumerate(order)}
    listed = sorted((r for r in rows if r.id in position), key=lambda r: position[r.id])
    rest = sorted((r for r in rows if r.id not in position), key=lambda r: r.id, reverse=newest_first)
    return listed + rest


# The keys each image shape always has, in CivitAI's order; raw may add others.
_EMBEDDED_IMAGE_KEYS = (
    "id",
    "url",
    "nsfwLevel",
    "width",
    "height",
    "hash",
    "type",
    "hasMeta",
    "hasPositivePrompt",
    "meta",
)
_IMAGES_ITEM_KEYS = (
    "id",
    "url",
    "hash",
    "width",
    "height",
    "type",
    "nsfw",
    "nsfwLevel",
    "browsingLevel",
    "baseModel",
    "modelVersionIds",
)


def _image_out(image: Image, keys: Sequence[str], *, nsfw_level: object) -> dict[str, Any]:
    """`raw`, then every key the columns decide: set when the shape has it, replaced when raw has it.

    Raw merges both shapes (a number or a legacy string in `nsfwLevel`, `browsingLevel` next to it), so a key that
    comes from the columns is never taken from raw: it could be the other shape's or stale.
    """
    raw = image.raw or {}
    out = dict(raw)
    derived: dict[str, Callable[[], object]] = {
        "id": lambda: image.id,
        "url": lambda: image.url,
        "nsfwLevel": lambda: nsfw_level,
        "width": lambda: image.width,
        "height": lambda: image.height,
        "hash": lambda: image.hash,
        "type": lambda: image.type or "image",
        "nsfw": lambda: is_nsfw(image.nsfw_level),
        "browsingLevel": lambda: image.nsfw_level,
        "hasMeta": lambda: image.meta is not None,
        "hasPositivePrompt": lambda: bool((image.meta or {}).get("prompt")),
        "meta": lambda: image.meta,
        "baseModel": lambda: _image_base_model(image, raw.get("baseModel")),
        # CivitAI's own list may name versions that neither the row nor its meta reaches.
        "modelVersionIds": lambda: _merged_ids(referenced_versions(image), _id_list(raw.get("modelVersionIds"))),
    }
    for key in keys:
        out[key] = derived[key]()
    for key, value in derived.items():
        if key in out and key not in keys:
            out[key] = value()
    return out


def _image_base_model(image: Image, from_raw: object) -> object:
    version = image.version
    if version is not None and version.base_model is not None:
        return version.base_model
    return from_raw


def _merged_ids(first: list[int], then: list[int]) -> list[int]:
    return first + [i for i in dict.fromkeys(then) if i not in first]


def _shown(image: Image, levels: int | None) -> bool:
    # An image of unknown level is hidden whenever a filter applies: the safe side for NSFW.
    return levels is None or bool((image.nsfw_level or 0) & levels)
