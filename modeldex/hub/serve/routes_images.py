"""`GET /api/v1/images`: images of the served database, newest first, with CivitAI's NSFW filters and paging.

The index keeps no post, uploader, reaction or tag of an image, so a request filtering on `postId`, `username`,
`userId` or `tags` finds nothing here rather than everything.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import selectinload

from modeldex.db.models import Image, ModelVersion
from modeldex.hub import nsfw_levels
from modeldex.hub.rows_to_api import images_item_to_api
from modeldex.hub.serve.deps import DbSession, Origin
from modeldex.hub.serve.enums import DEFAULT_IMAGE_SORT, IMAGE_SORTS, LEGACY_NSFW, MEDIA_TYPES, PERIODS
from modeldex.hub.serve.paging import PageRequest, check_page_depth, cursor_metadata, page_metadata
from modeldex.hub.serve.params import ApiError, Params

router = APIRouter()

_UNKNOWN_HERE = ("postId", "username", "userId", "tags")


@router.get("/api/v1/images")
def list_images(request: Request, session: DbSession, origin: Origin) -> dict[str, Any]:
    """Images filtered by model, version, image id, type, base model and NSFW level; `meta` with `withMeta=true`."""
    query = request.query_params
    p = Params(query)
    page = PageRequest(
        limit=p.integer("limit", default=100, minimum=0, maximum=200) or 0,
        page=p.integer("page", minimum=1),
        cursor=p.string("cursor"),
    )
    model_id = p.integer("modelId")
    version_id = p.integer("modelVersionId")
    image_id = p.integer("imageId")
    p.integer("postId")
    p.integer("userId")
    media = p.choice("type", MEDIA_TYPES)
    base_models = p.strings("baseModels")
    levels = _browsing_levels(p)
    sort = p.choice("sort", IMAGE_SORTS, default=DEFAULT_IMAGE_SORT) or DEFAULT_IMAGE_SORT
    p.choice("period", PERIODS)
    with_meta = bool(p.boolean("withMeta", default=False))
    p.check()
    check_page_depth(page)

    conditions: list[ColumnElement[bool]] = [Image.nsfw_level.op("&")(levels) != 0]
    if any(p.has(name) for name in _UNKNOWN_HERE):
        return {"items": [], "metadata": {}}
    if version_id is not None:
        conditions.append(Image.version_id == version_id)
    if model_id is not None:
        conditions.append(Image.version_id.in_(select(ModelVersion.id).where(ModelVersion.model_id == model_id)))
    if image_id is not None:
        conditions.append(Image.id == image_id)
    if media is not None:
        conditions.append(func.coalesce(Image.type, "image") == media)
    if base_models:
        conditions.append(Image.version_id.in_(select(ModelVersion.id).where(ModelVersion.base_model.in_(base_models))))
    ascending = sort == "Oldest"
    if page.cursor is not None:
        try:
            last = int(page.cursor)
        except ValueError as exc:
            issue = {"code": "custom", "message": f"Invalid cursor {page.cursor!r}", "path": ["cursor"]}
            raise ApiError(400, {"issues": [issue], "name": "ZodError"}) from exc
        conditions.append(Image.id > last if ascending else Image.id < last)

    statement = select(Image).where(*conditions)
    total = None
    if page.paged:
        total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    statement = (
        statement.order_by(Image.id.asc() if ascending else Image.id.desc())
        .offset(page.offset)
        .limit(page.limit + 1)
        .options(selectinload(Image.version))
    )
    images = list(session.scalars(statement))
    more = len(images) > page.limit
    images = images[: page.limit]
    items = [images_item_to_api(image, with_meta=with_meta) for image in images]
    if page.paged:
        metadata = page_metadata(origin, request.url.path, query, page, total)
    else:
        next_cursor = str(images[-1].id) if more and images else None
        metadata = cursor_metadata(origin, request.url.path, query, next_cursor)
    return {"items": items, "metadata": metadata}


def _browsing_levels(p: Params) -> int:
    """The NSFW levels to show: `browsingLevel` (a mask) wins over `nsfw` (legacy name or boolean); default public."""
    mask = p.integer("browsingLevel", minimum=0)
    nsfw = p.string("nsfw")
    if mask is not None:
        return mask
    if nsfw is None:
        return nsfw_levels.PUBLIC
    if nsfw in LEGACY_NSFW:
        return nsfw_levels.LEGACY_FILTERS[nsfw]
    flag = p.boolean("nsfw")
    if flag is None:
        return nsfw_levels.PUBLIC
    return nsfw_levels.NSFW if flag else nsfw_levels.PUBLIC
