"""`GET /api/v1/models`: filters, sorts and keyset paging over the `model` table.

Sorts use the model's CivitAI `stats` (kept in `raw`), ties broken by id; `Newest`/`Oldest` order by id, which
CivitAI hands out in creation order. A cursor is `"{value}|{id}"` of the last item (`"{id}"` for id orders and
for `query` searches, which CivitAI also orders by id, newest first), so pages never skip or repeat an item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, or_, select
from sqlalchemy.orm import Session, selectinload

from modeldex.db.models import Creator, Model, ModelVersion, VersionFile
from modeldex.db.search import search_models
from modeldex.hub import nsfw_levels
from modeldex.hub.serve.paging import PageRequest
from modeldex.hub.serve.params import ApiError

QUERY_MATCH_LIMIT = 5000
"""Most models a `query` search considers (CivitAI's own search is capped too)."""

_METRICS = {
    "Highest Rated": "thumbsUpCount",
    "Most Liked": "thumbsUpCount",
    "Most Downloaded": "downloadCount",
    "Most Discussed": "commentCount",
    "Most Collected": "collectedCount",
    "Most Images": "imageCount",
}
_PERIODS = {
    "Year": timedelta(days=365),
    "Month": timedelta(days=30),
    "Week": timedelta(days=7),
    "Day": timedelta(days=1),
}


@dataclass
class ModelFilters:
    """Every filter of `/models` this server applies."""

    query: str | None = None
    ids: list[int] = field(default_factory=list)
    tag: str | None = None
    username: str | None = None
    types: list[str] = field(default_factory=list)
    base_models: list[str] = field(default_factory=list)
    checkpoint_type: str | None = None
    period: str = "AllTime"
    nsfw: bool = False
    early_access: bool | None = None
    supports_generation: bool | None = None


@dataclass(frozen=True)
class ModelPage:
    """One page of models and how to read on."""

    models: list[Model]
    next_cursor: str | None
    total: int | None


def find_models(session: Session, filters: ModelFilters, sort: str, page: PageRequest) -> ModelPage:
    """Models matching `filters` in `sort` order, one page of them (see `PageRequest`)."""
    statement = select(Model).where(*_conditions(session, filters))
    by_id = filters.query is not None or sort in ("Newest", "Oldest")
    descending = sort != "Oldest"
    metric = None if by_id else _metric(sort)
    if page.cursor is not None and page.limit > 0:
        statement = statement.where(_after_cursor(page.cursor, metric, descending))
    if metric is not None:
        statement = statement.order_by(metric.desc(), Model.id.desc())
    else:
        statement = statement.order_by(Model.id.desc() if descending else Model.id.asc())
    total = None
    if page.paged:
        total = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0
    statement = statement.offset(page.offset).limit(page.limit + 1)
    models = list(session.scalars(_with_children(statement)).unique())
    more = len(models) > page.limit
    models = models[: page.limit]
    next_cursor = None
    if more and not page.paged and models:
        next_cursor = _cursor_of(models[-1], metric is not None, _metric_name(sort))
    return ModelPage(models, next_cursor, total)


def _conditions(session: Session, f: ModelFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.query is not None:
        found = [m.id for m in search_models(session, f.query, limit=QUERY_MATCH_LIMIT)]
        conditions.append(Model.id.in_(found) if found else false())
    if f.ids:
        conditions.append(Model.id.in_(f.ids))
    if f.tag is not None:
        conditions.append(Model.id.in_(_models_tagged(session, f.tag)))
    if f.username is not None:
        conditions.append(
            Model.creator_id.in_(select(Creator.id).where(func.lower(Creator.username) == f.username.lower()))
        )
    if f.types:
        conditions.append(Model.type.in_(f.types))
    if f.base_models:
        conditions.append(_has_version(ModelVersion.base_model.in_(f.base_models)))
    if f.checkpoint_type is not None:
        conditions.append(Model.raw["checkpointType"].as_string() == f.checkpoint_type)
    if f.period in _PERIODS:
        since = datetime.now(UTC) - _PERIODS[f.period]
        conditions.append(_has_version(ModelVersion.published_at >= since))
    if not f.nsfw:
        level = Model.raw["nsfwLevel"].as_integer()
        conditions.append(
            or_(
                and_(level.is_(None), Model.nsfw.is_(False)),
                level.op("&")(nsfw_levels.PUBLIC) != 0,
            )
        )
    if f.early_access is True:
        conditions.append(_has_version(ModelVersion.early_access_ends_at > datetime.now(UTC)))
    if f.supports_generation is True:
        conditions.append(Model.raw["supportsGeneration"].as_boolean().is_(True))
    # Models with no published version have nothing to show (CivitAI lists published models only).
    conditions.append(_has_version(or_(ModelVersion.status.is_(None), ModelVersion.status == "Published")))
    return conditions


def _models_tagged(session: Session, tag: str) -> list[int]:
    """Ids of models carrying this whole tag, compared case-insensitively in Python.

    Tags are a JSON list; matching its text in SQL would depend on how each backend escapes non-ASCII letters
    (SQLite stores `\\u00dc` for Ü, which no SQL `lower()` turns into the `\\u00fc` of ü).
    """
    wanted = tag.casefold()
    return [
        model_id
        for model_id, tags in session.execute(select(Model.id, Model.tags))
        if isinstance(tags, list) and any(isinstance(t, str) and t.casefold() == wanted for t in tags)
    ]


def _has_version(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(ModelVersion.model_id == Model.id, condition)


def _metric_name(sort: str) -> str:
    return _METRICS.get(sort, "thumbsUpCount")


def _metric(sort: str) -> ColumnElement[Any]:
    return func.coalesce(Model.raw["stats"][_metric_name(sort)].as_float(), 0.0)


def _after_cursor(cursor: str, metric: ColumnElement[Any] | None, descending: bool) -> ColumnElement[bool]:
    """Rows after the cursor's row in the current order; a cursor this server did not write is a 400."""
    try:
        if metric is None:
            last_id = int(cursor)
            return Model.id < last_id if descending else Model.id > last_id
        value_text, id_text = cursor.rsplit("|", 1)
        value, last_id = float(value_text), int(id_text)
    except ValueError as exc:
        raise ApiError(400, {"issues": [_cursor_issue(cursor)], "name": "ZodError"}) from exc
    return or_(metric < value, and_(metric == value, Model.id < last_id))


def _cursor_issue(cursor: str) -> dict[str, Any]:
    return {"code": "custom", "message": f"Invalid cursor {cursor!r}", "path": ["cursor"]}


def _cursor_of(model: Model, by_metric: bool, metric_name: str) -> str:
    if not by_metric:
        return str(model.id)
    stats = (model.raw or {}).get("stats")
    value = stats.get(metric_name) if isinstance(stats, dict) else None
    number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
    shown = str(int(number)) if number.is_integer() else repr(number)
    return f"{shown}|{model.id}"


def _with_children(statement: Select[Model]) -> Select[Model]:
    """Load creators, versions, files, hashes and images in a few queries instead of one per row."""
    versions = selectinload(Model.versions)
    return statement.options(
        selectinload(Model.creator),
        versions.selectinload(ModelVersion.files).selectinload(VersionFile.hashes),
        versions.selectinload(ModelVersion.images),
    )


def load_models(session: Session, ids: Sequence[int]) -> dict[int, Model]:
    """Models by id with everything `model_to_api` renders."""
    if not ids:
        return {}
    statement = _with_children(select(Model).where(Model.id.in_(list(ids))))
    return {m.id: m for m in session.scalars(statement).unique()}
