"""A durable job queue over the `job` table: enqueue, claim with a lease, heartbeat, finish or fail, requeue.

A job is claimed by a compare-and-set on its row: the claim bumps `attempts`, and every later write of the claimant
(heartbeat, finish, fail, release) names the `attempts` it claimed with, so a worker whose lease was taken over can
no longer touch the row (the attempt number is a fencing token). A lease ends when it is not renewed; a job whose
lease ran out is claimable again.

Waiting a whole lease for a killed worker would make `modeldex download` after a kill sit idle, so workers on the
same host also hold an advisory lock file per job (`lock_dir/job-<id>.lock`, flock) while they run it: the kernel
drops it when the process dies, and a job still marked running whose worker on this host holds no lock is taken
over at once. Workers on other hosts (a shared Postgres) are judged by their lease only.

Every method is one short transaction, so the queue works across processes (the CLI, the daemon, the TUI).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal

from sqlalchemy import Table, and_, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from modeldex.db.models import Job

JOBS: Table = Job.__table__  # type: ignore[assignment]  # declared as FromClause, is a Table

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
ACTIVE_STATES: tuple[JobState, ...] = ("queued", "running")
FINAL_STATES: tuple[JobState, ...] = ("done", "failed", "cancelled")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job row as read."""

    id: int
    kind: str
    payload: dict[str, Any]
    state: str
    attempts: int
    lease_until: datetime | None
    progress: float
    bytes_done: int
    bytes_total: int | None
    error: str | None
    result: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    def to_json(self) -> dict[str, Any]:
        """The row as plain JSON values (for `modeldex jobs --json`)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "attempts": self.attempts,
            "progress": self.progress,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "error": self.error,
            "result": self.result,
            "payload": self.payload,
            "lease_until": self.lease_until.isoformat() if self.lease_until else None,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(slots=True)
class Lease:
    """A claim on one job: valid while `attempt` is the row's `attempts` and its state is `running`."""

    job: JobInfo
    attempt: int
    lock: IO[bytes] | None = None

    @property
    def job_id(self) -> int:
        return self.job.id


