"""Running queued jobs: worker threads under a global limit, leases kept alive, Ctrl-C leaving jobs resumable.

    runner = JobRunner(queue, {"download": run_download}, concurrency=2)
    outcome = runner.run(ids=[7, 8])   # only these jobs; wait for them even if another process holds one

A handler gets a `JobContext`, reports progress through it (which is also where it learns to stop) and returns the
job's result. It raises a `ModeldexError` to fail the job with a message for the user; the error's exit code and
title are kept in the job's result so a later `modeldex jobs` or the CLI that waited can report them.

Leases are renewed by one heartbeat thread for every running job, so a handler that spends a minute hashing or
sorting does not lose its job; progress goes to the database at the same beat, never once per chunk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from modeldex.errors import ModeldexError
from modeldex.hub.jobs import ACTIVE_STATES, JobInfo, JobQueue, Lease


class JobInterrupted(Exception):
    """Raised inside a handler (by `JobContext.check`) when it must stop: Ctrl-C, cancel, or the lease was lost."""


class JobContext:
    """What a handler sees of its job while it runs."""

    def __init__(self, queue: JobQueue, lease: Lease, stop: threading.Event, observer: RunObserver) -> None:
        self._queue = queue
        self.lease = lease
        self._stop = stop
        self._observer = observer
        self.lost = threading.Event()
        """Set by the heartbeat when the job was cancelled or taken over by another worker."""
        self.bytes_done = lease.job.bytes_done
        self.bytes_total: int | None = lease.job.bytes_total
        self.phase = "starting"

    @property
    def job(self) -> JobInfo:
        return self.lease.job

    @property
    def payload(self) -> dict[str, Any]:
        """A copy of the job's payload."""
        return dict(self.lease.job.payload)

    def check(self) -> None:
        """Raise `JobInterrupted` when the job must stop."""
        if self.lost.is_set():
            raise JobInterrupted("the job was cancelled or taken over by another worker")
        if self._stop.is_set():
            raise JobInterrupted("interrupted")

    def progress(self, done: int, total: int | None = None, phase: str | None = None) -> None:
        """Report progress (bytes, or any unit with a total); raises `JobInterrupted` when the job must stop."""
        self.bytes_done = done
        if total is not None:
            self.bytes_total = total
        if phase is not None:
            self.phase = phase
        self._observer.progress(self.job, done, self.bytes_total, self.phase)
        self.check()

    def set_phase(self, phase: str) -> None:
        """Name what the job is doing now ("downloading", "sorting"...)."""
        self.progress(self.bytes_done, self.bytes_total, phase)

    def save_payload(self, payload: dict[str, Any]) -> None:
        """Store what the handler learnt (a resolved name, a finished step) so a resumed job starts from there."""
        if not self._queue.save_payload(self.lease, payload):
            self.lost.set()
            self.check()


Handler = Callable[[JobContext], dict[str, Any] | None]


class RunObserver:
    """Hooks a front end overrides to show jobs; every method may be called from worker threads."""

    def started(self, job: JobInfo) -> None:
        """This process claimed `job` and starts it."""

    def progress(self, job: JobInfo, done: int, total: int | None, phase: str) -> None:
        """A running job advanced."""

    def finished(self, job: JobInfo) -> None:
        """A job this process ran ended (`job.state`: done, failed, queued when interrupted, cancelled)."""

    def waiting(self, jobs: list[JobInfo]) -> None:
        """Wanted jobs that another process runs (or that wait for the global limit); called at each poll."""


@dataclass
class RunOutcome:
    """The wanted jobs as they stood when `run` returned, in the order asked."""

    jobs: list[JobInfo] = field(default_factory=list)

    @property
    def failed(self) -> list[JobInfo]:
        return [j for j in self.jobs if j.state != "done"]


