"""Webhook bodies: the spec's shape, and the size limit."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from schemas.leads import LeadQualifiedPayload, LeadToQualify
from schemas.qualification import Intent, Qualification, Temperature
from services.crm_sync.webhook_delivery.payloads import encode, lead_qualified_data, render

WHEN = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)


def qualified() -> LeadQualifiedPayload:
    return LeadQualifiedPayload(
        qualification_id="qual-001",
        lead=LeadToQualify(lead_id="lead-001", name="Maria", phone="+19095550143"),
        qualification=Qualification(
            intent=Intent.BUYER,
            temperature=Temperature.HOT,
            next_action="Call today",
            confidence=0.9,
            engine="rules-v1",
        ),
        completed_at=WHEN,
    )


def test_lead_qualified_has_the_spec_shape() -> None:
    body = render("lead.qualified", WHEN, lead_qualified_data(qualified()), 20_480)
    assert body["event"] == "lead.qualified" and body["timestamp"] == "2026-02-02T10:00:00Z"
    data = body["data"]
    assert (data["lead_id"], data["qualification_id"], data["intent"], data["temperature"]) == (
        "lead-001", "qual-001", "buyer_intent", "hot",
    )  # fmt: skip
    assert json.loads(encode(body)) == body


def test_an_oversized_body_keeps_only_its_ids() -> None:
    data = {"match_session_id": "match-1", "buyer_id": "b-1", "matches": ["x" * 1000] * 50}
    body = render("buyer.matched", WHEN, data, 4096)
    assert body["data"] == {"match_session_id": "match-1", "buyer_id": "b-1", "truncated": True}
    assert len(encode(body)) <= 4096
