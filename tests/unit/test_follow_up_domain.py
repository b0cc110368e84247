"""Follow-up cadence maths, quiet hours, stop signals and GHL's webhook signature (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sandboxes.ghl.signing import WebhookSigner
from schemas.follow_ups import LeadEngagementRecordedPayload
from services.crm_sync.follow_ups.domain import (
    Cadence,
    QuietHours,
    after_quiet_hours,
    due_times,
    parse_cadence,
    stop_reason,
    task_fields,
    verdict,
)
from services.gateway.ghl_webhooks import GHL_PUBLIC_KEY, signature_valid, timestamp_fresh

DAY = 86_400.0
START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 07:00 in Los Angeles (PST)


def test_default_cadence_is_3_7_30_and_per_temperature_overrides() -> None:
    assert parse_cadence("30, 3,7") == (3.0, 7.0, 30.0)
    cadence = Cadence.from_row({"cadence_days": {"hot": [3, 1]}, "time_zone": "UTC"}, (3.0, 7.0, 30.0))
    assert cadence.offsets("hot") == (1.0, 3.0)
    assert cadence.offsets("cold") == (3.0, 7.0, 30.0)
    assert Cadence.from_row(None, (2.0,)).offsets("warm") == (2.0,)
    with pytest.raises(ValueError):
        parse_cadence("0,3")


def test_due_times_fall_at_the_offsets_outside_quiet_hours_in_the_organisations_zone() -> None:
    plain = Cadence()
    assert due_times(START, (3.0, 7.0, 30.0), plain, DAY) == [START + timedelta(days=d) for d in (3, 7, 30)]
    night = Cadence(time_zone="America/Los_Angeles", quiet=QuietHours(21, 8))
    # 07:00 local is inside 21:00-08:00: moved to 08:00 local (16:00 UTC) the same day.
    assert due_times(START, (3.0,), night, DAY) == [START + timedelta(days=3, hours=1)]
    # 23:30 local (07:30 UTC next day) -> 08:00 local the next morning.
    late = datetime(2026, 3, 3, 7, 30, tzinfo=UTC)
    assert after_quiet_hours(late, night, DAY) == datetime(2026, 3, 3, 16, 0, tzinfo=UTC)
    # Scaled days (tests) have no night.
    assert after_quiet_hours(late, night, 2.0) == late


def test_quiet_hours_that_do_not_wrap_midnight() -> None:
    lunch = QuietHours(12, 14)
    assert lunch.contains(12) and lunch.contains(13) and not lunch.contains(14) and not lunch.contains(11)
    assert not QuietHours(5, 5).contains(5)


def test_a_step_due_long_ago_is_skipped_one_in_quiet_hours_waits() -> None:
    cadence = Cadence(skip_late_after_days=1)
    due = START
    assert verdict(due, due + timedelta(hours=23), cadence, DAY) == "run"
    assert verdict(due, due + timedelta(hours=25), cadence, DAY) == "too_late"
    assert verdict(due, due + timedelta(seconds=3), cadence, 2.0) == "too_late"
    night = Cadence(time_zone="UTC", quiet=QuietHours(22, 6))
    assert verdict(due, due.replace(hour=23), night, DAY) == "quiet"


@pytest.mark.parametrize(
    ("signal", "reason"),
    [
        ({"source": "api", "event": "replied"}, "replied"),
        ({"source": "api", "event": "not_interested"}, "not_interested"),
        ({"source": "ghl", "event": "InboundMessage", "ghl_direction": "inbound"}, "replied"),
        ({"source": "ghl", "event": "InboundMessage", "ghl_direction": "outbound"}, None),
        ({"source": "ghl", "event": "AppointmentCreate"}, "booked"),
        ({"source": "ghl", "event": "OpportunityStatusUpdate", "ghl_status": "won"}, "won"),
        ({"source": "ghl", "event": "OpportunityStatusUpdate", "ghl_status": "lost"}, "lost"),
        ({"source": "ghl", "event": "OpportunityStatusUpdate", "ghl_status": "abandoned"}, "not_interested"),
        ({"source": "ghl", "event": "OpportunityStatusUpdate", "ghl_status": "open"}, None),
        ({"source": "ghl", "event": "ContactDndUpdate", "ghl_dnd": True}, "opted_out"),
        ({"source": "ghl", "event": "ContactDndUpdate", "ghl_dnd": False}, None),
    ],
)
def test_what_stops_a_cadence(signal: dict[str, object], reason: str | None) -> None:
    assert stop_reason(LeadEngagementRecordedPayload.model_validate(signal)) == reason


def test_a_task_carries_its_step_marker_and_ghls_required_fields() -> None:
    fields = task_fields("lead-1", 2, 3, START, "step-id")
    assert fields["dueDate"] == "2026-03-02T15:00:00Z" and fields["completed"] is False
    assert "ref jorge-follow-up:step-id" in fields["body"] and fields["title"]


def test_ghl_signatures_verify_with_the_signers_key_only() -> None:
    signer = WebhookSigner()
    body, headers = signer.webhook({"type": "InboundMessage", "locationId": "loc"})
    assert signature_valid(signer.public_pem, body, headers["x-wh-signature"])
    assert not signature_valid(signer.public_pem, body + b" ", headers["x-wh-signature"])
    assert not signature_valid(GHL_PUBLIC_KEY, body, headers["x-wh-signature"])  # GHL's real key
    assert not signature_valid(signer.public_pem, body, "not base64!")


def test_timestamps_outside_the_tolerance_are_stale() -> None:
    now = datetime(2026, 1, 28, 14, 35, tzinfo=UTC)
    assert timestamp_fresh("2026-01-28T14:31:00Z", now, 300)
    assert not timestamp_fresh("2026-01-28T14:29:00Z", now, 300)
    assert not timestamp_fresh("2026-01-28T14:41:00Z", now, 300)
    assert not timestamp_fresh(None, now, 300)
    assert not timestamp_fresh("yesterday", now, 300)
