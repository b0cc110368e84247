"""The retry schedule of crm_sync's delay topics."""

from __future__ import annotations

import pytest

from services.crm_sync.ghl.delay_queue import due_at
from services.crm_sync.ghl.retry_schedule import (
    ATTEMPT_HEADER,
    NOT_BEFORE_HEADER,
    QUEUED_HEADER,
    RetryStep,
    attempt_of,
    early_by_ms,
    next_retry,
    parse_delays,
    queued_calls,
    queued_header,
    without_queue_headers,
)

DELAYS = parse_delays("10,60,600,3600,21600")


def test_delays_grow_then_repeat_the_last_until_the_limit() -> None:
    steps = [next_retry(n, DELAYS, max_attempts=8) for n in range(1, 9)]
    assert steps[:7] == [
        RetryStep(0, 10, 2),
        RetryStep(1, 60, 3),
        RetryStep(2, 600, 4),
        RetryStep(3, 3600, 5),
        RetryStep(4, 21600, 6),
        RetryStep(4, 21600, 7),
        RetryStep(4, 21600, 8),
    ]
    assert steps[7] is None


def test_one_attempt_means_no_retry() -> None:
    assert next_retry(1, DELAYS, max_attempts=1) is None


def test_attempts_made_must_be_counted_from_one() -> None:
    with pytest.raises(ValueError):
        next_retry(0, DELAYS, max_attempts=3)


@pytest.mark.parametrize("spec", ["", "10,5", "a,b"])
def test_bad_delay_lists_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_delays(spec)


def test_attempt_and_due_time_come_from_headers() -> None:
    assert attempt_of({}) == 1
    assert attempt_of({"crm-attempt": "4"}) == 4
    assert attempt_of({"crm-attempt": "junk"}) == 1
    assert due_at({"crm-due-at": "1700000000500"}) == 1_700_000_000.5
    assert due_at({}) == 0.0


def test_a_parked_message_says_its_turn_and_what_it_counts_in_its_locations_queue() -> None:
    queued = queued_header("loc-a b", "hot", 4)
    headers = {NOT_BEFORE_HEADER: "10500", QUEUED_HEADER: queued, ATTEMPT_HEADER: "2"}
    assert early_by_ms(headers, now_ms=10_000) == 500
    assert early_by_ms(headers, now_ms=11_000) == 0  # due
    assert early_by_ms({}, now_ms=0) == 0  # never parked
    assert queued_calls(headers) == ("loc-a b", "hot", 4)
    assert queued_calls({QUEUED_HEADER: "4 warm loc"}) is None and queued_calls({}) is None
    assert without_queue_headers(headers) == {ATTEMPT_HEADER: "2"}  # a retry later counts nothing
