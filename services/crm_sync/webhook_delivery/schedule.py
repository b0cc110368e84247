"""What happens after an attempt (pure): success, a retry at some time, giving up, disabling.

The schedule follows the best deliverers (Svix): an immediate attempt, then retries after 5 s,
5 min, 30 min, 2 h, 5 h, 10 h and 10 h, each scaled by a random ±20 % so retries of many
messages do not arrive together. A timeout, 429, 502, 503 or 504 means "slow down": the next
try waits at least a minimum (60 s by default) and at least the receiver's `Retry-After`.
Only 2xx succeeds; 410 Gone disables the endpoint; an endpoint with no success for a whole
period (5 days by default) is disabled too.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

THROTTLE_STATUSES = frozenset({429, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})
GONE = 410

#: Why the engine disabled an endpoint (shown as the endpoint's disabled_reason).
DISABLED_GONE = "endpoint_gone"
DISABLED_FAILING = "failing_too_long"


def parse_schedule(text: str) -> tuple[float, ...]:
    """`5,300,1800` as delays in seconds; ValueError for a negative or non-numeric item."""
    delays = tuple(float(item) for item in text.split(",") if item.strip())
    if any(d < 0 for d in delays):
        raise ValueError("retry delays cannot be negative")
    return delays


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date); None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The retry schedule and its limits, built once from settings."""

    delays: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    jitter: float = 0.2
    throttled_min_delay: float = 60.0
    retry_after_max: float = 86_400.0
    disable_after: timedelta = timedelta(days=5)

    @property
    def max_attempts(self) -> int:
        """The first attempt plus one per scheduled retry."""
        return 1 + len(self.delays)

    def next_delay(
        self,
        attempts_made: int,
        *,
        throttled: bool = False,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds until the next try after ``attempts_made`` failed attempts; None = give up."""
        if attempts_made >= self.max_attempts:
            return None
        delay = self.delays[attempts_made - 1] * (1 + self.jitter * (2 * rand() - 1))
        if throttled:
            delay = max(delay, self.throttled_min_delay)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_after_max))
        return delay


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What one HTTP attempt produced: a status code, or an error and no response."""

    status_code: int | None
    error: str | None = None
    timed_out: bool = False
    retry_after: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class Decision:
    """The delivery's and the endpoint's next state."""

    delivery_status: Literal["pending", "succeeded", "failed"]
    next_attempt_at: datetime | None
    #: The endpoint's failure run: None clears it (a success forgives everything before).
    failing_since: datetime | None
    disable_reason: str | None = None


def decide(
    policy: RetryPolicy,
    outcome: AttemptOutcome,
    *,
    attempts_made: int,
    failing_since: datetime | None,
    now: datetime,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """The state after an attempt: succeeded, retried later, failed for good, endpoint disabled."""
    if outcome.succeeded:
        return Decision("succeeded", None, None)
    failing_since = failing_since or now
    if outcome.status_code == GONE:
        return Decision("failed", None, failing_since, DISABLED_GONE)
    status = outcome.status_code
    retry_after = parse_retry_after(outcome.retry_after, now) if status in RETRY_AFTER_STATUSES else None
    delay = policy.next_delay(
        attempts_made,
        throttled=outcome.timed_out or status in THROTTLE_STATUSES,
        retry_after=retry_after,
        rand=rand,
    )
    disable = DISABLED_FAILING if now - failing_since >= policy.disable_after else None
    if delay is None:
        return Decision("failed", None, failing_since, disable)
    return Decision("pending", now + timedelta(seconds=delay), failing_since, disable)
