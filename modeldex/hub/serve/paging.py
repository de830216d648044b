"""Paging as CivitAI does it: `page` (1-based, at most 1000 items deep) or an opaque `cursor`.

Page mode answers `metadata {currentPage, pageSize, totalItems, totalPages, nextPage}`; cursor mode
`metadata {nextCursor, nextPage}`; a key whose value would be null is left out, so an empty answer is
`{"items": [], "metadata": {}}`. `nextPage` is the request's own URL with `page` or `cursor` advanced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from modeldex.hub.serve.params import ApiError

MAX_PAGED_ITEMS = 1000
"""CivitAI refuses `page * limit` above this with a 429 and asks for cursors."""


@dataclass(frozen=True)
class PageRequest:
    """Where the caller wants to read from: `page` mode when a page is given without a cursor."""

    limit: int
    page: int | None
    cursor: str | None

    @property
    def paged(self) -> bool:
        return self.page is not None and self.cursor is None

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit if self.page is not None and self.cursor is None else 0


def check_page_depth(request: PageRequest) -> None:
    """CivitAI's guard against deep page-mode reads (a 429, though nothing is rate limited)."""
    if request.paged and request.page is not None and request.page * request.limit > MAX_PAGED_ITEMS:
        raise ApiError(429, "You've requested too many pages, please use cursors instead")


def with_params(origin: str, path: str, query: QueryParams, **changes: object) -> str:
    """The URL of `path` on `origin` with the request's query, `changes` replacing or adding parameters."""
    kept = [(k, v) for k, v in query.multi_items() if k not in changes]
    added = [(k, str(v)) for k, v in changes.items() if v is not None]
    return f"{origin}{path}?{urlencode(kept + added)}"


def cursor_metadata(origin: str, path: str, query: QueryParams, next_cursor: str | None) -> dict[str, Any]:
    """Metadata of a cursor-mode answer."""
    if next_cursor is None:
        return {}
    return {"nextCursor": next_cursor, "nextPage": with_params(origin, path, query, cursor=next_cursor, page=None)}


def page_metadata(
    origin: str, path: str, query: QueryParams, request: PageRequest, total: int | None
) -> dict[str, Any]:
    """Metadata of a page-mode answer; `total` None when counting is not offered (then no totals are given)."""
    page = request.page or 1
    meta: dict[str, Any] = {}
    if total is not None:
        meta["totalItems"] = total
    meta["currentPage"] = page
    meta["pageSize"] = request.limit
    if total is not None:
        meta["totalPages"] = math.ceil(total / request.limit) if request.limit else 0
    more = total is not None and request.limit > 0 and page * request.limit < total
    if more:
        meta["nextPage"] = with_params(origin, path, query, page=page + 1)
    if page > 1:
        meta["prevPage"] = with_params(origin, path, query, page=page - 1)
    return meta
