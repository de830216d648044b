"""Store CivitAI API objects in the index, and render index rows back as CivitAI JSON.

Writing: `upsert_model` takes an item of `/models` or `/models/{id}`; `upsert_version` a `/model-versions/{id}` or
by-hash answer (it creates a stub model row from the embedded `model` when the model is not stored yet);
`upsert_images` items of `/images`. Each accepts a plain dict or an object of `modeldex.hub.api_models` and adds
the rows to the session without committing.

What each row's `raw` column holds: the object as received, unknown fields included, except that nested lists
whose items have rows of their own (`modelVersions`, `files`, `images`) are replaced by the ids of those rows in
the order received, and `hashes` by the names of the algorithms; an image's `meta` stays in its own column only. So
`raw` remembers the order and whether the key was there at all (a version may have no `images` key), and the rows
stay the one copy of the content. An image's `raw` merges the fields of both shapes it comes in (embedded in a
version, an item of `/images`).

Merging: a later answer updates the columns it carries and keeps the others (a `/models` item lacks the version
description that `/model-versions/{id}` has). Versions, files and images missing from a later answer are kept:
CivitAI empties `files` when a model is archived and hides versions and images by NSFW level or domain, and a
local file linked to a file row must not lose its link because of that.

Reading: `model_to_api`, `version_to_api`, `file_to_api`, `image_to_api` (see modeldex/hub/rows_to_api.py, re-exported
here).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from modeldex.db.models import Creator, FileHash, Image, Model, ModelVersion, VersionFile
from modeldex.errors import HubError
from modeldex.hub.nsfw_levels import image_level
from modeldex.hub.rows_to_api import (
    file_to_api,
    image_to_api,
    images_item_to_api,
    model_to_api,
    version_to_api,
)

__all__ = [
    "HASH_ALGOS",
    "canonical_algo",
    "file_to_api",
    "image_to_api",
    "images_item_to_api",
    "model_to_api",
    "upsert_creator",
    "upsert_images",
    "upsert_model",
    "upsert_models",
    "upsert_version",
    "version_to_api",
]

HASH_ALGOS = ("SHA256", "AutoV1", "AutoV2", "AutoV3", "CRC32", "BLAKE3")
"""CivitAI's spelling of the hash types it sends."""
_ALGO_BY_LOWER = {algo.lower(): algo for algo in HASH_ALGOS}

# Keys whose content lives in rows of their own; raw keeps only the ids (or names) in order.
_MODEL_CHILDREN = "modelVersions"
_VERSION_CHILDREN = ("files", "images")
# Kept only in its column: it can be large (a ComfyUI graph) and a null `meta` must not hide the stored one.
_IMAGE_OWN_COLUMN = "meta"


def canonical_algo(name: str) -> str:
    """CivitAI's spelling of a hash algorithm name given in any case (`sha256` -> `SHA256`); unknown names as given."""
    return _ALGO_BY_LOWER.get(name.strip().lower(), name.strip())


def upsert_models(
    session: Session, items: Iterable[Mapping[str, Any] | object], *, fetched_at: datetime | None = None
) -> list[Model]:
    """Store every item of a `/models` answer (see `upsert_model`).

    The rows already stored for the whole batch are read first, a few queries in all, instead of one query per
    model, version, file and image.
    """
    objects = [_as_dict(item, "model") for item in items]
    cache = _prefetch(session, objects)
    session.info[_CACHE_KEY] = cache
    try:
        return [upsert_model(session, obj, fetched_at=fetched_at) for obj in objects]
    finally:
        session.info.pop(_CACHE_KEY, None)


def upsert_model(session: Session, data: Mapping[str, Any] | object, *, fetched_at: datetime | None = None) -> Model:
    """Insert or update a model with its creator, versions, files, hashes and images; returns the model row."""
    obj = _as_dict(data, "model")
    model_id = _require_id(obj, "model")
    model = _lookup(session, Model, model_id)
    if model is None:
        model = _add(session, Model(id=model_id, name="", type="Other", nsfw=False, tags=[]))
    _apply_model_fields(session, model, obj)
    model.fetched_at = fetched_at or datetime.now(UTC)
    raw = {k: v for k, v in obj.items() if k != _MODEL_CHILDREN}
    versions = obj.get(_MODEL_CHILDREN)
    if isinstance(versions, list):
        stored = [
            upsert_version(session, version, model_id=model_id, fetched_at=fetched_at)
            for version in versions
            if isinstance(version, Mapping) or hasattr(version, "model_dump")
        ]
        raw[_MODEL_CHILDREN] = [version.id for version in stored]
    model.raw = _merge_raw(model.raw, raw)
    session.flush()
    return model