def _info(row: Any) -> JobInfo:
    return JobInfo(
        id=row.id,
        kind=row.kind,
        payload=dict(row.payload or {}),
        state=row.state,
        attempts=row.attempts,
        lease_until=row.lease_until,
        progress=row.progress or 0.0,
        bytes_done=row.bytes_done or 0,
        bytes_total=row.bytes_total,
        error=row.error,
        result=row.result,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class JobQueue:
    """The queue in one database. `lock_dir` (a local folder) enables the fast takeover of killed workers."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        lock_dir: Path | None = None,
        host: str | None = None,
    ) -> None:
        self._sessions = sessions
        self.lock_dir = lock_dir
        self.host = host or socket.gethostname()

    # --- reading ----------------------------------------------------------------------------------------------------

    def get(self, job_id: int) -> JobInfo | None:
        """The job, or None when there is no such id."""
        with self._sessions() as session:
            row = session.execute(select(JOBS).where(JOBS.c.id == job_id)).first()
        return _info(row) if row is not None else None

    def list(
        self, *, states: Collection[str] | None = None, kind: str | None = None, ids: Collection[int] | None = None
    ) -> list[JobInfo]:
        """Jobs, oldest first, filtered by state, kind and id."""
        query = select(JOBS).order_by(JOBS.c.id)
        if states is not None:
            query = query.where(JOBS.c.state.in_(list(states)))
        if kind is not None:
            query = query.where(JOBS.c.kind == kind)
        if ids is not None:
            query = query.where(JOBS.c.id.in_(list(ids)))
        with self._sessions() as session:
            return [_info(row) for row in session.execute(query)]

    # --- adding and managing ----------------------------------------------------------------------------------------

    def enqueue(self, kind: str, payload: dict[str, Any], *, key: str | None = None) -> tuple[JobInfo, bool]:
        """Add a job; returns it and whether it is new.

        With a `key` (stored as `payload["key"]`), an unfinished or failed job of the same kind and key is reused
        instead: a failed one goes back to `queued` with its progress (a download resumes its `.part` file), and its
        payload is refreshed from `payload` where the old one has no value.
        """
        now = _now()
        if key is not None:
            payload = dict(payload, key=key)
            with self._sessions() as session:
                rows = session.execute(
                    select(JOBS)
                    .where(JOBS.c.kind == kind, JOBS.c.state.in_(["queued", "running", "failed"]))
                    .order_by(JOBS.c.id.desc())
                ).all()
                same = next((row for row in rows if (row.payload or {}).get("key") == key), None)
                if same is not None:
                    if same.state == "failed":
                        merged = dict(payload, **{k: v for k, v in (same.payload or {}).items() if v is not None})
                        session.execute(
                            update(JOBS)
                            .where(JOBS.c.id == same.id, JOBS.c.state == "failed")
                            .values(state="queued", error=None, result=None, lease_until=None, payload=merged,
                                    updated_at=now)
                        )  # fmt: skip
                        session.commit()
                    found = self.get(same.id)
                    assert found is not None
                    return found, False
        with self._sessions() as session:
            job_id = session.execute(
                insert(JOBS)
                .values(
                    kind=kind,
                    payload=payload,
                    state="queued",
                    attempts=0,
                    progress=0.0,
                    bytes_done=0,
                    created_at=now,
                    updated_at=now,
                )
                .returning(JOBS.c.id)
            ).scalar_one()
            session.commit()
        found = self.get(job_id)
        assert found is not None
        return found, True

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued or running job (a running worker notices at its next heartbeat); False if finished."""
        return self._set_state(job_id, "cancelled", from_states=ACTIVE_STATES, error="cancelled by the user")

    def retry(self, job_id: int) -> bool:
        """Put a failed or cancelled job back in the queue; False if it is not one."""
        return self._set_state(job_id, "queued", from_states=("failed", "cancelled"), error=None)

    def forget(self, states: Sequence[str] = ("done", "cancelled")) -> int:
        """Delete the finished jobs in `states`; returns how many went."""
        bad = set(states) - set(FINAL_STATES)
        if bad:
            raise ValueError(f"only finished jobs can be forgotten, not {sorted(bad)}")
        with self._sessions() as session:
            result = session.execute(delete(JOBS).where(JOBS.c.state.in_(list(states))))
            session.commit()
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def requeue_expired(self) -> int:
        """Running jobs whose lease ran out go back to `queued` (their worker is gone); returns how many."""
        now = _now()
        with self._sessions() as session:
            result = session.execute(
                update(JOBS)
                .where(JOBS.c.state == "running", or_(JOBS.c.lease_until.is_(None), JOBS.c.lease_until < now))
                .values(state="queued", lease_until=None, updated_at=now)
            )
            session.commit()
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def _set_state(self, job_id: int, state: str, *, from_states: Sequence[str], error: str | None) -> bool:
        with self._sessions() as session:
            result = session.execute(
                update(JOBS)
                .where(JOBS.c.id == job_id, JOBS.c.state.in_(list(from_states)))
                .values(state=state, error=error, lease_until=None, updated_at=_now())
            )
            session.commit()
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # --- claiming ---------------------------------------------------------------------------------------------------

    def claim(
        self,
        kinds: Collection[str],
        *,
        lease_seconds: float,
        ids: Collection[int] | None = None,
        limit: int | None = None,
    ) -> Lease | None:
        """Claim the oldest claimable job of these kinds (among `ids` when given), or None.

        Claimable: queued; running with an expired lease; or running on this host by a process that is gone.
        `limit` caps the jobs of these kinds running at once across every process (the global download limit):
        nothing is claimed while that many hold live leases.
        """
        now = _now()
        query = select(JOBS).where(JOBS.c.kind.in_(list(kinds)), JOBS.c.state.in_(ACTIVE_STATES))
        if ids is not None:
            query = query.where(JOBS.c.id.in_(list(ids)))
        with self._sessions() as session:
            candidates = [_info(row) for row in session.execute(query.order_by(JOBS.c.id))]
        for job in candidates:
            live = job.state == "running" and job.lease_until is not None and job.lease_until > now
            if live and not self._same_host(job):
                continue
            lock = self._try_lock(job.id)
            if lock is False:
                continue  # a live process here runs it (or is claiming it right now)
            if live and lock is None:
                continue  # no lock folder: nothing tells a dead worker from a live one before the lease ends
            lease = self._compare_and_claim(job, kinds, now, lease_seconds, limit, lock or None)
            if lease is not None:
                return lease
            if lock:
                self._unlock(lock, job.id)
        return None

    def _compare_and_claim(
        self,
        job: JobInfo,
        kinds: Collection[str],
        now: datetime,
        lease_seconds: float,
        limit: int | None,
        lock: IO[bytes] | None,
    ) -> Lease | None:
        conditions = [JOBS.c.id == job.id, JOBS.c.attempts == job.attempts, JOBS.c.state == job.state]
        if limit is not None:
            others = JOBS.alias("others")
            running = (
                select(func.count())
                .select_from(others)
                .where(
                    others.c.kind.in_(list(kinds)),
                    others.c.state == "running",
                    others.c.lease_until > now,
                    others.c.id != job.id,
                )
                .scalar_subquery()
            )
            conditions.append(running < limit)
        attempt = job.attempts + 1
        worker = {"host": self.host, "pid": os.getpid()}
        with self._sessions() as session:
            result = session.execute(
                update(JOBS)
                .where(and_(*conditions))
                .values(
                    state="running",
                    attempts=attempt,
                    lease_until=now + timedelta(seconds=lease_seconds),
                    error=None,
                    result={"worker": worker},
                    updated_at=now,
                )
            )
            session.commit()
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        claimed = self.get(job.id)
        assert claimed is not None
        return Lease(claimed, attempt, lock)

    def is_held(self, job: JobInfo) -> bool:
        """Whether a live worker runs `job` now (a running job whose worker on this host died is not held)."""
        if job.state != "running" or job.lease_until is None or job.lease_until <= _now():
            return False
        if not self._same_host(job):
            return True
        lock = self._try_lock(job.id)
        if lock is False:
            return True
        if lock is not None:
            self._unlock(lock, job.id)
        return lock is None

    def _same_host(self, job: JobInfo) -> bool:
        worker = (job.result or {}).get("worker")
        return self.lock_dir is not None and isinstance(worker, dict) and worker.get("host") == self.host

    def _try_lock(self, job_id: int) -> IO[bytes] | None | Literal[False]:
        """The job's lock file, locked; None without a lock folder (or lock support); False when held."""
        if self.lock_dir is None:
            return None
        try:
            import fcntl
        except ImportError:  # Windows: no flock; leases alone decide
            return None
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_dir / f"job-{job_id}.lock", "ab")  # held for the job's whole run
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        return handle

    def _unlock(self, handle: IO[bytes], job_id: int) -> None:
        # The file stays: unlinking it while another process has it open would let two processes lock two inodes.
        handle.close()

    # --- the claimant's writes ----------------------------------------------------------------------------------------

    def _fenced(self, lease: Lease) -> Any:
        return and_(JOBS.c.id == lease.job_id, JOBS.c.attempts == lease.attempt, JOBS.c.state == "running")

    def heartbeat(
        self,
        lease: Lease,
        *,
        lease_seconds: float,
        bytes_done: int | None = None,
        bytes_total: int | None = None,
        progress: float | None = None,
    ) -> bool:
        """Renew the lease and record progress; False when the job was cancelled or taken over (stop working)."""
        now = _now()
        values: dict[str, Any] = {"lease_until": now + timedelta(seconds=lease_seconds), "updated_at": now}
        if bytes_done is not None:
            values["bytes_done"] = bytes_done
        if bytes_total is not None:
            values["bytes_total"] = bytes_total
        if progress is not None:
            values["progress"] = progress
        with self._sessions() as session:
            result = session.execute(update(JOBS).where(self._fenced(lease)).values(**values))
            session.commit()
        return result.rowcount == 1  # type: ignore[attr-defined]

    def save_payload(self, lease: Lease, payload: dict[str, Any]) -> bool:
        """Replace the job's payload (a worker records what it learnt, e.g. the file name); False if no longer ours."""
        with self._sessions() as session:
            result = session.execute(update(JOBS).where(self._fenced(lease)).values(payload=payload, updated_at=_now()))
            session.commit()
        ok = result.rowcount == 1  # type: ignore[attr-defined]
        if ok:
            lease.job = _replace_payload(lease.job, payload)
        return ok

    def finish(
        self,
        lease: Lease,
        result: dict[str, Any] | None = None,
        *,
        bytes_done: int | None = None,
        bytes_total: int | None = None,
    ) -> bool:
        """Mark the job done with its result (and its final byte counts)."""
        return self._end(lease, "done", result, None, progress=1.0, bytes_done=bytes_done, bytes_total=bytes_total)

    def fail(
        self,
        lease: Lease,
        error: str,
        result: dict[str, Any] | None = None,
        *,
        bytes_done: int | None = None,
        bytes_total: int | None = None,
    ) -> bool:
        """Mark the job failed; `result` may say more (an exit code, the error's title)."""
        return self._end(lease, "failed", result, error, bytes_done=bytes_done, bytes_total=bytes_total)

    def release(self, lease: Lease, *, bytes_done: int | None = None, bytes_total: int | None = None) -> bool:
        """Give the job back to the queue as it stands (interrupted: the next worker resumes it)."""
        return self._end(lease, "queued", None, None, bytes_done=bytes_done, bytes_total=bytes_total)

    def _end(
        self,
        lease: Lease,
        state: str,
        result: dict[str, Any] | None,
        error: str | None,
        *,
        progress: float | None = None,
        bytes_done: int | None = None,
        bytes_total: int | None = None,
    ) -> bool:
        values: dict[str, Any] = {"state": state, "result": result, "error": error, "lease_until": None}
        values["updated_at"] = _now()
        for name, value in (("progress", progress), ("bytes_done", bytes_done), ("bytes_total", bytes_total)):
            if value is not None:
                values[name] = value
        if progress is None and bytes_done is not None and bytes_total:
            values["progress"] = min(1.0, bytes_done / bytes_total)
        try:
            with self._sessions() as session:
                outcome = session.execute(update(JOBS).where(self._fenced(lease)).values(**values))
                session.commit()
        finally:
            if lease.lock is not None:
                self._unlock(lease.lock, lease.job_id)
                lease.lock = None
        return outcome.rowcount == 1  # type: ignore[attr-defined]

    def drop_lock(self, lease: Lease) -> None:
        """Let go of the lock file without touching the row (the lease was lost to another worker)."""
        if lease.lock is not None:
            self._unlock(lease.lock, lease.job_id)
            lease.lock = None


def _replace_payload(job: JobInfo, payload: dict[str, Any]) -> JobInfo:
    from dataclasses import replace

    return replace(job, payload=dict(payload))
