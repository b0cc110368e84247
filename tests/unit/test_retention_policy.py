"""The retention policy (what is old enough, when the periodic purge runs) and readiness of a
worker's side consumers: pure decisions, no database or broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from jorge_runtime.kafka.background_consumers import ConsumersState
from jorge_runtime.observability.health import consumers_verdict
from jorge_runtime.retention.policy import (
    RULES,
    TABLES,
    Limit,
    RetentionPolicy,
    batch_is_last,
    format_counts,
    run_is_due,
)
from jorge_runtime.settings import Settings

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_defaults_keep_the_ledger_for_two_weeks_and_history_for_a_month() -> None:
    policy = RetentionPolicy.from_settings(Settings())
    assert policy == RetentionPolicy(
        ledger_days=14, webhook_days=30, crm_steps_days=30, dead_letters_days=30, batch_size=5000
    )
    cutoffs = policy.cutoffs(NOW)
    assert cutoffs["processed_events"] == cutoffs["outbox"] == NOW - timedelta(days=14)
    assert cutoffs["webhook_deliveries"] == cutoffs["webhook_messages"] == NOW - timedelta(days=30)
    assert cutoffs["crm_dead_letters"] == NOW - timedelta(days=30)


def test_each_table_follows_its_own_setting() -> None:
    policy = RetentionPolicy.from_settings(
        Settings(
            retention_ledger_days=9,
            retention_webhook_days=60,
            retention_crm_steps_days=45,
            retention_dead_letters_days=2,
            retention_batch_size=100,
        )
    )
    assert {rule.table: policy.days(rule.limit) for rule in RULES} == {
        "outbox": 9,
        "processed_events": 9,
        "webhook_attempts": 60,
        "webhook_deliveries": 60,
        "webhook_messages": 60,
        "crm_dead_letters": 2,
        "crm_sync_steps": 45,
        "ghl_webhook_receipts": 9,
    }
    assert policy.cutoff(Limit.CRM_STEPS, NOW) == NOW - timedelta(days=45)
    assert policy.batch_size == 100


@pytest.mark.parametrize(
    "field", ["retention_ledger_days", "retention_webhook_days", "retention_crm_steps_days"]
)
def test_limits_that_deduplicate_redeliveries_stay_above_kafkas_week(field: str) -> None:
    a_week: dict[str, Any] = {field: 7}
    a_week_and_a_day: dict[str, Any] = {field: 8}
    with pytest.raises(ValidationError):
        Settings(**a_week)
    Settings(**a_week_and_a_day)


def test_a_policy_never_keeps_less_than_a_day() -> None:
    with pytest.raises(ValueError, match="dead_letters_days"):
        RetentionPolicy(dead_letters_days=0)


def test_children_are_purged_before_their_parents() -> None:
    order = list(TABLES)
    assert order.index("outbox") < order.index("processed_events")
    assert (
        order.index("webhook_attempts") < order.index("webhook_deliveries") < order.index("webhook_messages")
    )


def test_the_periodic_purge_runs_once_per_interval_whichever_replica_comes() -> None:
    assert run_is_due(None, NOW, 3600)
    assert not run_is_due(NOW - timedelta(minutes=59), NOW, 3600)  # another replica ran
    assert run_is_due(NOW - timedelta(hours=1), NOW, 3600)
    assert not run_is_due(None, NOW, 0)  # 0 = off


def test_a_short_batch_is_the_last() -> None:
    assert not batch_is_last(5000, 5000)
    assert batch_is_last(4999, 5000)
    assert batch_is_last(0, 5000)


def test_counts_are_printed_per_table_in_purge_order_with_a_total() -> None:
    lines = format_counts({"outbox": 3, "webhook_messages": 12_000}, dry_run=True)
    assert len(lines) == len(TABLES) + 1
    assert lines[0].split() == ["outbox", "would", "delete", "3"]
    assert "12,000" in lines[TABLES.index("webhook_messages")]
    assert lines[-1].split() == ["total", "would", "delete", "12,003"]
    assert format_counts({}, dry_run=False)[-1].split() == ["total", "deleted", "0"]


def _state(**changes: object) -> ConsumersState:
    base: dict[str, object] = {
        "started": True,
        "stopped": False,
        "seconds_since_start": 5.0,
        "loops": 4,
        "loops_alive": 4,
        "last_error": None,
    }
    return ConsumersState(**(base | changes))  # type: ignore[arg-type]


def test_side_consumers_are_ready_once_started_and_connected() -> None:
    assert consumers_verdict(_state(), connected=True, grace_seconds=60) == ("ok", None)


def test_side_consumers_still_starting_do_not_fail_readiness_until_the_grace_ends() -> None:
    starting = _state(
        started=False, loops_alive=0, seconds_since_start=10.0, last_error="KafkaConnectionError"
    )
    assert consumers_verdict(starting, connected=False, grace_seconds=60) == (
        "starting",
        "KafkaConnectionError",
    )
    late = _state(started=False, loops_alive=0, seconds_since_start=61.0, last_error="KafkaConnectionError")
    assert consumers_verdict(late, connected=False, grace_seconds=60) == (
        "down",
        "not started after 60s: KafkaConnectionError",
    )


def test_stopped_crashed_or_disconnected_side_consumers_fail_readiness() -> None:
    assert consumers_verdict(_state(stopped=True), connected=True, grace_seconds=60) == ("down", "stopped")
    assert consumers_verdict(_state(loops_alive=3), connected=True, grace_seconds=60) == (
        "down",
        "1 of 4 consumers stopped",
    )
    assert consumers_verdict(_state(), connected=False, grace_seconds=60) == ("down", "no cluster metadata")