def upsert_version(
    session: Session,
    data: Mapping[str, Any] | object,
    *,
    model_id: int | None = None,
    fetched_at: datetime | None = None,
) -> ModelVersion:
    """Insert or update a version with its files, hashes and images; returns the version row.

    `model_id` is the parent when the version came inside a model; otherwise the version's own `modelId` is used
    and, when that model is not stored yet, a row is made from the embedded `model` object (name, type, nsfw).
    """
    obj = _as_dict(data, "model version")
    version_id = _require_id(obj, "model version")
    parent_id = model_id if model_id is not None else _int(obj.get("modelId"))
    version = _lookup(session, ModelVersion, version_id)
    if parent_id is None:
        if version is None:
            raise HubError(f"CivitAI sent model version {version_id} without the id of its model")
        parent_id = version.model_id
    if model_id is None:
        _ensure_parent(session, parent_id, obj.get("model"))
    if version is None:
        version = _add(session, ModelVersion(id=version_id, model_id=parent_id, name="", trained_words=[]))
    version.model_id = parent_id
    _apply_version_fields(version, obj)
    version.fetched_at = fetched_at or datetime.now(UTC)
    raw = {k: v for k, v in obj.items() if k not in _VERSION_CHILDREN}
    files = obj.get("files")
    if isinstance(files, list):
        raw["files"] = [_upsert_file(session, version, _as_dict(f, "file")).id for f in files if _is_object(f)]
    images = obj.get("images")
    if isinstance(images, list):
        stored = upsert_images(session, images, version_id=version.id)
        raw["images"] = [image.id for image in stored]
    version.raw = _merge_raw(version.raw, raw)
    return version


def upsert_images(
    session: Session, items: Iterable[Mapping[str, Any] | object], *, version_id: int | None = None
) -> list[Image]:
    """Insert or update images (embedded in a version, or items of `/images`); items without an id or url are skipped.

    `version_id` links them to a version; without it a new image gets the first id of its `modelVersionIds` that is
    stored, and an existing image keeps its link. Stored generation `meta` is never replaced by a null one: `/models`
    and `/images` without `withMeta` leave it out. The other fields go to `raw`, merged over what earlier answers
    sent: `/images` adds `postId`, `stats`, `createdAt` and `username`, which an embedded image lacks.
    """
    stored: list[Image] = []
    for item in items:
        if not _is_object(item):
            continue
        obj = _as_dict(item, "image")
        image_id = _int(obj.get("id"))
        url = obj.get("url")
        if image_id is None or not isinstance(url, str) or not url:
            continue
        image = _lookup(session, Image, image_id)
        if image is None:
            image = _add(session, Image(id=image_id, url=url))
        image.url = url
        if version_id is not None:
            image.version_id = version_id
        elif image.version_id is None:
            image.version_id = _first_stored_version(session, obj.get("modelVersionIds"))
        for key, attr in (("width", "width"), ("height", "height")):
            if key in obj:
                setattr(image, attr, _int(obj[key]))
        # /images puts the number in browsingLevel and a legacy string in nsfwLevel; embedded images the number.
        level = image_level(obj.get("browsingLevel")) or image_level(obj.get("nsfwLevel"))
        if level is None and "nsfw" in obj:
            level = image_level(obj["nsfw"])
        if level is not None:
            image.nsfw_level = level
        if "type" in obj:
            image.type = _str(obj["type"])
        if "hash" in obj:
            image.hash = _str(obj["hash"])
        meta = obj.get("meta")
        if isinstance(meta, Mapping):
            image.meta = dict(meta)
        image.raw = _merge_raw(image.raw, {k: v for k, v in obj.items() if k != _IMAGE_OWN_COLUMN})
        stored.append(image)
    return stored


def upsert_creator(session: Session, data: Mapping[str, Any] | object | None) -> Creator | None:
    """Insert or update a creator by username; None (a deleted user) or a creator without a username gives None."""
    if data is None:
        return None
    obj = _as_dict(data, "creator")
    username = obj.get("username")
    if not isinstance(username, str) or not username:
        return None
    cache: _Cache | None = session.info.get(_CACHE_KEY)
    creator = cache.creators.get(username) if cache is not None else None
    if creator is None:
        creator = session.scalars(select(Creator).where(Creator.username == username)).first()
    if creator is None:
        creator = Creator(username=username)
        session.add(creator)
    if cache is not None:
        cache.creators[username] = creator
    if "image" in obj:
        creator.image_url = _str(obj["image"])
    creator.raw = _merge_raw(creator.raw, obj)
    return creator


# --- fields -----------------------------------------------------------------------------------------------------


