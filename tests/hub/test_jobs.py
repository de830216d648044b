"""The durable job queue and its runner: claims with leases and fencing, takeover of dead workers, the global
limit, progress, cancel, failures with exit codes, and interrupted runs that leave resumable jobs."""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hub_db import copy_database, make_template, sessions_for
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from modeldex.db.models import Job
from modeldex.errors import NotFoundError
from modeldex.hub.job_runner import JobContext, JobInterrupted, JobRunner, RunObserver
from modeldex.hub.jobs import JobInfo, JobQueue


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("jobsdb"))


@pytest.fixture
def db_path(tmp_path: Path, template: Path) -> Path:
    return copy_database(template, tmp_path / "data" / "modeldex.db")


@pytest.fixture
def sessions(db_path: Path) -> Iterator[sessionmaker[Session]]:
    factory = sessions_for(db_path)
    yield factory
    bind = factory.kw["bind"]
    bind.dispose()


@pytest.fixture
def queue(sessions: sessionmaker[Session], tmp_path: Path) -> JobQueue:
    return JobQueue(sessions, lock_dir=tmp_path / "locks", host="here")


def expire(sessions: sessionmaker[Session], job_id: int) -> None:
    from datetime import UTC, datetime, timedelta

    with sessions() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
        )
        session.commit()


# --- the queue ------------------------------------------------------------------------------------------------------


def test_enqueue_lists_and_reuses_a_job_with_the_same_key(queue: JobQueue) -> None:
    first, new = queue.enqueue("download", {"version_id": 1}, key="v1")
    again, new_again = queue.enqueue("download", {"version_id": 1, "extra": "x"}, key="v1")
    other, _ = queue.enqueue("download", {"version_id": 2}, key="v2")
    assert new and not new_again and again.id == first.id
    assert (first.state, first.attempts, first.payload) == ("queued", 0, {"version_id": 1, "key": "v1"})
    assert [j.id for j in queue.list()] == [first.id, other.id]
    assert [j.id for j in queue.list(states=["queued"], ids=[other.id])] == [other.id]


def test_a_failed_job_with_the_same_key_goes_back_to_the_queue_with_its_payload(queue: JobQueue) -> None:
    job, _ = queue.enqueue("download", {"version_id": 1, "file_name": None}, key="v1")
    lease = queue.claim(["download"], lease_seconds=60)
    assert lease is not None
    queue.save_payload(lease, dict(lease.job.payload, file_name="learnt.safetensors"))
    queue.fail(lease, "network down", {"exit_code": 1})
    again, new = queue.enqueue("download", {"version_id": 1, "file_name": None, "library": "/lib"}, key="v1")
    assert not new and again.id == job.id and again.state == "queued" and again.error is None
    assert again.payload["file_name"] == "learnt.safetensors" and again.payload["library"] == "/lib"


def test_claim_leases_and_fences_writes_by_attempt(queue: JobQueue, sessions: sessionmaker[Session]) -> None:
    job, _ = queue.enqueue("download", {})
    lease = queue.claim(["download"], lease_seconds=60)
    assert lease is not None and lease.job_id == job.id and lease.attempt == 1
    running = queue.get(job.id)
    assert running is not None and running.state == "running" and running.attempts == 1
    assert running.result == {"worker": {"host": "here", "pid": os.getpid()}}
    assert queue.claim(["download"], lease_seconds=60) is None  # ours, alive: nobody else gets it
    assert queue.heartbeat(lease, lease_seconds=60, bytes_done=10, bytes_total=100, progress=0.1)
    elsewhere = JobQueue(sessions, host="elsewhere")
    assert elsewhere.claim(["download"], lease_seconds=60) is None
    expire(sessions, job.id)
    stolen = elsewhere.claim(["download"], lease_seconds=60)
    assert stolen is not None and stolen.attempt == 2
    assert not queue.heartbeat(lease, lease_seconds=60)
    assert not queue.finish(lease, {"path": "stale"})  # the old worker can no longer touch the row
    assert elsewhere.finish(stolen, {"path": "/x"})
    done = queue.get(job.id)
    assert done is not None and (done.state, done.result, done.progress, done.bytes_done) == (
        "done",
        {"path": "/x"},
        1.0,
        10,
    )


def test_kinds_and_ids_limit_what_is_claimed(queue: JobQueue) -> None:
    a, _ = queue.enqueue("download", {})
    b, _ = queue.enqueue("download", {})
    queue.enqueue("sync", {})
    lease = queue.claim(["download"], lease_seconds=60, ids=[b.id])
    assert lease is not None and lease.job_id == b.id
    assert queue.claim(["other"], lease_seconds=60) is None
    second = queue.claim(["download"], lease_seconds=60)
    assert second is not None and second.job_id == a.id


