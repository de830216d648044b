"""`modeldex jobs`: the durable job queue (downloads): list, run what is left, cancel, retry, clear."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from modeldex.cli.common import echo_json_line, open_database, user_errors
from modeldex.cli.download_cmd import (
    civitai_client,
    interrupted,
    job_queue,
    make_runner,
    print_job_outcomes,
    progress_bars,
)
from modeldex.config import Settings, load_settings
from modeldex.errors import UsageError
from modeldex.hub.jobs import ACTIVE_STATES, JobInfo, JobQueue

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

STATES = ("queued", "running", "done", "failed", "cancelled")


@click.command()
@click.option(
    "--state", "states", multiple=True, type=click.Choice(STATES), help="Only jobs in this state (repeatable)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job (JSON Lines).")
@click.option("--run", "run_jobs", is_flag=True, help="Run every queued or interrupted download now.")
@click.option("--cancel", "cancel_id", type=int, metavar="ID", help="Cancel a queued or running job.")
@click.option("--retry", "retry_id", type=int, metavar="ID", help="Queue a failed or cancelled job again (it resumes).")
@click.option("--clear", is_flag=True, help="Delete finished jobs (done and cancelled) from the list.")
@user_errors
def jobs(
    states: tuple[str, ...], as_json: bool, run_jobs: bool, cancel_id: int | None, retry_id: int | None, clear: bool
) -> None:
    """List background jobs (downloads) with their state and progress, or act on them.

    A download interrupted by Ctrl-C, a kill or a crash stays queued (or running until its worker is known to be
    gone) and resumes its .part file: `--run` finishes every such job here. Exit status with --run: 0 when every
    job ended done, otherwise the first failure's status (1, 3 login needed, 4 not found).
    """
    actions = [name for name, given in (("--run", run_jobs), ("--cancel", cancel_id), ("--retry", retry_id),
                                        ("--clear", clear)) if given]  # fmt: skip
    if len(actions) > 1:
        raise UsageError(f"{' and '.join(actions)} cannot be combined")
    settings = load_settings()
    sessions = open_database(settings)
    queue = job_queue(settings, sessions)
    if cancel_id is not None:
        _need(queue, cancel_id)
        if not queue.cancel(cancel_id):
            raise UsageError(f"job {cancel_id} has already finished; nothing to cancel")
        click.echo(f"job {cancel_id} cancelled (its .part file is kept; --retry {cancel_id} resumes it)")
        return
    if retry_id is not None:
        _need(queue, retry_id)
        if not queue.retry(retry_id):
            raise UsageError(f"job {retry_id} is not failed or cancelled; nothing to retry")
        click.echo(f"job {retry_id} queued again (run it with `modeldex jobs --run`)")
        return
    if clear:
        click.echo(f"{queue.forget(['done', 'cancelled'])} finished jobs removed")
        return
    if run_jobs:
        _run(settings, sessions, queue, as_json)
        return
    listed = queue.list(states=states or None)
    if as_json:
        for job in listed:
            echo_json_line(job.to_json())
        return
    if not listed:
        click.echo("no jobs")
        return
    click.echo(f"{'ID':>5}  {'STATE':<9}  {'PROGRESS':>18}  {'TRIES':>5}  {'UPDATED':<19}  WHAT")
    for job in listed:
        click.echo(_row(job))
        if job.error and job.state != "done":
            click.echo(" " * 7 + f"error: {job.error}")


def _need(queue: JobQueue, job_id: int) -> None:
    if queue.get(job_id) is None:
        raise UsageError(f"there is no job {job_id} (see `modeldex jobs`)")


def _run(settings: Settings, sessions: sessionmaker[Session], queue: JobQueue, as_json: bool) -> None:
    from modeldex.hub.download_job import KIND

    queue.requeue_expired()
    pending = queue.list(states=ACTIVE_STATES, kind=KIND)
    if not pending:
        click.echo("no queued jobs")
        return
    names = {job.id: str(job.payload.get("file_name") or f"job {job.id}") for job in pending}
    with civitai_client(settings) as client, progress_bars(names) as observer:
        runner = make_runner(settings, sessions, client, queue, observer=observer)
        try:
            outcome = runner.run([job.id for job in pending], wait_for_others=False)
        except KeyboardInterrupt:
            interrupted()
    codes = print_job_outcomes(outcome.jobs, as_json)
    if codes:
        sys.exit(codes[0])


def _row(job: JobInfo) -> str:
    if job.bytes_total:
        done = f"{job.bytes_done / job.bytes_total:4.0%} {_size(job.bytes_done)}/{_size(job.bytes_total)}"
    elif job.state == "done":
        done = "100%"
    else:
        done = "-"
    updated = job.updated_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    what = str(job.payload.get("file_name") or job.kind)
    version = job.payload.get("version_id")
    if version is not None:
        what += f" (version {version})"
    state = job.state
    if state == "running" and job.lease_until is not None and job.lease_until < datetime.now(UTC):
        state = "stalled"  # its worker stopped renewing the lease: it was killed or lost its connection
    return f"{job.id:>5}  {state:<9}  {done:>18}  {job.attempts:>5}  {updated:<19}  {what}"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1000
    return f"{value:.1f}TB"
