"""What every command shares: settings resolution, user-facing error rendering, the database session."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click
from rich.console import Console

from modeldex.errors import ModeldexError

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
            err_console.print(f"[bold red]modeldex: {exc.title}:[/] {exc.message}", markup=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("modeldex: interrupted")
            sys.exit(130)

    return wrapper


def echo_json_line(obj: object) -> None:
    """One JSON object per line on stdout, UTF-8, names in any script kept as they are."""
    import json

    click.echo(json.dumps(obj, ensure_ascii=False))
