"""The FastAPI app of `modeldex serve`: CivitAI's API v1 and download endpoint, read-only, over one database."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from modeldex import __version__
from modeldex.hub.serve import routes_download, routes_images, routes_listing, routes_models
from modeldex.hub.serve.deps import origin
from modeldex.hub.serve.params import ApiError


def create_app(session_factory: sessionmaker[Session], *, public_url: str | None = None) -> FastAPI:
    """Build the app over `session_factory` (ideally read-only: see `modeldex.hub.serve.readonly`).

    `public_url` is the origin written into `downloadUrl`, `nextPage` and `link` fields (e.g. the LAN address
    other machines use); by default each answer uses the origin its request came to.
    """
    app = FastAPI(
        title="modeldex serve",
        version=__version__,
        description="A read-only CivitAI-compatible API (v1) over a modeldex index.",
    )
    app.state.session_factory = session_factory
    app.state.public_url = public_url
    for module in (routes_models, routes_images, routes_listing, routes_download):
        app.include_router(module.router)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_api_route("/", _root, methods=["GET"], include_in_schema=False)
    return app


def _root(request: Request) -> dict[str, Any]:
    base = origin(request)
    return {"name": "modeldex serve", "version": __version__, "api": f"{base}/api/v1", "site": base}


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body, status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    # Unknown paths and wrong methods answer in CivitAI's shape too.
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    issues = [{"code": e.get("type"), "message": e.get("msg"), "path": list(e.get("loc", ()))} for e in exc.errors()]
    return JSONResponse({"error": {"issues": issues, "name": "ZodError"}}, status_code=400)
