"""What every route gets from the app: a read session on the served database and the public origin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from modeldex.hub.serve.params import ApiError


def session(request: Request) -> Iterator[Session]:
    """A session for this request, rolled back at the end: the server never writes."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    with factory() as sess:
        try:
            yield sess
        finally:
            sess.rollback()


def origin(request: Request) -> str:
    """Scheme, host and port clients reach this server at: the configured public URL, else the request's own."""
    configured: str | None = request.app.state.public_url
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/")


def path_id(value: str, what: str = "id") -> int:
    """A numeric id from the URL path; anything else is CivitAI's 400."""
    text = value.strip()
    if not text.isdigit() or int(text) == 0:
        raise ApiError(400, f"Invalid {what}: {value!r}")
    return int(text)


DbSession = Annotated[Session, Depends(session)]
Origin = Annotated[str, Depends(origin)]
