"""When a failed CRM write is tried again, and through which delay topic (pure)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import cast

from services.crm_sync.ghl.budget import Priority

#: Headers a retried message carries, besides the event's own.
ATTEMPT_HEADER = "crm-attempt"
DUE_AT_HEADER = "crm-due-at"
LANE_HEADER = "crm-lane"
LAST_ERROR_HEADER = "crm-last-error"
#: A parked event's turn (epoch ms) and what it counts in its location's queue
#: ("<calls> <priority> <location>").
NOT_BEFORE_HEADER = "crm-not-before"
QUEUED_HEADER = "crm-queued"


@dataclass(frozen=True, slots=True)
class RetryStep:
    """The next try: which delay topic (0-based), after how long, and its attempt number."""

    tier: int
    delay_seconds: float
    attempt: int


def parse_delays(spec: str) -> tuple[float, ...]:
    """``"10,60,600,3600,21600"`` -> (10.0, 60.0, ...); delays never decrease (each delay topic
    must stay ordered by due time)."""
    delays = tuple(float(part) for part in spec.split(",") if part.strip())
    if not delays:
        raise ValueError("at least one retry delay is needed")
    if any(b < a for a, b in itertools.pairwise(delays)):
        raise ValueError("retry delays must not decrease")
    return delays


def next_retry(attempts_made: int, delays: tuple[float, ...], max_attempts: int) -> RetryStep | None:
    """After ``attempts_made`` failed tries: the next step, or None when retries are exhausted.

    The first retry waits delays[0], the second delays[1], ...; past the last delay every
    retry waits the last one (e.g. every 6 h) until ``max_attempts`` tries were made.
    """
    if attempts_made < 1:
        raise ValueError("attempts_made counts tries already made, so it is at least 1")
    if attempts_made >= max_attempts:
        return None
    tier = min(attempts_made - 1, len(delays) - 1)
    return RetryStep(tier=tier, delay_seconds=delays[tier], attempt=attempts_made + 1)


def attempt_of(headers: dict[str, str]) -> int:
    """This delivery's attempt number: 1 unless the message came back from a delay topic."""
    raw = headers.get(ATTEMPT_HEADER, "")
    return int(raw) if raw.isdigit() and int(raw) >= 1 else 1


def queued_calls(headers: dict[str, str]) -> tuple[str, Priority, int] | None:
    """The location, priority and number of calls a parked message counts in that location's queue."""
    calls, _, rest = headers.get(QUEUED_HEADER, "").partition(" ")
    priority, _, location = rest.partition(" ")
    if not calls.isdigit() or priority not in ("hot", "standard") or not location:
        return None
    return location, cast(Priority, priority), int(calls)


def queued_header(location: str, priority: Priority, calls: int) -> str:
    """The QUEUED_HEADER value of ``calls`` of ``priority`` parked at ``location``."""
    return f"{calls} {priority} {location}"


def early_by_ms(headers: dict[str, str], now_ms: int) -> int:
    """How long before its turn a parked message came back (0 if due, or never parked)."""
    raw = headers.get(NOT_BEFORE_HEADER, "")
    return max(0, int(raw) - now_ms) if raw.isdigit() else 0


def without_queue_headers(headers: dict[str, str]) -> dict[str, str]:
    """The headers of a message whose turn came: it no longer counts in a queue."""
    return {k: v for k, v in headers.items() if k not in (NOT_BEFORE_HEADER, QUEUED_HEADER)}
