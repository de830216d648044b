"""`modeldex identify PATH... [--recursive] [--json]`: tell what model files are, from their tensor keys."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from modeldex.cli.common import echo_json_line, terminal_text, user_errors, utf8_text
from modeldex.identify.bulk import INLINE_BELOW, identify_many
from modeldex.identify.identify import iter_targets
from modeldex.identify.records import Identification
from modeldex.identify.sorting.usage import identify_hint

_PIPE_WIDTH = 200


def _problem(ident: Identification) -> Text:
    if ident.unsafe:
        return Text("UNSAFE: " + ", ".join(ident.unsafe_globals), style="bold red")
    if ident.error:
        return Text(terminal_text(ident.error), style="red")
    return Text("")


_NARROW = 120
"""Below this many columns the nine-column table leaves a few characters per cell: a three-column one is shown."""


def _compact_table(rows: list[Identification]) -> Table:
    """path | what it is (kind, base, variant/algo, format) | the problem, or how to use it."""
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False, expand=True)
    table.add_column("path", overflow="fold", ratio=5)
    table.add_column("what", overflow="fold", ratio=3)
    table.add_column("problem / use", overflow="fold", ratio=4)
    for ident in rows:
        variant = ident.variant if ident.variant != "normal" else None
        algo = ident.algo if ident.algo != ident.kind else None
        what = " ".join(x for x in (ident.kind, ident.base, variant, algo) if x and x != "unknown")
        problem = _problem(ident)
        table.add_row(
            Text(terminal_text(ident.path)),
            Text(f"{what or 'unknown'} ({ident.format})", style="dim" if ident.kind == "unknown" else ""),
            problem if problem.plain else Text(terminal_text(identify_hint(ident) or "")),
        )
    return table


def _table(rows: list[Identification]) -> Table:
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("path", overflow="fold")
    for name in ("kind", "base", "variant", "algo", "format"):
        table.add_column(name, no_wrap=True)
    table.add_column("problem", overflow="fold")
    table.add_column("use", overflow="fold")
    for ident in rows:
        table.add_row(
            Text(terminal_text(ident.path)),
            Text(ident.kind, style="dim" if ident.kind == "unknown" else ""),
            ident.base,
            ident.variant or "-",
            ident.algo or "-",
            ident.format,
            _problem(ident),
            Text(terminal_text(identify_hint(ident) or "")),
        )
    return table


def _summary(rows: list[Identification]) -> str:
    kinds = Counter(r.kind for r in rows)
    parts = [f"{n} {kind}" for kind, n in kinds.most_common()]
    unsafe = sum(r.unsafe for r in rows)
    errors = sum(r.error is not None for r in rows)
    tail = []
    if unsafe:
        tail.append(f"{unsafe} unsafe")
    if errors:
        tail.append(f"{errors} unreadable")
    noun = "path" if len(rows) == 1 else "paths"
    return f"{len(rows)} {noun}: " + ", ".join(parts) + (f"; {', '.join(tail)}" if tail else "")


def _targets(args: tuple[str, ...], recursive: bool) -> Iterator[tuple[Path, str]]:
    """Each target with the path shown for it: spelled as the user typed it (`./lib/x.safetensors`)."""
    for arg in args:
        given = Path(arg)
        for target in iter_targets([given], recursive):
            shown = arg if target == given else os.path.join(arg, os.path.relpath(target, given))
            yield target, utf8_text(shown)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-r", "--recursive", is_flag=True, help="Identify every file under the folders given.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per path (JSON Lines).")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Processes identifying files at once when there are many (default: the hash_workers setting).",
)
@user_errors
def identify(paths: tuple[str, ...], recursive: bool, as_json: bool, jobs: int | None) -> None:
    """Tell what model files are (kind, base model, variant, algorithm) from their tensor keys and shapes.

    Nothing is loaded or executed: only headers are read, and pickles that reference code outside the
    allow-list are reported as UNSAFE. A path that cannot be read is reported with its error; the exit
    status is 0 whenever every path was processed.
    """
    targets = list(_targets(paths, recursive))
    if jobs is None:
        # Read the settings only when they can matter: a few files never start a pool, and neither pydantic's
        # import time nor a broken config file should stand between them and their answer.
        if len(targets) >= INLINE_BELOW:
            from modeldex.config import load_settings

            jobs = load_settings().hash_workers
        else:
            jobs = 1
    results = identify_many(targets, jobs=jobs)
    if as_json:
        for ident in results:
            echo_json_line(ident.to_json())
        return
    rows = list(results)
    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:
        # Piped or redirected: no screen to fit, so keep every cell whole rather than cut it at 80 columns.
        console = Console(highlight=False, soft_wrap=False, width=max(console.width, _PIPE_WIDTH))
    if rows:
        console.print(_table(rows) if console.width >= _NARROW else _compact_table(rows))
    console.print(_summary(rows), style="dim")
