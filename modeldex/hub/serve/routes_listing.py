"""`/api/v1/creators`, `/api/v1/tags` (page-based only, as on CivitAI) and `/api/v1/enums`."""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy import func, select

from modeldex.db.models import Creator, Model, ModelVersion
from modeldex.hub.serve.deps import DbSession, Origin
from modeldex.hub.serve.enums import enums_answer
from modeldex.hub.serve.paging import PageRequest, check_page_depth, page_metadata
from modeldex.hub.serve.params import Params

router = APIRouter()


@router.get("/api/v1/creators")
def list_creators(request: Request, session: DbSession, origin: Origin) -> dict[str, Any]:
    """Creators with at least one model, most models first; `query` matches part of the username."""
    p = Params(request.query_params)
    page = _page(p)
    text = p.string("query")
    p.check()
    check_page_depth(page)
    count = func.count(Model.id).label("model_count")
    statement = select(Creator, count).join(Model, Model.creator_id == Creator.id).group_by(Creator.id)
    if text is not None:
        statement = statement.where(func.lower(Creator.username).contains(text.lower(), autoescape=True))
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = session.execute(
        statement.order_by(count.desc(), Creator.username).offset(page.offset).limit(page.limit)
    ).all()
    items = [
        {
            "username": creator.username,
            "modelCount": model_count,
            "link": f"{origin}/api/v1/models?{urlencode({'username': creator.username})}",
            "image": creator.image_url,
        }
        for creator, model_count in rows
    ]
    return {"items": items, "metadata": page_metadata(origin, request.url.path, request.query_params, page, total)}


@router.get("/api/v1/tags")
def list_tags(request: Request, session: DbSession, origin: Origin) -> dict[str, Any]:
    """Model tags, most used first; `query` matches part of the tag."""
    p = Params(request.query_params)
    page = _page(p)
    text = p.string("query")
    p.check()
    check_page_depth(page)
    counts: Counter[str] = Counter()
    for tags in session.scalars(select(Model.tags)):
        counts.update({str(tag) for tag in tags or [] if tag})
    names = sorted(counts, key=lambda name: (-counts[name], name))
    if text is not None:
        names = [name for name in names if text.lower() in name.lower()]
    shown = names[page.offset : page.offset + page.limit]
    items = [{"name": name, "link": f"{origin}/api/v1/models?{urlencode({'tag': name})}"} for name in shown]
    return {
        "items": items,
        "metadata": page_metadata(origin, request.url.path, request.query_params, page, len(names)),
    }


@router.get("/api/v1/enums")
def enums(session: DbSession) -> dict[str, list[str]]:
    """Model types, file types, base models and base model types."""
    found = session.scalars(select(ModelVersion.base_model).where(ModelVersion.base_model.is_not(None)).distinct())
    return enums_answer([name for name in found if name])


def _page(p: Params) -> PageRequest:
    return PageRequest(
        limit=p.integer("limit", default=20, minimum=0, maximum=200) or 0,
        page=p.integer("page", default=1, minimum=1),
        cursor=None,
    )