def test_the_global_limit_counts_live_leases_of_every_process(queue: JobQueue, sessions: sessionmaker[Session]) -> None:
    for _ in range(3):
        queue.enqueue("download", {})
    other_process = JobQueue(sessions, host="elsewhere")
    first = other_process.claim(["download"], lease_seconds=60, limit=2)
    second = queue.claim(["download"], lease_seconds=60, limit=2)
    assert first is not None and second is not None
    assert queue.claim(["download"], lease_seconds=60, limit=2) is None
    other_process.finish(first)
    assert queue.claim(["download"], lease_seconds=60, limit=2) is not None


def test_requeue_expired_and_cancel(queue: JobQueue, sessions: sessionmaker[Session]) -> None:
    a, _ = queue.enqueue("download", {})
    b, _ = queue.enqueue("download", {})
    lease_a = queue.claim(["download"], lease_seconds=60, ids=[a.id])
    lease_b = queue.claim(["download"], lease_seconds=60, ids=[b.id])
    assert lease_a is not None and lease_b is not None
    expire(sessions, a.id)
    assert queue.requeue_expired() == 1
    requeued = queue.get(a.id)
    assert requeued is not None and requeued.state == "queued" and requeued.lease_until is None
    assert queue.cancel(b.id)
    assert not queue.heartbeat(lease_b, lease_seconds=60)  # the worker learns it at its next beat
    assert not queue.cancel(b.id)
    assert queue.retry(b.id)
    retried = queue.get(b.id)
    assert retried is not None and retried.state == "queued"
    queue.drop_lock(lease_b)
    queue.drop_lock(lease_a)
    assert queue.forget(["done", "cancelled"]) == 0
    with pytest.raises(ValueError, match="finished"):
        queue.forget(["running"])


