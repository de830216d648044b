"""Pacing and retrying API calls: a request-rate limiter, exponential backoff with jitter, `Retry-After` parsing."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 525, 526, 527, 529, 530})
"""Statuses worth another try: rate limits, server errors and Cloudflare's 52x family (524: origin timeout)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait between tries of one call."""

    max_retries: int = 5
    """Tries after the first one."""
    backoff_base: float = 1.0
    """First wait in seconds; doubles with each retry."""
    backoff_cap: float = 30.0
    """Longest wait between two tries when the server names none."""
    max_retry_after: float = 120.0
    """A `Retry-After` longer than this is not waited out: the call fails and says when to come back."""

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Wait before retry number `retry` (0-based): base * 2**retry, capped, with "equal jitter".

        Half the wait is fixed so the delay still grows; the other half is random so many clients that failed
        together do not come back together.
        """
        ceiling = min(self.backoff_cap, self.backoff_base * (2**retry))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RateLimiter:
    """Spaces calls at least 1/rate seconds apart, across threads."""

    def __init__(
        self,
        requests_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        self.interval = 1.0 / requests_per_second
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_free = float("-inf")

    def wait(self) -> float:
        """Block until this call may go; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next_free)
            self._next_free = start + self.interval
        # Sleep outside the lock: each caller has reserved its own slot already.
        waited = start - now
        if waited > 0:
            self._sleep(waited)
        return waited

    def push_back(self, seconds: float) -> None:
        """Hold every caller for `seconds` from now (after a 429: the whole client slows down, not one thread)."""
        with self._lock:
            self._next_free = max(self._next_free, self._clock() + seconds)
