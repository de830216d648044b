"""`/api/v1/models`, `/api/v1/models/{id}`, `/api/v1/model-versions/{id}` and the by-hash lookups."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from modeldex.db.models import FileHash, Model, ModelVersion, VersionFile
from modeldex.hub import nsfw_levels
from modeldex.hub.rows_to_api import ARCHIVED, is_published, model_to_api, version_to_api
from modeldex.hub.serve.deps import DbSession, Origin, path_id
from modeldex.hub.serve.enums import CHECKPOINT_TYPES, DEFAULT_MODEL_SORT, MODEL_SORTS, MODEL_TYPES, PERIODS
from modeldex.hub.serve.models_query import ModelFilters, find_models
from modeldex.hub.serve.paging import PageRequest, check_page_depth, cursor_metadata, page_metadata
from modeldex.hub.serve.params import ApiError, Params, not_found

router = APIRouter()

MAX_HASHES = 100
"""Most SHA256 hashes one `POST /model-versions/by-hash` takes."""

_AUTH_ONLY = ("favorites", "hidden")


@router.get("/api/v1/models")
def list_models(request: Request, session: DbSession, origin: Origin) -> dict[str, Any]:
    """Models with CivitAI's filters, sorts and paging (`page`, or `cursor` from `metadata.nextCursor`)."""
    query = request.query_params
    if any(name in query for name in _AUTH_ONLY):
        # Favourites and hidden models belong to a logged-in user; this server has none.
        raise ApiError(401, "Unauthorized")
    p = Params(query)
    page = PageRequest(
        limit=p.integer("limit", default=100, minimum=0, maximum=100) or 0,
        page=p.integer("page", minimum=1),
        cursor=p.string("cursor"),
    )
    filters = ModelFilters(
        query=p.string("query"),
        ids=p.integers("ids"),
        tag=p.string("tag"),
        username=p.string("username"),
        types=p.choices("types", MODEL_TYPES),
        base_models=p.strings("baseModels"),
        checkpoint_type=p.choice("checkpointType", CHECKPOINT_TYPES),
        period=p.choice("period", PERIODS, default="AllTime") or "AllTime",
        nsfw=bool(p.boolean("nsfw", default=False)),
        early_access=p.boolean("earlyAccess"),
        supports_generation=p.boolean("supportsGeneration"),
    )
    sort = p.choice("sort", MODEL_SORTS, default=DEFAULT_MODEL_SORT) or DEFAULT_MODEL_SORT
    primary_only = bool(p.boolean("primaryFileOnly", default=False))
    p.boolean("fromPlatform")  # validated like CivitAI does; every model here counts as from anywhere
    p.check()
    check_page_depth(page)
    if filters.query is not None and page.page is not None:
        raise ApiError(400, "Cannot use page param with query search. Use cursor-based pagination.")
    found = find_models(session, filters, sort, page)
    # Anonymous CivitAI callers see only public images unless they ask for NSFW content.
    levels = None if filters.nsfw else nsfw_levels.PUBLIC
    items = [_listed(model, origin, levels, primary_only) for model in found.models]
    if page.paged:
        metadata = page_metadata(origin, request.url.path, query, page, found.total)
    else:
        metadata = cursor_metadata(origin, request.url.path, query, found.next_cursor)
    return {"items": items, "metadata": metadata}


@router.get("/api/v1/models/{model_id}")
def get_model(model_id: str, session: DbSession, origin: Origin) -> dict[str, Any]:
    """One model with its published versions."""
    number = path_id(model_id)
    model = session.get(Model, number)
    if model is None or not any(is_published(v) for v in model.versions):
        raise not_found(f"No model with id {number}")
    return model_to_api(model, origin=origin)


@router.get("/api/v1/model-versions/by-hash/{file_hash}")
def get_version_by_hash(file_hash: str, session: DbSession, origin: Origin) -> dict[str, Any]:
    """The published version one of whose files has this hash, of any type (SHA256, AutoV1-3, CRC32, BLAKE3)."""
    value = file_hash.strip().upper()
    if not value:
        raise ApiError(400, "Missing hash")
    versions = _versions_with_hashes(session, [value], algo=None)
    if not versions:
        raise not_found("Model not found")
    return _version_answer(versions[0], origin)


@router.post("/api/v1/model-versions/by-hash")
async def post_versions_by_hash(request: Request, origin: Origin) -> list[dict[str, Any]]:
    """The published versions of the files with these SHA256 hashes (at most 100); hashes not found are left out."""
    try:
        body = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    hashes = _sha256_list(body)
    return await run_in_threadpool(_versions_by_sha256, request.app.state.session_factory, hashes, origin)


def _versions_by_sha256(factory: sessionmaker[Session], hashes: list[str], origin: str) -> list[dict[str, Any]]:
    with factory() as session:
        versions = _versions_with_hashes(session, hashes, algo="SHA256")
        return [version_to_api(v, origin=origin) for v in versions]


@router.get("/api/v1/model-versions/{version_id}")
def get_version(version_id: str, session: DbSession, origin: Origin) -> dict[str, Any]:
    """One published version with its model's name and type, files and images."""
    number = path_id(version_id)
    version = session.get(ModelVersion, number)
    if version is None or not is_published(version):
        raise not_found("Model not found")
    return _version_answer(version, origin)


def _version_answer(version: ModelVersion, origin: str) -> dict[str, Any]:
    if not version.files and version.model.mode != ARCHIVED:
        raise not_found("Missing model file")
    return version_to_api(version, origin=origin)


def _listed(model: Model, origin: str, levels: int | None, primary_only: bool) -> dict[str, Any]:
    item = model_to_api(model, origin=origin, image_levels=levels)
    if primary_only:
        for version in item["modelVersions"]:
            files = version.get("files") or []
            version["files"] = [f for f in files if f.get("primary")][:1]
    return item


def _sha256_list(body: object) -> list[str]:
    problem = None
    if not isinstance(body, list):
        problem = "Expected an array of strings."
    elif len(body) > MAX_HASHES:
        problem = f"Too many hashes ({len(body)}); at most {MAX_HASHES} per request."
    elif not all(isinstance(h, str) and len(h) == 64 for h in body):
        problem = "Invalid hash: every hash must be 64 hex characters."
    if problem is not None:
        raise ApiError(400, f"Request must include an array of SHA256 Hashes. {problem}")
    assert isinstance(body, list)
    return [str(h).upper() for h in body]


def _versions_with_hashes(session: Session, values: list[str], algo: str | None) -> list[ModelVersion]:
    """Published versions owning a file with one of these (upper-case) hash values, each version once."""
    if not values:
        return []
    statement = (
        select(ModelVersion)
        .join(VersionFile, VersionFile.version_id == ModelVersion.id)
        .join(FileHash, FileHash.file_id == VersionFile.id)
        .where(FileHash.value.in_(values))
        .order_by(ModelVersion.id)
        .options(
            selectinload(ModelVersion.files).selectinload(VersionFile.hashes),
            selectinload(ModelVersion.images),
            selectinload(ModelVersion.model),
        )
    )
    if algo is not None:
        statement = statement.where(FileHash.algo == algo)
    seen: set[int] = set()
    versions: list[ModelVersion] = []
    for version in session.scalars(statement).unique():
        if version.id not in seen and is_published(version):
            seen.add(version.id)
            versions.append(version)
    return versions