class JobRunner:
    """Claims and runs jobs of the kinds it has handlers for, `concurrency` at a time across every process."""

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, Handler],
        *,
        concurrency: int = 2,
        lease_seconds: float = 60.0,
        heartbeat_seconds: float | None = None,
        poll_seconds: float = 0.5,
        observer: RunObserver | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.queue = queue
        self.handlers = dict(handlers)
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds if heartbeat_seconds is not None else min(2.0, lease_seconds / 4)
        self.poll_seconds = poll_seconds
        self.observer = observer or RunObserver()
        self._stop = threading.Event()
        self._active: dict[Future[None], JobContext] = {}
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Ask running handlers to stop at their next progress report (their jobs go back to the queue)."""
        self._stop.set()

    def run(self, ids: Collection[int] | None = None, *, wait_for_others: bool = True) -> RunOutcome:
        """Run claimable jobs until none is left; with `ids`, only those, and (with `wait_for_others`) wait for the
        ones another process holds. Ctrl-C stops every handler, puts its job back in the queue and re-raises."""
        wanted = list(dict.fromkeys(ids)) if ids is not None else None
        ran: list[int] = []
        failure: list[BaseException] = []
        # The scheduling runs on its own thread so that Ctrl-C, which Python delivers to the main thread wherever it
        # happens to be, always lands here, in a wait, and never half-way through claiming or starting a job.
        # (An Event, not Thread.join: a join interrupted by Ctrl-C can return early on later calls.)
        finished = threading.Event()
        scheduler = threading.Thread(
            target=self._schedule, args=(wanted, wait_for_others, ran, failure, finished), name="job-scheduler"
        )
        scheduler.start()
        try:
            while not finished.wait(0.2):
                pass
        except KeyboardInterrupt:
            self._stop.set()
            finished.wait()  # each handler stops at its next progress report and puts its job back
            raise
        if failure:
            raise failure[0]
        order = wanted if wanted is not None else ran
        jobs = {j.id: j for j in self.queue.list(ids=order)}
        return RunOutcome([jobs[i] for i in order if i in jobs])

    def _schedule(
        self,
        wanted: list[int] | None,
        wait_for_others: bool,
        ran: list[int],
        failure: list[BaseException],
        finished: threading.Event,
    ) -> None:
        beat_done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(beat_done,), name="job-heartbeat", daemon=True)
        beat.start()
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="job")
        try:
            while True:
                self._fill(pool, wanted, ran)
                if not self._active:
                    if wanted is None or not wait_for_others or self._stop.is_set():
                        break
                    pending = self.queue.list(ids=wanted, states=ACTIVE_STATES)
                    if not pending:
                        break
                    self.observer.waiting(pending)
                    self._stop.wait(self.poll_seconds)
                    continue
                done, _ = wait(list(self._active), timeout=self.poll_seconds, return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        self._collect(future)
                    except BaseException as exc:  # noqa: BLE001 - a handler's bug, handed to the main thread
                        failure.append(exc)
                        self._stop.set()
        finally:
            beat_done.set()
            pool.shutdown(wait=True)
            beat.join(timeout=5)
            finished.set()

    def _fill(self, pool: ThreadPoolExecutor, wanted: list[int] | None, ran: list[int]) -> None:
        while len(self._active) < self.concurrency and not self._stop.is_set():
            lease = self.queue.claim(
                list(self.handlers), lease_seconds=self.lease_seconds, ids=wanted, limit=self.concurrency
            )
            if lease is None:
                return
            ctx = JobContext(self.queue, lease, self._stop, self.observer)
            ran.append(lease.job_id)
            self.observer.started(lease.job)
            future = pool.submit(self._work, ctx)
            with self._lock:
                self._active[future] = ctx

    def _collect(self, future: Future[None]) -> None:
        with self._lock:
            ctx = self._active.pop(future)
        future.result()  # a bug in a handler surfaces here, with its traceback (the job was marked failed)
        info = self.queue.get(ctx.lease.job_id)
        if info is not None:
            self.observer.finished(info)

    def _work(self, ctx: JobContext) -> None:
        lease = ctx.lease
        handler = self.handlers[lease.job.kind]
        ended = False

        def counts() -> dict[str, int | None]:
            return {"bytes_done": ctx.bytes_done, "bytes_total": ctx.bytes_total}

        try:
            result = handler(ctx)
            ended = True
            self.queue.finish(lease, result, **counts())
        except JobInterrupted:
            ended = True
            if ctx.lost.is_set():
                self.queue.drop_lock(lease)
            else:
                self.queue.release(lease, **counts())
        except ModeldexError as exc:
            ended = True
            self.queue.fail(lease, exc.message, {"exit_code": exc.exit_code, "title": exc.title}, **counts())
        except OSError as exc:
            ended = True
            where = f": {exc.filename}" if exc.filename else ""
            failure = {"exit_code": 1, "title": "file system"}
            self.queue.fail(lease, f"{exc.strerror or exc}{where}", failure, **counts())
        finally:
            if not ended:
                # An unexpected exception (a bug): recorded, then it propagates to `_collect` with its traceback.
                self.queue.fail(lease, "internal error (see the traceback)", {"exit_code": 1, "title": "bug"})

    def _heartbeat(self, done: threading.Event) -> None:
        while not done.wait(self.heartbeat_seconds):
            with self._lock:
                contexts = list(self._active.values())
            for ctx in contexts:
                total = ctx.bytes_total
                progress = min(1.0, ctx.bytes_done / total) if total else None
                alive = self.queue.heartbeat(
                    ctx.lease,
                    lease_seconds=self.lease_seconds,
                    bytes_done=ctx.bytes_done,
                    bytes_total=total,
                    progress=progress,
                )
                if not alive:
                    ctx.lost.set()  # (also after a normal end, before `_collect`: then nothing is listening)