def _apply_model_fields(session: Session, model: Model, obj: Mapping[str, Any]) -> None:
    if "name" in obj:
        model.name = _str(obj["name"]) or ""
    if "type" in obj and obj["type"]:
        model.type = str(obj["type"])
    if "description" in obj:
        model.description = _str(obj["description"])
    if "nsfw" in obj:
        model.nsfw = bool(obj["nsfw"])
    if "tags" in obj:
        model.tags = _tag_names(obj["tags"])
    if "mode" in obj:
        model.mode = _str(obj["mode"])
    if "creator" in obj:
        model.creator = upsert_creator(session, obj["creator"])


def _apply_version_fields(version: ModelVersion, obj: Mapping[str, Any]) -> None:
    if "name" in obj:
        version.name = _str(obj["name"]) or ""
    if "baseModel" in obj:
        version.base_model = _str(obj["baseModel"])
    if "baseModelType" in obj:
        version.base_model_type = _str(obj["baseModelType"])
    if "trainedWords" in obj:
        words = obj["trainedWords"]
        version.trained_words = [str(w) for w in words] if isinstance(words, list) else []
    if "description" in obj:
        version.description = _str(obj["description"])
    if "publishedAt" in obj:
        version.published_at = _datetime(obj["publishedAt"])
    if "earlyAccessEndsAt" in obj:
        version.early_access_ends_at = _datetime(obj["earlyAccessEndsAt"])
    if "status" in obj:
        version.status = _str(obj["status"])
    if "downloadUrl" in obj:
        version.download_url = _str(obj["downloadUrl"])


def _upsert_file(session: Session, version: ModelVersion, obj: Mapping[str, Any]) -> VersionFile:
    file_id = _require_id(obj, "file")
    row = _lookup(session, VersionFile, file_id)
    if row is None:
        row = _add(session, VersionFile(id=file_id, version_id=version.id, name="", hashes=[]))
    row.version_id = version.id
    if "name" in obj:
        row.name = _str(obj["name"]) or ""
    if "type" in obj:
        row.type = _str(obj["type"])
    if "sizeKB" in obj:
        row.size_kb = _float(obj["sizeKB"])
    if "primary" in obj:
        row.primary = bool(obj["primary"])
    if "downloadUrl" in obj:
        row.download_url = _str(obj["downloadUrl"])
    if "pickleScanResult" in obj:
        row.pickle_scan_result = _str(obj["pickleScanResult"])
    if "virusScanResult" in obj:
        row.virus_scan_result = _str(obj["virusScanResult"])
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        row.format = _str(metadata.get("format")) if "format" in metadata else row.format
        row.fp = _str(metadata.get("fp")) if "fp" in metadata else row.fp
        row.size = _str(metadata.get("size")) if "size" in metadata else row.size
    raw = {k: v for k, v in obj.items() if k != "hashes"}
    hashes = obj.get("hashes")
    if isinstance(hashes, Mapping):
        raw["hashes"] = _upsert_hashes(row, hashes)
    row.raw = _merge_raw(row.raw, raw)
    return row


def _upsert_hashes(row: VersionFile, hashes: Mapping[str, Any]) -> list[str]:
    existing = {h.algo: h for h in row.hashes}
    names: list[str] = []
    for name, value in hashes.items():
        if not isinstance(value, str) or not value.strip():
            continue
        algo = canonical_algo(str(name))
        found = existing.get(algo)
        if found is None:
            found = FileHash(algo=algo, value="")
            row.hashes.append(found)
            existing[algo] = found
        found.value = value.strip().upper()
        names.append(algo)
    return names


def _ensure_parent(session: Session, model_id: int, embedded: object) -> None:
    """Make or refresh the model row a standalone version points at, from the version's embedded `model`."""
    model = _lookup(session, Model, model_id)
    info = dict(embedded) if isinstance(embedded, Mapping) else {}
    if model is None:
        model = _add(session, Model(id=model_id, name="", type="Other", nsfw=False, tags=[]))
    if info:
        fields = {k: info[k] for k in ("name", "type", "nsfw", "mode") if k in info}
        _apply_model_fields(session, model, fields)
        model.raw = _merge_raw(model.raw, info)


def _first_stored_version(session: Session, ids: object) -> int | None:
    if not isinstance(ids, list):
        return None
    for value in ids:
        version_id = _int(value)
        if version_id is not None and _lookup(session, ModelVersion, version_id) is not None:
            return version_id
    return None


# --- batch lookups ------------------------------------------------------------------------------------------------

_CACHE_KEY = "modeldex.hub.store.batch"
_CHUNK = 500
Stored = TypeVar("Stored", Model, ModelVersion, VersionFile, Image)


