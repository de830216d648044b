"""`modeldex download TARGET...`: fetch CivitAI files, verify them, sort them into the library.

Each requested file becomes a durable job in the index database; this command enqueues the jobs and runs them (at
most `download_concurrency` at once, across every modeldex process). Ctrl-C or a kill leaves the job and its
`.part` file: the same command again, `modeldex jobs --run`, or the daemon finishes it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from modeldex.cli.common import echo_json_line, err_console, open_database, user_errors
from modeldex.config import Settings, load_settings
from modeldex.errors import ModeldexError, NotFoundError, UsageError
from modeldex.hub.job_runner import RunObserver

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID
    from sqlalchemy.orm import Session, sessionmaker

    from modeldex.hub.api_models import ModelVersion, VersionFile
    from modeldex.hub.client import CivitaiClient
    from modeldex.hub.download_job import DownloadRequest
    from modeldex.hub.job_runner import JobRunner
    from modeldex.hub.jobs import JobInfo, JobQueue
    from modeldex.hub.targets import Target

LOCKS_DIR = "locks"
LEASE_SECONDS = 60.0
SORT_LOCK_WAIT = 600.0
"""Seconds a finished download waits for a running `modeldex sort` before giving up on sorting."""


@click.command()
@click.argument("targets", nargs=-1, required=True, metavar="TARGET...")
@click.option(
    "--file-type", metavar="TYPE", help="Which file of the version: Model, Pruned Model, VAE, Config, Training Data..."
)
@click.option("--format", "file_format", metavar="FORMAT", help="File format: SafeTensor, PickleTensor, GGUF...")
@click.option("--fp", metavar="PRECISION", help="Precision: fp16, fp32, bf16...")
@click.option("--size", "file_size", type=click.Choice(["full", "pruned"]), help="Full or pruned model file.")
@click.option(
    "--into",
    "library",
    type=click.Path(path_type=Path, file_okay=False),
    metavar="LIBRARY",
    help="The WebUI or ComfyUI folder to sort into (default: sort.library; none: save in the current folder).",
)
@click.option("--no-preview", is_flag=True, help="Do not fetch the .preview.png sidecar.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per requested file (JSON Lines).")
@user_errors
def download(
    targets: tuple[str, ...],
    file_type: str | None,
    file_format: str | None,
    fp: str | None,
    file_size: str | None,
    library: Path | None,
    no_preview: bool,
    as_json: bool,
) -> None:
    """Download TARGET... from CivitAI, verify size and SHA256, and sort each file into the library.

    TARGET is a model id (its latest version), v:VERSION_ID, a civitai.com or civitai.red model or download link,
    or an AIR urn (urn:air:sdxl:lora:civitai:MODEL@VERSION). The version's primary file is fetched unless
    --file-type, --format, --fp or --size pick another. The file is identified and sorted (A1111 layout unless
    configured), recorded in the index, and gets .civitai.info and .preview.png sidecars.

    Exit status: 0 every file in place and verified, 1 a download or verification failed, 2 usage,
    3 login, API key or early access needed, 4 not found.
    """
    settings = load_settings()
    from modeldex.hub.targets import parse_target

    parsed = [parse_target(text, base_url=settings.civitai_url) for text in targets]
    destination, sort = _destination(settings, library)
    sessions = open_database(settings)
    failures: list[tuple[str, ModeldexError]] = []
    with civitai_client(settings) as client:
        requests: list[DownloadRequest] = []
        for text, target in zip(targets, parsed, strict=True):
            try:
                requests.append(
                    _resolve(
                        client,
                        target,
                        destination,
                        sort=sort,
                        settings=settings,
                        file_type=file_type,
                        file_format=file_format,
                        fp=fp,
                        size=file_size,
                    )
                )
            except ModeldexError as exc:
                failures.append((text, exc))
                _report_error(exc, prefix=f"{text}: " if len(targets) > 1 else "")
        queue = job_queue(settings, sessions)
        to_fetch = []
        for request in requests:
            present = _already_present(sessions, request)
            if present is None:
                to_fetch.append(request)
            elif as_json:
                echo_json_line({"job": None, "state": "done", "action": "present", "path": str(present)})
            else:
                click.echo(f"already downloaded: {present} (same SHA256 as CivitAI's file)")
        ids = _enqueue(queue, to_fetch)
        if ids:
            names = {job_id: request.describe() for job_id, request in zip(ids, to_fetch, strict=True)}
            with progress_bars(names) as observer:
                runner = make_runner(settings, sessions, client, queue, observer=observer, previews=not no_preview)
                try:
                    outcome = runner.run(ids)
                except KeyboardInterrupt:
                    interrupted()
            jobs = outcome.jobs
        else:
            jobs = []
    codes = [exc.exit_code for _, exc in failures] + print_job_outcomes(jobs, as_json)
    if codes:
        sys.exit(codes[0])


def print_job_outcomes(jobs: list[JobInfo], as_json: bool) -> list[int]:
    """Print what became of each job (stdout; failures on stderr); returns the exit codes of those not done."""
    codes: list[int] = []
    for job in jobs:
        if as_json:
            echo_json_line({"job": job.id, "state": job.state, "error": job.error, **(job.result or {})})
        if job.state == "done":
            if not as_json:
                _print_done(job)
            continue
        codes.append(_exit_code(job))
        _report_job_failure(job)
    return codes


# --- shared with `modeldex jobs` ----------------------------------------------------------------------------------------


def interrupted() -> NoReturn:
    """Ctrl-C: the jobs went back to the queue with their `.part` files; say how to resume, exit 130."""
    err_console.print(
        "modeldex: interrupted: the downloads stay queued with what they fetched; run the same command again "
        "(or `modeldex jobs --run`) to resume them",
        markup=False,
        soft_wrap=True,
    )
    sys.exit(130)


def civitai_client(settings: Settings) -> CivitaiClient:
    """The CivitAI client the settings describe (base URL, API key, rate); proxies from the environment."""
    from modeldex.hub.client import CivitaiClient

    return CivitaiClient(
        settings.civitai_url, settings.civitai_api_key, requests_per_second=settings.requests_per_second
    )


def job_queue(settings: Settings, sessions: sessionmaker[Session]) -> JobQueue:
    """The job queue in the index, with lock files in the data folder (a killed download is taken over at once)."""
    from modeldex.hub.jobs import JobQueue

    return JobQueue(sessions, lock_dir=settings.data_dir / LOCKS_DIR)


def make_runner(
    settings: Settings,
    sessions: sessionmaker[Session],
    client: CivitaiClient,
    queue: JobQueue,
    *,
    observer: RunObserver | None = None,
    previews: bool = True,
) -> JobRunner:
    """A runner for download jobs under the global `download_concurrency` limit."""
    from modeldex.db.sort_journal import SqlJournal
    from modeldex.hub.download_job import KIND, DownloadHandler
    from modeldex.hub.job_runner import JobRunner

    handler = DownloadHandler(
        client.http,
        sessions,
        SqlJournal(sessions),
        headers_for=client.auth_headers_for,
        redact=client.redact,
        retry=client.retry,
        sort_lock=lambda: _sort_lock(settings),
        previews=previews,
    )
    return JobRunner(
        queue,
        {KIND: handler},
        concurrency=settings.download_concurrency,
        lease_seconds=LEASE_SECONDS,
        observer=observer,
    )


@contextmanager
def _sort_lock(settings: Settings) -> Iterator[None]:
    """The lock `modeldex sort` holds: a download's sort waits for a running sort instead of racing it."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the journal still records everything
        yield
        return
    from modeldex.cli.sort_cmd import LOCK_NAME
    from modeldex.errors import SortError

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / LOCK_NAME
    deadline = time.monotonic() + SORT_LOCK_WAIT
    with open(path, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SortError(
                        f"another modeldex sort holds {path}; the download was verified but not sorted"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def progress_bars(names: dict[int, str]) -> Iterator[RunObserver]:
    """Rich progress bars on stderr (a terminal only), one per job: bytes, speed, ETA, then what it is doing."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[phase]}", markup=False),
        console=err_console,
        disable=not err_console.is_terminal,
    )
    observer = _Bars(progress, names)
    with progress:
        yield observer


class _Bars(RunObserver):
    def __init__(self, bars: Progress, names: dict[int, str]) -> None:
        self.bars = bars
        self.names = names
        self.tasks: dict[int, TaskID] = {}

    def _task(self, job: JobInfo) -> TaskID:
        if job.id not in self.tasks:
            name = self.names.get(job.id) or str(job.payload.get("file_name") or f"job {job.id}")
            self.tasks[job.id] = self.bars.add_task(name, total=job.bytes_total, phase="")
        return self.tasks[job.id]

    def started(self, job: JobInfo) -> None:
        self.bars.update(self._task(job), phase="starting", completed=job.bytes_done)

    def progress(self, job: JobInfo, done: int, total: int | None, phase: str) -> None:
        self.bars.update(self._task(job), completed=done, total=total, phase=phase)

    def finished(self, job: JobInfo) -> None:
        task = self._task(job)
        if job.state == "done":
            total = job.bytes_total or job.bytes_done or 1
            self.bars.update(task, completed=total, total=total, phase="done")
        else:
            self.bars.update(task, phase=job.state)

    def waiting(self, jobs: list[JobInfo]) -> None:
        for job in jobs:
            phase = "waiting (another modeldex is running it)" if job.state == "running" else "waiting"
            self.bars.update(self._task(job), completed=job.bytes_done, total=job.bytes_total, phase=phase)


# --- resolving targets ----------------------------------------------------------------------------------------------


def _destination(settings: Settings, library: Path | None) -> tuple[Path, bool]:
    """Where files go and whether that is a library to sort into."""
    root = library if library is not None else settings.sort.library
    if root is None:
        return Path.cwd(), False
    root = root.expanduser()
    if not root.is_dir():
        raise UsageError(f"the library folder {root} does not exist (it must be the WebUI or ComfyUI folder)")
    return root, True


def _resolve(
    client: CivitaiClient,
    target: Target,
    destination: Path,
    *,
    sort: bool,
    settings: Settings,
    file_type: str | None,
    file_format: str | None,
    fp: str | None,
    size: str | None,
) -> DownloadRequest:
    from modeldex.hub.download_job import request_for
    from modeldex.identify.layouts import LayoutOptions, check_layout

    version = _version(client, target)
    wanted = {
        "type": file_type or target.file_type,
        "format": file_format or target.format,
        "fp": fp or target.fp,
        "size": size or target.size,
    }
    file = version.pick_file(**wanted)
    if file is None:
        raise NotFoundError(_no_file_message(version, wanted))
    layout = LayoutOptions(
        check_layout(settings.sort.layout), by_base=settings.sort.by_base, lycoris_dir=settings.sort.lycoris_dir
    )
    url = _file_url(client, version, file)
    return request_for(version, file, url, destination, sort=sort, layout=layout)


def _version(client: CivitaiClient, target: Target) -> ModelVersion:
    if target.version_id is not None:
        return client.get_version(target.version_id)
    assert target.model_id is not None
    model = client.get_model(target.model_id)
    latest = model.latest_version()
    if latest is None:
        raise NotFoundError(f"model {model.id} ({model.name}) has no published version to download")
    # The full version answer carries modelId and the model's name and type, which a nested version lacks.
    return client.get_version(latest.id)


def _file_url(client: CivitaiClient, version: ModelVersion, file: VersionFile) -> str:
    """The download link on the configured host, with the filters that pick exactly this file."""
    if file.primary:
        return client.download_url(version.id)
    return client.download_url(
        version.id, type=file.type, format=file.metadata.format, fp=file.metadata.fp, size=file.metadata.size
    )


def _no_file_message(version: ModelVersion, wanted: dict[str, str | None]) -> str:
    label = f"version {version.id} ({version.name})" if version.name else f"version {version.id}"
    if not version.files:
        return f"{label} has no files to download (archived or taken down on CivitAI)"
    asked = ", ".join(f"{k}={v}" for k, v in wanted.items() if v)
    have = "; ".join(
        " ".join(x for x in (f.type, f.metadata.format, f.metadata.fp, f.metadata.size) if x) or f.name
        for f in version.files
    )
    return f"{label} has no file with {asked} (it has: {have})"


# --- the queue and the output ---------------------------------------------------------------------------------------


def _already_present(sessions: sessionmaker[Session], request: DownloadRequest) -> Path | None:
    """A file under the destination that the index knows has this SHA256 and that is unchanged since it was hashed.

    Running the same `modeldex download` again then costs no transfer (a changed or moved file is fetched again).
    """
    import os

    from sqlalchemy import select

    from modeldex.db.models import LocalFile
    from modeldex.hub.download_job import STAGING_DIR

    if not request.sha256:
        return None
    root = os.path.abspath(request.destination) + os.sep
    with sessions() as session:
        rows = session.execute(
            select(LocalFile.path, LocalFile.size, LocalFile.mtime_ns).where(LocalFile.sha256 == request.sha256.lower())
        ).all()
    for path, size, mtime_ns in rows:
        if not path.startswith(root) or f"{os.sep}{STAGING_DIR}{os.sep}" in path:
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        if (st.st_size, st.st_mtime_ns) == (size, mtime_ns):
            return Path(path)
    return None


def _enqueue(queue: JobQueue, requests: list[DownloadRequest]) -> list[int]:
    from modeldex.hub.download_job import KIND

    ids: list[int] = []
    for request in requests:
        job, _new = queue.enqueue(KIND, request.to_payload(), key=request.key)
        if job.id not in ids and queue.is_held(job):
            err_console.print(
                f"modeldex: {request.describe()}: already being downloaded (job {job.id}); waiting for it",
                markup=False,
                soft_wrap=True,
            )
        ids.append(job.id)
    return ids


def _exit_code(job: JobInfo) -> int:
    code = (job.result or {}).get("exit_code")
    return code if isinstance(code, int) and code > 0 else 1


def _report_error(exc: ModeldexError, prefix: str = "") -> None:
    from rich.markup import escape

    err_console.print(
        f"[bold red]modeldex: {escape(exc.title)}:[/] {escape(prefix + exc.message)}", markup=True, soft_wrap=True
    )


def _report_job_failure(job: JobInfo) -> None:
    from rich.markup import escape

    name = job.payload.get("file_name") or f"job {job.id}"
    if job.state == "failed":
        title = (job.result or {}).get("title") or "download"
        message = f"{name}: {job.error}"
    else:
        title = "download"
        message = f"{name}: {job.state} (job {job.id}; `modeldex jobs --run` finishes it)"
    err_console.print(f"[bold red]modeldex: {escape(str(title))}:[/] {escape(message)}", markup=True, soft_wrap=True)


def _print_done(job: JobInfo) -> None:
    result: dict[str, Any] = job.result or {}
    action = result.get("action")
    path = result.get("path")
    what = f"{result.get('kind')} ({result.get('base')})"
    if action == "duplicate":
        click.echo(f"already in the library: {path} · {what}")
    elif action == "kept":
        click.echo(f"saved, not sorted: {path} · {result.get('reason')}")
    else:
        click.echo(f"{'sorted' if action == 'move' else 'saved'}: {path} · {what}")
    if result.get("usage"):
        click.echo(f"  use: {result['usage']}")
    for note in result.get("notes") or []:
        err_console.print(f"modeldex: note: {note}", markup=False, soft_wrap=True)
