"""What every command shares: settings resolution, user-facing error rendering, the database session."""

from __future__ import annotations

import functools
import sys
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from modeldex.errors import ModeldexError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from modeldex.config import Settings

P = ParamSpec("P")
R = TypeVar("R")

err_console = Console(stderr=True, highlight=False)


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a `ModeldexError` into one line on stderr and its exit status, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ModeldexError as exc:
            # Escaped: messages hold paths and TOML table names like "[sort]" that Rich would eat as markup.
            # soft_wrap: the error stays one line however narrow the terminal, so scripts can grep it.
            # terminal_text: a path in the message may hold a newline or an escape sequence of a hostile name.
            message = escape(terminal_text(exc.message))
            err_console.print(f"[bold red]modeldex: {escape(exc.title)}:[/] {message}", markup=True, soft_wrap=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("modeldex: interrupted")
            sys.exit(130)

    return wrapper


_CONTROL_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def utf8_text(text: str) -> str:
    """A path or name as valid UTF-8: bytes that are not UTF-8 (surrogate escapes) become visible `\\x..` escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def terminal_text(text: str) -> str:
    """A path or name made safe for a line of human output.

    Besides `utf8_text`, control characters are escaped (`\\n`, `\\x1b`): a newline in a file name must not split
    a line of a table or a plan, and an escape sequence in one must not drive the terminal.
    """
    text = utf8_text(text)
    if text.isprintable():
        return text
    return "".join(
        _CONTROL_ESCAPES.get(ch, f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp")
        else ch
        for ch in text
    )


def echo_json_line(obj: object) -> None:
    """One JSON object per line on stdout, UTF-8, names in any script kept as they are."""
    import json

    click.echo(json.dumps(obj, ensure_ascii=False))


def open_database(settings: Settings) -> sessionmaker[Session]:
    """Open the index database in force, upgraded to the newest schema, and return its session factory.

    Raises `DatabaseError` (one line for the user) when it cannot be opened or migrated.
    """
    # Imported here: SQLAlchemy and Alembic cost about 0.1 s, which commands without the index should not pay.
    from modeldex.db.engine import make_engine, session_factory
    from modeldex.db.migrate import ensure_schema

    engine = make_engine(settings.resolved_db_url)
    ensure_schema(engine)
    return session_factory(engine)
