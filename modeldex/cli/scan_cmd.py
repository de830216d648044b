"""`modeldex scan`: identify and hash files and record them in the index (unchanged files come from the cache)."""

from __future__ import annotations

import signal
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from modeldex.cli.common import echo_json_line, err_console, open_database, terminal_text, user_errors, utf8_text
from modeldex.config import load_settings
from modeldex.db.scanning import ScanObserver, ScanSummary
from modeldex.db.scanning import scan as scan_paths
from modeldex.errors import UsageError

if TYPE_CHECKING:
    from types import FrameType

    from rich.progress import Progress, TaskID

    from modeldex.identify.scanning import ScanRecord

MANY_FILES = 50
"""Above this many files to examine, the progress bar is drawn even when stderr is not a terminal."""
ERRORS_SHOWN = 20


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file (JSON Lines).")
@click.option("--autov3", is_flag=True, help="Compute AutoV3 for every safetensors file, not only adapters.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Files identified and hashed at once (default: the hash_workers setting).",
)
@user_errors
def scan(paths: tuple[Path, ...], as_json: bool, autov3: bool, jobs: int | None) -> None:
    """Identify and hash the files under PATH... (default: the configured library) and record them in the index.

    Files whose path, size, mtime and inode are unchanged since the last scan are not read again. Rows of files
    that have disappeared from a scanned folder are removed. Per-file problems are reported in the `error` field;
    the exit status is 0 unless the command line is wrong.
    """
    settings = load_settings()
    if not paths:
        if settings.sort.library is None:
            raise UsageError("no PATH given and no library configured (set sort.library in the config file)")
        paths = (settings.sort.library,)
    session_factory = open_database(settings)
    observer = _JsonObserver() if as_json else _HumanObserver()
    stop = threading.Event()
    try:
        with _stop_on_interrupt(stop):
            summary = scan_paths(
                list(paths),
                session_factory,
                jobs=jobs or settings.hash_workers,
                autov3=autov3,
                observer=observer,
                stop=stop,
            )
    except KeyboardInterrupt:
        if isinstance(observer, _HumanObserver):
            observer.close()
        err_console.print(
            "modeldex: interrupted: the files finished so far are in the index; scan again to go on "
            "(they are not read again)",
            markup=False,
            soft_wrap=True,
        )
        sys.exit(130)
    finally:
        if isinstance(observer, _HumanObserver):
            observer.close()
    if not as_json:
        assert isinstance(observer, _HumanObserver)
        _print_summary(summary, observer)


@contextmanager
def _stop_on_interrupt(stop: threading.Event) -> Iterator[None]:
    """On Ctrl-C, tell the hashing threads to stop before the KeyboardInterrupt waits for them to finish."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupted(signum: int, frame: FrameType | None) -> None:
        stop.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _JsonObserver(ScanObserver):
    def record(self, record: ScanRecord) -> None:
        line = record.to_json()
        line["path"] = utf8_text(line["path"])  # a name that is not UTF-8 shows its bytes as \x.. escapes
        echo_json_line(line)


class _HumanObserver(ScanObserver):
    """A progress bar by bytes on stderr; keeps the counts the summary needs."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.errors: list[tuple[str, str]] = []
        self.unsafe: list[tuple[str, str]] = []
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def planned(self, files: int, to_examine: int, bytes_to_read: int) -> None:
        if to_examine == 0 or not (err_console.is_terminal or to_examine >= MANY_FILES):
            return
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("scanning"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[files]}"),
            TimeRemainingColumn(),
            console=err_console,
            transient=err_console.is_terminal,
        )
        self._task = self._progress.add_task("scan", total=max(bytes_to_read, 1), files=f"0/{to_examine} files")
        self._to_examine = to_examine
        self._examined = 0
        self._progress.start()

    def record(self, record: ScanRecord) -> None:
        self.kinds[record.identification.kind] += 1
        if record.error is not None:
            self.errors.append((record.identification.path, record.error))
        if record.identification.unsafe:
            names = ", ".join(record.identification.unsafe_globals) or "globals outside the allow-list"
            self.unsafe.append((record.identification.path, names))
        if self._progress is not None and self._task is not None and not record.cached:
            self._examined += 1
            size = getattr(record.target, "size", 0) if record.hashes is not None else 0
            self._progress.update(self._task, advance=size, files=f"{self._examined}/{self._to_examine} files")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _print_summary(summary: ScanSummary, observer: _HumanObserver) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    table = Table(title="scan", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("files", str(summary.files))
    table.add_row("unchanged (from the index)", str(summary.cached))
    table.add_row("identified and hashed", str(summary.examined))
    table.add_row("hashed", _size(summary.bytes_hashed))
    table.add_row("with errors", str(summary.errors))
    table.add_row("removed (file gone)", str(len(summary.vanished)))
    table.add_row("time", f"{summary.seconds:.2f} s")
    console.print(table)
    if observer.kinds:
        kinds = Table(show_header=True, box=None)
        kinds.add_column("kind")
        kinds.add_column("files", justify="right")
        for kind, count in sorted(observer.kinds.items(), key=lambda kv: (-kv[1], kv[0])):
            kinds.add_row(kind, str(count))
        console.print(kinds)
    if observer.unsafe:
        console.print(f"unsafe pickles, never loaded ({len(observer.unsafe)}):", style="bold red")
        for path, names in observer.unsafe[:ERRORS_SHOWN]:
            console.print(f"  {terminal_text(path)}: {names}", markup=False, soft_wrap=True)
        if len(observer.unsafe) > ERRORS_SHOWN:
            console.print(f"  ... and {len(observer.unsafe) - ERRORS_SHOWN} more (see --json)")
    if observer.errors:
        console.print(f"errors ({len(observer.errors)}):", style="bold")
        for path, error in observer.errors[:ERRORS_SHOWN]:
            console.print(f"  {terminal_text(path)}: {terminal_text(error)}", markup=False, soft_wrap=True)
        if len(observer.errors) > ERRORS_SHOWN:
            console.print(f"  ... and {len(observer.errors) - ERRORS_SHOWN} more (see --json)")
    for path in summary.unrecorded:
        console.print(
            f"not recorded in the index (its name is not valid UTF-8; rename it): {terminal_text(path)}",
            markup=False,
            soft_wrap=True,
        )
    for path in summary.vanished:
        console.print(f"removed from the index (gone): {terminal_text(path)}", markup=False, soft_wrap=True)


def _size(nbytes: int) -> str:
    size = float(nbytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
