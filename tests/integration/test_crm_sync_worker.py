"""crm_sync against the real broker, PostgreSQL, Redis and the GHL sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from jorge_runtime.settings import Settings
from schemas.buyers import BuyerMatched, BuyerMatchedPayload, MatchResults, PropertyListing, PropertyMatch
from schemas.sellers import (
    Cma,
    ConsultationRequest,
    ConsultationRequested,
    ConsultationRequestedPayload,
    PriceRecommendation,
    SellerAnalysisResult,
    SellerAnalyzed,
    SellerAnalyzedPayload,
)
from schemas.topics import (
    BUYER_MATCHED,
    CRM_RETRY_TOPICS,
    SELLER_ANALYZED,
    SELLER_CONSULTATION_REQUESTED,
    TopicNames,
)
from tests.support.ghl import Sandbox, publish, publish_qualified, qualified_event, topic_records
from tests.support.services import ServiceProcess
from tests.support.waiting import eventually


@pytest.fixture
def crm_settings(settings: Settings, sandbox: Sandbox, organization: str) -> Settings:
    return settings.model_copy(
        update={
            "ghl_base_url": sandbox.url,
            "ghl_token": SecretStr(f"token-{organization}"),
            "ghl_organization": organization,
            "ghl_location_id": f"loc-{organization}",
            "ghl_pipeline_id": "pipeline-buyers",
            "ghl_pipeline_stage_id": "stage-new",
            "ghl_budget_burst": 1000,
            "ghl_budget_interval_ms": 1000,
            "ghl_budget_margin_ms": 50,
            "crm_retry_delays_seconds": "0.3,0.6,1,1,1",
            "crm_max_attempts": 6,
        }
    )


@pytest.fixture
async def crm_sync(
    crm_settings: Settings, topics: TopicNames, log_dir: Path
) -> AsyncIterator[ServiceProcess]:
    service = ServiceProcess.worker("crm_sync", crm_settings, log_dir)
    yield service
    service.stop()


async def test_qualified_leads_become_contacts_with_tags_note_and_hot_opportunity(
    crm_settings: Settings, topics: TopicNames, organization: str, sandbox: Sandbox, crm_sync: ServiceProcess
) -> None:
    assert crm_settings.kafka_bootstrap_servers
    events = [qualified_event(organization, n, hot=n % 2 == 0) for n in range(4)]
    await crm_sync.start()
    await publish_qualified(crm_settings.kafka_bootstrap_servers, topics, events)
    location = f"loc-{organization}"

    async def all_noted() -> list[dict[str, Any]] | None:
        contacts = await sandbox.contacts(location)
        return contacts if len(contacts) == 4 and all(c["notes"] for c in contacts) else None

    await eventually(all_noted, what="4 contacts with notes")
    await publish_qualified(crm_settings.kafka_bootstrap_servers, topics, [events[0]])  # a redelivery
    await asyncio.sleep(1.5)
    contacts = {c["email"]: c for c in await sandbox.contacts(location)}
    assert len(contacts) == 4
    for n in range(4):
        contact = contacts[f"lead{n}@example.com"]
        hot = n % 2 == 0
        assert contact["firstName"] == "Lead" and contact["lastName"] == f"Number{n}"
        assert contact["phone"] == f"+1909555{n:04d}"
        assert set(contact["tags"]) == {
            "jorge", "intent:buyer_intent", f"temperature:{'hot' if hot else 'cold'}", "source:zillow"
        }  # fmt: skip
        assert len(contact["notes"]) == 1
        assert "Next action:" in contact["notes"][0]["body"]
        assert f"ref jorge:{events[n].event_id}" in contact["notes"][0]["body"]
        if hot:
            [opportunity] = contact["opportunities"]
            assert opportunity["pipelineId"] == "pipeline-buyers"
            assert opportunity["pipelineStageId"] == "stage-new"
            assert opportunity["monetaryValue"] == 750_000 + n
            assert opportunity["status"] == "open"
        else:
            assert contact["opportunities"] == []
    assert (await sandbox.stats()).get("rate_limited", 0) == 0


async def test_consultation_cma_and_matches_become_notes_on_the_same_contacts(
    crm_settings: Settings, topics: TopicNames, organization: str, sandbox: Sandbox, crm_sync: ServiceProcess
) -> None:
    bootstrap = crm_settings.kafka_bootstrap_servers
    assert bootstrap
    location = f"loc-{organization}"
    await crm_sync.start()
    consultation = ConsultationRequested(
        organization_id=organization,
        correlation_id="req-c",
        payload=ConsultationRequestedPayload(
            consultation_id="consult-1",
            seller_id="seller-1",
            request=ConsultationRequest(
                preferred_times=[datetime(2031, 1, 15, 18, 0, tzinfo=UTC)],
                name="Sam Rivera",
                email="sam@example.com",
                notes="Mornings are best",
            ),
        ),
    )
    lead = qualified_event(organization, 5, hot=False)
    await publish(bootstrap, topics(SELLER_CONSULTATION_REQUESTED), [consultation], lambda e: "seller-1")
    await publish_qualified(bootstrap, topics, [lead])

    async def noted(email: str, n: int) -> bool:
        found = [c for c in await sandbox.contacts(location) if c["email"] == email]
        return len(found) == 1 and len(found[0]["notes"]) == n

    await eventually(lambda: noted("sam@example.com", 1), what="the consultation note")
    await eventually(lambda: noted("lead5@example.com", 1), what="the lead's note")
    analyzed = SellerAnalyzed(
        organization_id=organization,
        correlation_id="req-s",
        payload=SellerAnalyzedPayload(
            analysis_id="cma-1",
            seller_id="seller-1",
            status="completed",
            result=SellerAnalysisResult(
                cma=Cma(
                    market_analysis={},
                    comparable_properties=[],
                    price_recommendation=PriceRecommendation(
                        low=800_000, mid=850_000, high=900_000, confidence=0.8
                    ),
                ),
                market_conditions="Balanced",
                recommendations=["Stage the living room"],
            ),
            completed_at=datetime.now(UTC),
        ),
    )
    matched = BuyerMatched(
        organization_id=organization,
        correlation_id="req-b",
        payload=BuyerMatchedPayload(
            match_session_id="match-1",
            buyer_id="lead-00005",
            status="completed",
            result=MatchResults(
                total_matches=1,
                matches=[
                    PropertyMatch(
                        rank=1,
                        property=PropertyListing(id="p1", address="1 Elm St", price=725_000),
                        match_score=0.9,
                        explanation="3 bed in Victoria",
                    )
                ],
                next_actions=["Schedule showing"],
            ),
            completed_at=datetime.now(UTC),
        ),
    )
    await publish(bootstrap, topics(SELLER_ANALYZED), [analyzed], lambda e: "seller-1")
    await publish(bootstrap, topics(BUYER_MATCHED), [matched], lambda e: "lead-00005")
    await eventually(lambda: noted("sam@example.com", 2), what="the CMA note")
    await eventually(lambda: noted("lead5@example.com", 2), what="the matches note")
    contacts = {c["email"]: c for c in await sandbox.contacts(location)}
    assert len(contacts) == 2
    sam = contacts["sam@example.com"]
    assert {"seller", "consultation-requested", "cma-ready"} <= set(sam["tags"])
    assert any("$800,000 - $900,000" in n["body"] for n in sam["notes"])
    assert any("1 Elm St" in n["body"] for n in contacts["lead5@example.com"]["notes"])
    assert "homes-matched" in contacts["lead5@example.com"]["tags"]


async def test_a_timeout_that_still_wrote_is_retried_through_the_delay_topics_without_duplicates(
    crm_settings: Settings, topics: TopicNames, organization: str, sandbox: Sandbox, log_dir: Path
) -> None:
    bootstrap = crm_settings.kafka_bootstrap_servers
    assert bootstrap
    location = f"loc-{organization}"
    impatient = crm_settings.model_copy(update={"ghl_timeout_seconds": 1.0})
    service = ServiceProcess.worker("crm_sync", impatient, log_dir)
    await service.start()
    events = [qualified_event(organization, n, hot=False) for n in range(2)]
    try:
        # GHL carries the call out but answers after the client gave up: first an upsert (the
        # contact exists although we never saw its id), then a note (written, outcome unknown).
        for event, late_path in zip(events, ("POST /contacts/upsert", "/notes"), strict=True):
            await sandbox.faults(late_ms=2500, late_answers=1, late_path=late_path)
            await publish_qualified(bootstrap, topics, [event])
            email = event.payload.lead.email

            async def noted(email: str | None = email) -> bool:
                found = [c for c in await sandbox.contacts(location) if c["email"] == email]
                return len(found) == 1 and len(found[0]["notes"]) == 1

            await eventually(noted, what=f"{email}'s contact and note")
        await asyncio.sleep(2.5)  # every late answer is in: room for a duplicate to show up
        contacts = await sandbox.contacts(location)
        assert len(contacts) == 2 and all(len(c["notes"]) == 1 for c in contacts), contacts
        stats = await sandbox.stats()
        assert stats["injected_late"] == 2 and stats["notes_created"] == 2, stats
        # Retried by republishing to the first delay topic as attempt 2, not by waiting in the handler.
        retried = await topic_records(bootstrap, topics(CRM_RETRY_TOPICS[0]))
        assert sorted(r.headers["event-id"] for r in retried) == sorted(str(e.event_id) for e in events)
        assert all(r.headers["crm-attempt"] == "2" for r in retried)
        assert all("timeout" in r.headers["crm-last-error"] for r in retried), [r.headers for r in retried]
    finally:
        service.stop()


async def test_a_later_event_updates_the_changed_contact_fields_and_leaves_tags_alone(
    crm_settings: Settings, topics: TopicNames, organization: str, sandbox: Sandbox, log_dir: Path
) -> None:
    bootstrap = crm_settings.kafka_bootstrap_servers
    assert bootstrap
    location = f"loc-{organization}"
    mapped = crm_settings.model_copy(update={"ghl_custom_fields": "temperature=contact.temperature"})
    [field] = await sandbox.custom_fields(
        location,
        [{"name": "Temperature", "fieldKey": "contact.temperature", "dataType": "SINGLE_OPTIONS",
          "picklistOptions": ["Hot", "Warm", "Cold"]}],
    )  # fmt: skip
    service = ServiceProcess.worker("crm_sync", mapped, log_dir)
    await service.start()
    try:
        first = qualified_event(organization, 7, hot=False)
        await publish_qualified(bootstrap, topics, [first])

        async def notes(n: int) -> dict[str, Any] | None:
            contacts = await sandbox.contacts(location)
            return contacts[0] if len(contacts) == 1 and len(contacts[0]["notes"]) == n else None

        contact = await eventually(lambda: notes(1), what="the first note")
        async with httpx.AsyncClient(base_url=sandbox.url) as ghl:  # a salesperson tags the contact
            headers = {"Authorization": f"Bearer token-{organization}", "Version": "2021-07-28"}
            tagged = await ghl.post(
                f"/contacts/{contact['id']}/tags", json={"tags": ["vip"]}, headers=headers
            )
            assert tagged.status_code == 201
        later = qualified_event(organization, 7, hot=True)
        lead = later.payload.lead.model_copy(
            update={"email": "seven@new.example.com", "phone": "+19095550777"}
        )
        later = later.model_copy(update={"payload": later.payload.model_copy(update={"lead": lead})})
        await publish_qualified(bootstrap, topics, [later])
        updated = await eventually(lambda: notes(2), what="the second note")
    finally:
        service.stop()
    assert updated["id"] == contact["id"]
    assert updated["email"] == "seven@new.example.com" and updated["phone"] == "+19095550777"
    # The key was resolved to the location's field id, the value spelled as the picklist has it.
    assert updated["customFields"] == [{"id": field["id"], "field_value": "Hot"}]
    assert {"vip", "temperature:cold", "temperature:hot", "jorge"} <= set(updated["tags"])
    assert (await sandbox.stats())["contacts_put"] == 1
