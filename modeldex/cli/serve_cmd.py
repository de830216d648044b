"""`modeldex serve`: a read-only CivitAI-compatible API over the index (or over a catalogue file)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from modeldex.cli.common import err_console, user_errors
from modeldex.config import load_settings
from modeldex.errors import ModeldexError, UsageError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

BUILTIN = "builtin"
"""What `--catalog` means when given without a file: the fixture catalogue shipped with modeldex."""


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 serves every interface (a LAN mirror).",
)
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free one).",
)
@click.option(
    "--db", "db_url", metavar="URL", help="Serve this database (SQLAlchemy URL) instead of the index in force."
)
@click.option(
    "--catalog",
    metavar="FILE",
    is_flag=False,
    flag_value=BUILTIN,
    default=None,
    help='Serve a file of {"items": [...]} in the shape of CivitAI\'s /api/v1/models answer instead of a database '
    "(loaded into a private temporary database). Without FILE: the fixture catalogue shipped with modeldex.",
)
@click.option(
    "--public-url",
    metavar="URL",
    help="Origin written into downloadUrl and nextPage links (default: the address each request came to).",
)
@user_errors
def serve(host: str, port: int, db_url: str | None, catalog: str | None, public_url: str | None) -> None:
    """Answer CivitAI's API v1 (models, versions, by-hash, images, creators, tags, enums) and its download
    endpoint from the local index, read-only.

    Point any tool that takes a CivitAI base URL at the printed address (for modeldex itself:
    MODELDEX_CIVITAI_URL=http://127.0.0.1:8765). Downloads are served from the local files linked to each
    version, with byte ranges. Stop with Ctrl-C.
    """
    if db_url is not None and catalog is not None:
        raise UsageError("give --db or --catalog, not both")
    try:
        from modeldex.hub.serve import create_app
        from modeldex.hub.serve.server import bind_socket, run_server, url_of
    except ImportError as exc:
        raise ModeldexError(
            f"modeldex serve needs FastAPI and uvicorn ({exc.name} is missing): pip install 'modeldex[serve]'",
            title="serve",
        ) from exc
    with tempfile.TemporaryDirectory(prefix="modeldex-serve-") as scratch:
        factory, what = _database(db_url, catalog, Path(scratch))
        try:
            sock = bind_socket(host, port)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        base = url_of(sock)
        err_console.print(
            f"modeldex: serving {what} read-only at {base} (CivitAI API under {base}/api/v1); Ctrl-C stops",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        try:
            run_server(create_app(factory, public_url=public_url), sock)
        except KeyboardInterrupt:
            # uvicorn shuts down cleanly on Ctrl-C and then re-raises it: for a server that is the normal end.
            err_console.print("modeldex: serve stopped", markup=False, highlight=False)


def _database(db_url: str | None, catalog: str | None, scratch: Path) -> tuple[sessionmaker[Session], str]:
    """The session factory to serve and a description of it for the start-up line."""
    from modeldex.db.engine import make_engine
    from modeldex.db.migrate import ensure_schema
    from modeldex.hub.serve.catalog import CATALOG_DB_NAME, builtin_catalog_path, load_catalog, read_catalog
    from modeldex.hub.serve.readonly import read_only_session_factory

    if catalog is not None:
        path = builtin_catalog_path() if catalog == BUILTIN else Path(catalog).expanduser()
        items = read_catalog(path)
        factory = load_catalog(items, scratch / CATALOG_DB_NAME)
        engine = factory.kw["bind"]
        return read_only_session_factory(engine), f"{len(items)} models from {path}"
    settings = load_settings(db_url=db_url)
    engine = make_engine(settings.resolved_db_url)
    ensure_schema(engine)
    shown = engine.url.render_as_string(hide_password=True)
    return read_only_session_factory(engine), f"the index {shown}"