_CLAIM_AND_HANG = """
import sys, time
sys.path[:0] = {paths!r}
from hub_db import sessions_for
from modeldex.hub.jobs import JobQueue
from pathlib import Path
q = JobQueue(sessions_for(Path({db!r})), lock_dir=Path({locks!r}), host="here")
lease = q.claim(["download"], lease_seconds=3600)
print("claimed" if lease else "none", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_killed_worker_on_this_host_is_taken_over_at_once(queue: JobQueue, db_path: Path, tmp_path: Path) -> None:
    job, _ = queue.enqueue("download", {})
    here = str(Path(__file__).parent)
    code = _CLAIM_AND_HANG.format(paths=[here], db=str(db_path), locks=str(tmp_path / "locks"))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "claimed"
        assert queue.claim(["download"], lease_seconds=60) is None  # alive and holding its lock
        running = queue.get(job.id)
        assert running is not None and queue.is_held(running)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        assert not queue.is_held(running)
        lease = queue.claim(["download"], lease_seconds=60)  # its lease has an hour left; its lock is gone
        assert lease is not None and lease.job_id == job.id and lease.attempt == 2
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# --- the runner -----------------------------------------------------------------------------------------------------


class Recorder(RunObserver):
    def __init__(self) -> None:
        self.events: list[tuple[str, int, str]] = []
        self.waits = 0
        self.lock = threading.Lock()

    def started(self, job: JobInfo) -> None:
        with self.lock:
            self.events.append(("started", job.id, job.state))

    def finished(self, job: JobInfo) -> None:
        with self.lock:
            self.events.append(("finished", job.id, job.state))

    def waiting(self, jobs: list[JobInfo]) -> None:
        self.waits += 1


def test_runner_runs_jobs_concurrently_up_to_the_limit(queue: JobQueue) -> None:
    ids = [queue.enqueue("download", {"n": n})[0].id for n in range(5)]
    running = 0
    most = 0
    lock = threading.Lock()

    def handler(ctx: JobContext) -> dict[str, Any]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        for step in range(5):
            ctx.progress(step, 5)
            time.sleep(0.02)
        with lock:
            running -= 1
        return {"n": ctx.payload["n"] * 10}

    recorder = Recorder()
    outcome = JobRunner(queue, {"download": handler}, concurrency=2, observer=recorder).run(ids)
    assert [j.state for j in outcome.jobs] == ["done"] * 5 and not outcome.failed
    assert [j.result for j in outcome.jobs] == [{"n": n * 10} for n in range(5)]
    assert most == 2
    assert sorted(e[1] for e in recorder.events if e[0] == "finished") == ids


def test_runner_records_failures_with_exit_codes(queue: JobQueue) -> None:
    missing = queue.enqueue("download", {"what": "missing"})[0].id
    disk = queue.enqueue("download", {"what": "disk"})[0].id

    def handler(ctx: JobContext) -> dict[str, Any]:
        if ctx.payload["what"] == "missing":
            raise NotFoundError("model version 9 not found on civitai.com")
        raise OSError(28, "No space left on device", "/lib/x.part")

    outcome = JobRunner(queue, {"download": handler}, concurrency=1).run([missing, disk])
    first, second = outcome.jobs
    assert (first.state, first.error, first.result) == (
        "failed",
        "model version 9 not found on civitai.com",
        {"exit_code": 4, "title": "not found"},
    )
    assert second.error == "No space left on device: /lib/x.part" and second.result == {
        "exit_code": 1,
        "title": "file system",
    }
    assert outcome.failed == [first, second]


def test_a_bug_in_a_handler_fails_the_job_and_surfaces(queue: JobQueue) -> None:
    job_id = queue.enqueue("download", {})[0].id

    def handler(ctx: JobContext) -> dict[str, Any]:
        raise ZeroDivisionError("bug")

    with pytest.raises(ZeroDivisionError):
        JobRunner(queue, {"download": handler}).run([job_id])
    failed = queue.get(job_id)
    assert failed is not None and failed.state == "failed" and failed.result == {"exit_code": 1, "title": "bug"}


def test_stopping_puts_jobs_back_with_their_progress(queue: JobQueue) -> None:
    job_id = queue.enqueue("download", {})[0].id
    reached = threading.Event()

    def handler(ctx: JobContext) -> dict[str, Any]:
        done = 0
        while True:
            done += 1000
            ctx.progress(done, 10**9, "downloading")
            if done >= 50_000:
                reached.set()
            time.sleep(0.005)

    runner = JobRunner(queue, {"download": handler}, heartbeat_seconds=0.05)

    def stop_soon() -> None:
        reached.wait(5)
        time.sleep(0.2)
        runner.stop()

    threading.Thread(target=stop_soon).start()
    outcome = runner.run([job_id])
    job = outcome.jobs[0]
    assert job.state == "queued" and job.lease_until is None and job.bytes_done >= 50_000
    assert job.bytes_total == 10**9 and 0 < job.progress < 1


def test_ctrl_c_releases_the_job_and_is_raised(queue: JobQueue) -> None:
    job_id = queue.enqueue("download", {})[0].id
    stopped = threading.Event()

    def handler(ctx: JobContext) -> dict[str, Any]:
        _thread.interrupt_main()  # what Ctrl-C does: KeyboardInterrupt in the main thread
        try:
            while True:
                ctx.progress(1, 2)
                time.sleep(0.01)
        except JobInterrupted:
            stopped.set()
            raise

    with pytest.raises(KeyboardInterrupt):
        JobRunner(queue, {"download": handler}).run([job_id])
    job = queue.get(job_id)
    assert stopped.is_set() and job is not None and job.state == "queued"


def test_a_cancelled_job_stops_its_handler(queue: JobQueue) -> None:
    job_id = queue.enqueue("download", {})[0].id

    def handler(ctx: JobContext) -> dict[str, Any]:
        queue.cancel(ctx.job.id)
        while True:
            ctx.progress(1, 2)
            time.sleep(0.01)

    outcome = JobRunner(queue, {"download": handler}, heartbeat_seconds=0.05).run([job_id])
    assert outcome.jobs[0].state == "cancelled" and outcome.jobs[0].error == "cancelled by the user"


def test_runner_waits_for_a_wanted_job_that_another_process_runs(
    queue: JobQueue, sessions: sessionmaker[Session]
) -> None:
    job_id = queue.enqueue("download", {})[0].id
    other = JobQueue(sessions, host="elsewhere")
    lease = other.claim(["download"], lease_seconds=60)
    assert lease is not None
    threading.Timer(0.4, lambda: other.finish(lease, {"by": "elsewhere"})).start()
    recorder = Recorder()
    outcome = JobRunner(queue, {"download": lambda ctx: {"by": "us"}}, poll_seconds=0.05, observer=recorder).run(
        [job_id]
    )
    assert outcome.jobs[0].state == "done" and outcome.jobs[0].result == {"by": "elsewhere"}
    assert recorder.waits >= 2 and recorder.events == []
    assert JobRunner(queue, {"download": lambda ctx: None}).run().jobs == []
