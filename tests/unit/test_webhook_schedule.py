"""The retry schedule and the decision after an attempt (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.crm_sync.webhook_delivery.schedule import (
    DISABLED_FAILING,
    DISABLED_GONE,
    AttemptOutcome,
    RetryPolicy,
    decide,
    parse_retry_after,
    parse_schedule,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy()


def test_the_default_schedule_is_svix_like_with_jitter() -> None:
    assert POLICY.max_attempts == 8
    expected = [5, 300, 1800, 7200, 18000, 36000, 36000]
    for attempts_made, base in enumerate(expected, start=1):
        assert POLICY.next_delay(attempts_made, rand=lambda: 0.5) == pytest.approx(base)
        assert POLICY.next_delay(attempts_made, rand=lambda: 0.0) == pytest.approx(base * 0.8)
        assert POLICY.next_delay(attempts_made, rand=lambda: 1.0) == pytest.approx(base * 1.2)
    assert POLICY.next_delay(8) is None  # the schedule is exhausted: give up


def test_throttling_and_retry_after_wait_longer() -> None:
    assert POLICY.next_delay(1, throttled=True, rand=lambda: 0.5) == 60
    assert POLICY.next_delay(1, throttled=True, retry_after=120, rand=lambda: 0.5) == 120
    assert POLICY.next_delay(3, retry_after=10, rand=lambda: 0.5) == 1800  # never earlier than planned
    assert POLICY.next_delay(1, retry_after=10**9, rand=lambda: 0.5) == 86_400  # capped


def test_parse_schedule_and_retry_after() -> None:
    assert parse_schedule("0.2, 1,5") == (0.2, 1.0, 5.0)
    assert parse_retry_after("30", NOW) == 30
    assert parse_retry_after("Mon, 23 Nov 2026 12:02:00 GMT", NOW) == 120
    assert parse_retry_after("Mon, 23 Nov 2026 11:00:00 GMT", NOW) == 0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None


def test_success_forgives_the_failure_run() -> None:
    decision = decide(
        POLICY, AttemptOutcome(204), attempts_made=3, failing_since=NOW - timedelta(days=1), now=NOW
    )
    assert (decision.delivery_status, decision.failing_since, decision.disable_reason) == (
        "succeeded",
        None,
        None,
    )


@pytest.mark.parametrize("status", [None, 301, 400, 500])
def test_failures_are_retried_and_start_a_failure_run(status: int | None) -> None:
    outcome = AttemptOutcome(status, error="refused" if status is None else None)
    decision = decide(POLICY, outcome, attempts_made=1, failing_since=None, now=NOW, rand=lambda: 0.5)
    assert decision.delivery_status == "pending"
    assert decision.next_attempt_at == NOW + timedelta(seconds=5)
    assert decision.failing_since == NOW and decision.disable_reason is None


def test_429_honours_retry_after_and_timeouts_wait_the_minimum() -> None:
    throttled = decide(
        POLICY, AttemptOutcome(429, retry_after="90"), attempts_made=1, failing_since=None, now=NOW
    )
    assert throttled.next_attempt_at == NOW + timedelta(seconds=90)
    timed_out = decide(
        POLICY, AttemptOutcome(None, "timeout", timed_out=True), attempts_made=1, failing_since=None, now=NOW
    )
    assert timed_out.next_attempt_at == NOW + timedelta(seconds=60)
    # Retry-After on a plain 500 is not a promise to honour.
    plain = decide(
        POLICY, AttemptOutcome(500, retry_after="900"), attempts_made=1, failing_since=None, now=NOW,
        rand=lambda: 0.5,
    )  # fmt: skip
    assert plain.next_attempt_at == NOW + timedelta(seconds=5)


def test_410_disables_the_endpoint_and_ends_the_delivery() -> None:
    decision = decide(POLICY, AttemptOutcome(410), attempts_made=1, failing_since=None, now=NOW)
    assert (decision.delivery_status, decision.disable_reason) == ("failed", DISABLED_GONE)


def test_the_last_failure_fails_the_delivery() -> None:
    decision = decide(POLICY, AttemptOutcome(500), attempts_made=8, failing_since=NOW, now=NOW)
    assert (decision.delivery_status, decision.next_attempt_at) == ("failed", None)


def test_failing_for_the_whole_period_disables() -> None:
    since = NOW - timedelta(days=5)
    decision = decide(POLICY, AttemptOutcome(503), attempts_made=2, failing_since=since, now=NOW)
    assert decision.disable_reason == DISABLED_FAILING and decision.failing_since == since
    almost = decide(
        POLICY, AttemptOutcome(503), attempts_made=2, failing_since=since + timedelta(minutes=1), now=NOW
    )
    assert almost.disable_reason is None
