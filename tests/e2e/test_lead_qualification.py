"""HTTP in, Kafka out: a lead posted to the gateway is qualified, published and readable."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import httpx

from jorge_runtime.settings import Settings
from schemas.topics import LEAD_QUALIFIED, TopicNames
from tests.support.leads import HOT_BUYER, wait_until_qualified
from tests.support.services import ServiceProcess, read_topic


async def test_posted_lead_is_qualified_published_and_readable(
    client: httpx.AsyncClient, qualifier: ServiceProcess, settings: Settings, topics: TopicNames
) -> None:
    response = await client.post("/v1/leads/qualify", json=HOT_BUYER)
    assert response.status_code == 201, response.text
    accepted = response.json()
    assert accepted["status"] == "in_progress"
    assert accepted["qualification_id"].startswith("qual-")
    assert accepted["status_url"] == "/v1/leads/lead-001/qualification"
    assert response.headers["x-request-id"]

    view = await wait_until_qualified(client, "lead-001")
    assert view["qualification_id"] == accepted["qualification_id"]
    assert view["result"]["intent"] == "buyer_intent"
    assert view["result"]["temperature"] == "hot"
    assert view["result"]["financial_readiness"]["pre_approved"] is True
    assert view["engine"] == "rules-v1"

    assert settings.kafka_bootstrap_servers
    records = await read_topic(
        settings.kafka_bootstrap_servers, topics(LEAD_QUALIFIED), until=lambda got: len(got) >= 1
    )
    assert len(records) == 1
    event = records[0].json()
    assert records[0].key == "lead-001"
    assert records[0].headers["event-type"] == "lead.qualified"
    assert event["event_type"] == "lead.qualified" and event["schema_version"] == 1
    assert event["payload"]["qualification_id"] == accepted["qualification_id"]
    assert event["payload"]["lead"]["phone"] == "+19095550143"
    assert event["correlation_id"] == response.headers["x-request-id"]


async def test_waiting_answers_with_the_outcome_and_the_organisations_booking_link(
    client: httpx.AsyncClient, qualifier: ServiceProcess, pool: asyncpg.Pool, organization: str
) -> None:
    from services.gateway.tenancy import TenancyStore

    no_link = await client.post("/v1/leads/qualify", json={**HOT_BUYER, "lead_id": "lead-nolink"})
    assert no_link.status_code == 201 and no_link.json()["schedule_showing_url"] is None
    assert no_link.json()["intent"] is None  # not asked to wait

    booking = "https://book.example.com/widget/booking/abc?lead={lead_id}"
    assert await TenancyStore(pool).set_booking_url(organization, booking)
    started = time.monotonic()
    response = await client.post("/v1/leads/qualify?wait=20", json={**HOT_BUYER, "lead_id": "lead:007"})
    assert response.status_code == 201, response.text
    answer = response.json()
    assert time.monotonic() - started < 15  # woken by the qualifier's commit, not the deadline
    assert answer["status"] == "completed"
    assert (answer["intent"], answer["temperature"]) == ("buyer_intent", "hot")
    assert answer["next_action"] == "Schedule showing"
    assert answer["schedule_showing_url"] == "https://book.example.com/widget/booking/abc?lead=lead%3A007"
    view = (await client.get("/v1/leads/lead:007/qualification")).json()
    assert view["schedule_showing_url"] == answer["schedule_showing_url"]
    assert view["result"]["next_action"] == answer["next_action"]


async def test_waiting_past_the_deadline_answers_in_progress(client: httpx.AsyncClient) -> None:
    # No qualifier runs here: the wait runs out and the answer is the plain 201.
    response = await client.post("/v1/leads/qualify?wait=0.5", json=HOT_BUYER)
    assert response.status_code == 201
    assert response.json()["status"] == "in_progress" and response.json()["intent"] is None
    too_long = await client.post("/v1/leads/qualify?wait=31", json={**HOT_BUYER, "lead_id": "lead-002"})
    assert too_long.status_code == 422


async def test_invalid_phone_is_a_clear_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/leads/qualify", json={**HOT_BUYER, "phone": "12"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_phone"
    assert "phone" in response.json()["message"]


async def test_invalid_body_lists_each_problem(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/leads/qualify", json={"lead_id": "has spaces", "email": "nope"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert {d["field"] for d in body["details"]} >= {"lead_id", "email"}
    malformed = await client.post(
        "/v1/leads/qualify", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400 and malformed.json()["error"] == "invalid_json"


async def test_second_request_while_in_progress_is_409_and_changes_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool, organization: str
) -> None:
    # No qualifier runs here, so the first qualification stays open.
    first = await client.post("/v1/leads/qualify", json=HOT_BUYER)
    assert first.status_code == 201
    second = await client.post(
        "/v1/leads/qualify", json={**HOT_BUYER, "name": "Someone Else"}, headers={"Idempotency-Key": "k-409"}
    )
    assert second.status_code == 409
    assert second.json()["error"] == "lead_already_in_qualification"
    view = await client.get("/v1/leads/lead-001/qualification")
    assert view.json()["status"] == "in_progress"
    assert view.json()["qualification_id"] == first.json()["qualification_id"]
    # The refused request wrote nothing: not the lead's new name, not an event; its key keeps
    # the 409 as its answer but was never marked committed.
    lead = await pool.fetchval(
        "SELECT name FROM leads WHERE organization_id = $1 AND lead_id = 'lead-001'", organization
    )
    assert lead == HOT_BUYER["name"]
    events = await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE consumer = 'gateway' AND convert_from(body, 'UTF8') LIKE $1",
        f"%{organization}%",
    )
    assert events == 1
    key = await pool.fetchrow(
        "SELECT status, committed_at FROM idempotency_keys WHERE organization_id = $1", organization
    )
    assert key is not None and (key["status"], key["committed_at"]) == (409, None)


async def test_credentials_are_required_and_checked(gateway: ServiceProcess) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url) as anonymous:
        missing = await anonymous.post("/v1/leads/qualify", json=HOT_BUYER)
        wrong = await anonymous.get(
            "/v1/leads/lead-001/qualification", headers={"Authorization": "Bearer jk_live_not-a-real-key"}
        )
    assert missing.status_code == 401 and missing.json()["error"] == "missing_credentials"
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_api_key"
    assert missing.headers["www-authenticate"] == "Bearer"


async def test_another_organisation_sees_nothing(
    client: httpx.AsyncClient, gateway: ServiceProcess, pool: asyncpg.Pool
) -> None:
    from services.gateway.tenancy import TenancyStore

    assert (await client.post("/v1/leads/qualify", json=HOT_BUYER)).status_code == 201
    tenancy = TenancyStore(pool)
    await tenancy.create_organization("org-other", "Other Realty")
    other_key = (await tenancy.issue_key("org-other", "test")).secret
    async with httpx.AsyncClient(
        base_url=gateway.base_url, headers={"Authorization": f"Bearer {other_key}"}
    ) as other:
        response = await other.get("/v1/leads/lead-001/qualification")
    assert response.status_code == 404
    assert response.json()["error"] == "qualification_not_found"


async def test_health_reports_each_dependency(gateway: ServiceProcess) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        assert (await http.get("/health")).json()["status"] == "ok"
        assert (await http.get("/v1/health")).json() == (await http.get("/health")).json()
        detailed = (await http.get("/health/detailed")).json()
    assert detailed["status"] == "ok"
    assert set(detailed["components"]) == {"kafka", "postgresql", "redis"}
    assert all(c["latency_ms"] >= 0 for c in detailed["components"].values())


async def test_a_stale_open_qualification_no_longer_blocks_the_lead(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    first = await client.post("/v1/leads/qualify", json=HOT_BUYER)
    # Its event was lost or dead-lettered long ago: age it past QUALIFICATION_STALE_AFTER_SECONDS.
    await pool.execute(
        "UPDATE qualifications SET created_at = now() - interval '1 hour' WHERE qualification_id = $1",
        first.json()["qualification_id"],
    )
    second = await client.post("/v1/leads/qualify", json=HOT_BUYER)
    assert second.status_code == 201
    closed = await pool.fetchrow(
        "SELECT status, failure_reason FROM qualifications WHERE qualification_id = $1",
        first.json()["qualification_id"],
    )
    assert closed is not None
    assert dict(closed) == {"status": "failed", "failure_reason": "timed out"}


async def test_a_revoked_key_stops_working(
    settings: Settings, topics: TopicNames, pool: asyncpg.Pool, log_dir: Path
) -> None:
    from services.gateway.tenancy import TenancyStore

    tenancy = TenancyStore(pool)
    await tenancy.create_organization("org-revoking", "Revoking Realty")
    issued = await tenancy.issue_key("org-revoking", "soon revoked")
    quick_to_forget = settings.model_copy(update={"auth_cache_seconds": 0.2})
    gateway = await ServiceProcess.gateway(quick_to_forget, log_dir).start()
    try:
        async with httpx.AsyncClient(
            base_url=gateway.base_url, headers={"Authorization": f"Bearer {issued.secret}"}
        ) as http:
            assert (await http.get("/v1/leads/nobody/qualification")).status_code == 404
            await tenancy.revoke_key(issued.key_id)
            await asyncio.sleep(0.3)
            revoked = await http.get("/v1/leads/nobody/qualification")
    finally:
        gateway.stop()
    assert revoked.status_code == 401
    assert revoked.json()["error"] == "api_key_revoked"
