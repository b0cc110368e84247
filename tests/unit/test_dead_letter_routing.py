"""Pure parts of the dead letters: what a body says about itself, where a replay goes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from jorge_cli.dlq import destination, still_invalid
from jorge_runtime.kafka.dead_letters import DeadLetter, EventIdentity, identify
from schemas.topics import CRM_RETRY_TOPICS, TopicNames
from services.crm_sync.ghl.retry_schedule import ATTEMPT_HEADER, DUE_AT_HEADER, LANE_HEADER


def letter(
    body: bytes, *, lane: str | None, origin: str | None = "p.lead.qualification_requested"
) -> DeadLetter:
    return DeadLetter(
        id=7, organization_id="org", event_id=None, event_type=None, message_key="lead-1", lane=lane,
        reason="attempts_exhausted", detail="RuntimeError: bug", attempts=5, headers={"event-id": "x"},
        body=body, created_at=datetime.now(UTC), replayed_at=None, replay_count=0, discarded_at=None,
        discard_note=None, consumer="qualifier" if lane is None else "crm_sync", origin_topic=origin,
    )  # fmt: skip


def test_identify_reads_an_envelope_and_tolerates_garbage() -> None:
    event_id = uuid.uuid4()
    body = json.dumps({"event_id": str(event_id), "event_type": "lead.qualified", "organization_id": "acme"})
    assert identify(body.encode()) == EventIdentity(event_id, "lead.qualified", "acme")
    assert identify(b"{not json").event_id is None
    assert identify(b"[1, 2]").organization_id is None
    assert identify(b'{"event_id": "nope", "organization_id": 5}').organization_id is None


def test_a_consumer_letter_goes_back_to_its_topic_with_its_headers() -> None:
    topic, headers = destination(letter(b"{}", lane=None), TopicNames("p."), now_ms=1)
    assert (topic, headers) == ("p.lead.qualification_requested", {"event-id": "x"})


def test_a_crm_lane_letter_goes_to_the_first_retry_topic_due_now() -> None:
    topic, headers = destination(letter(b"{}", lane="hot"), TopicNames("p."), now_ms=123)
    assert topic == TopicNames("p.")(CRM_RETRY_TOPICS[0])
    assert headers == {"event-id": "x", ATTEMPT_HEADER: "1", DUE_AT_HEADER: "123", LANE_HEADER: "hot"}


def test_only_a_body_that_is_still_not_an_object_is_refused() -> None:
    assert still_invalid(letter(b'{"event_type": "x"}', lane=None)) is None
    assert still_invalid(letter(b"[]", lane=None)) == "not a JSON object"
    assert still_invalid(letter(b"{not json", lane=None)) is not None