@dataclass
class _Cache:
    """What one `upsert_models` batch knows: rows already read (held so the identity map keeps them), ids known to
    be new (no query needed to learn that again), creators by username."""

    rows: list[object] = field(default_factory=list)
    absent: set[tuple[type, int]] = field(default_factory=set)
    creators: dict[str, Creator] = field(default_factory=dict)


def _lookup(session: Session, cls: type[Stored], row_id: int) -> Stored | None:
    cache: _Cache | None = session.info.get(_CACHE_KEY)
    if cache is not None and (cls, row_id) in cache.absent:
        return None
    return session.get(cls, row_id)


def _add(session: Session, row: Stored) -> Stored:
    session.add(row)
    cache: _Cache | None = session.info.get(_CACHE_KEY)
    if cache is not None:
        cache.absent.discard((type(row), row.id))
        cache.rows.append(row)
    return row


def _prefetch(session: Session, models: list[dict[str, Any]]) -> _Cache:
    """Read the stored rows a batch of models will touch, in chunks, into a `_Cache`."""
    wanted: dict[type, set[int]] = {Model: set(), ModelVersion: set(), VersionFile: set(), Image: set()}
    usernames: set[str] = set()
    for model in models:
        _collect_id(wanted[Model], model)
        creator = model.get("creator")
        if isinstance(creator, Mapping) and isinstance(creator.get("username"), str):
            usernames.add(creator["username"])
        for version in _objects(model.get(_MODEL_CHILDREN)):
            _collect_id(wanted[ModelVersion], version)
            for file in _objects(version.get("files")):
                _collect_id(wanted[VersionFile], file)
            for image in _objects(version.get("images")):
                _collect_id(wanted[Image], image)
    cache = _Cache()
    _prefetch_rows(session, Model, wanted[Model], cache)
    _prefetch_rows(session, ModelVersion, wanted[ModelVersion], cache)
    _prefetch_rows(session, VersionFile, wanted[VersionFile], cache)
    _prefetch_rows(session, Image, wanted[Image], cache)
    names = sorted(usernames)
    for start in range(0, len(names), _CHUNK):
        for creator in session.scalars(select(Creator).where(Creator.username.in_(names[start : start + _CHUNK]))):
            cache.creators[creator.username] = creator
    return cache


def _prefetch_rows(session: Session, cls: type[Stored], ids: set[int], cache: _Cache) -> None:
    ordered = sorted(ids)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        statement = select(cls).where(cls.id.in_(chunk))
        if cls is VersionFile:
            statement = statement.options(selectinload(VersionFile.hashes))
        rows = list(session.scalars(statement))
        cache.rows.extend(rows)
        found = {row.id for row in rows}
        cache.absent.update((cls, i) for i in chunk if i not in found)


def _objects(value: object) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _collect_id(ids: set[int], obj: Mapping[str, Any]) -> None:
    value = _int(obj.get("id"))
    if value is not None:
        ids.add(value)


# --- coercion -----------------------------------------------------------------------------------------------------


def _as_dict(data: Mapping[str, Any] | object, what: str) -> dict[str, Any]:
    """A plain dict in CivitAI's wire shape from a dict or an api_models object (unknown fields included)."""
    if isinstance(data, Mapping):
        return dict(data)
    raw = getattr(data, "raw", None)
    if callable(raw):
        result = raw()
        if isinstance(result, Mapping):
            return dict(result)
    dump = getattr(data, "model_dump", None)
    if callable(dump):
        result = dump(mode="json", by_alias=True, exclude_unset=True)
        if isinstance(result, Mapping):
            return dict(result)
    raise HubError(f"CivitAI sent a {what} that is not a JSON object: {type(data).__name__}")


def _is_object(item: object) -> bool:
    return isinstance(item, Mapping) or hasattr(item, "model_dump")


def _require_id(obj: Mapping[str, Any], what: str) -> int:
    value = _int(obj.get("id"))
    if value is None:
        raise HubError(f"CivitAI sent a {what} without a numeric id: {obj.get('id')!r}")
    return value


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _str(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _tag_names(value: object) -> list[Any]:
    if not isinstance(value, list):
        return []
    names = [item.get("name") if isinstance(item, Mapping) else item for item in value]
    return [str(name) for name in names if name not in (None, "")]


def _datetime(value: object) -> datetime | None:
    """A timestamp CivitAI wrote (ISO 8601, `Z` or offset); None when absent or unreadable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _merge_raw(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    # A new dict each time: SQLAlchemy's JSON column notices reassignment, not in-place changes.
    return {**(old or {}), **new}
