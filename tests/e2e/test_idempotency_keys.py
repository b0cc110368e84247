"""Idempotency-Key over HTTP against a real gateway and PostgreSQL: a retry never runs twice."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from schemas.limits import GENERAL
from services.gateway.idempotency import fingerprint
from services.gateway.tenancy import TenancyStore

LEAD = {"lead_id": "idem-1", "phone": "+19095550143", "message": "Looking to buy in Rancho"}


@pytest.fixture(autouse=True)
async def generous_limits(pool: asyncpg.Pool, organization: str) -> None:
    """Bursts here are about keys, not rate limits."""
    for name in GENERAL:
        await TenancyStore(pool).set_rate_limit(organization, name, 100_000)


async def _qualifications(pool: asyncpg.Pool, organization: str, lead_id: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM qualifications WHERE organization_id = $1 AND lead_id = $2",
            organization,
            lead_id,
        )
    )


async def test_same_key_same_body_replays_the_first_answer_and_other_body_is_422(
    client: httpx.AsyncClient, pool: asyncpg.Pool, organization: str
) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = await client.post("/v1/leads/qualify", json=LEAD, headers=key)
    assert first.status_code == 201, first.text
    # The same JSON with its keys in another order and other spacing is the same request.
    reordered = httpx.Headers({**key, "Content-Type": "application/json"})
    body = '{ "message": "Looking to buy in Rancho", "phone": "+19095550143", "lead_id": "idem-1" }'
    again = await client.post("/v1/leads/qualify", content=body, headers=reordered)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    # Accepted with the lead in one statement: a gateway dying before recording the answer
    # leaves a committed key, and the retry is never run a second time.
    assert await pool.fetchval(
        """SELECT committed_at IS NOT NULL FROM idempotency_keys
            WHERE organization_id = $1 AND idempotency_key = $2""",
        organization,
        key["Idempotency-Key"],
    )

    other = await client.post("/v1/leads/qualify", json={**LEAD, "message": "selling"}, headers=key)
    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_reused"
    elsewhere = await client.post("/v1/sellers/analyze", json={}, headers=key)
    assert elsewhere.status_code == 422 and elsewhere.json()["error"] == "idempotency_key_reused"

    assert await _qualifications(pool, organization, "idem-1") == 1
    # Without a key, the second request runs (and meets the open qualification: 409).
    assert (await client.post("/v1/leads/qualify", json=LEAD)).status_code == 409
    # A refusal is an answer too: the key of a 4xx replays it.
    refused_key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    refused = [await client.post("/v1/leads/qualify", json=LEAD, headers=refused_key) for _ in range(2)]
    assert [r.status_code for r in refused] == [409, 409]
    assert refused[1].headers["idempotent-replayed"] == "true"


async def test_concurrent_retries_run_once_and_keys_are_per_organisation(
    client: httpx.AsyncClient, other_client: httpx.AsyncClient, pool: asyncpg.Pool, organization: str
) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    lead = {**LEAD, "lead_id": "idem-race"}
    posts = (client.post("/v1/leads/qualify", json=lead, headers=key) for _ in range(6))
    answers = await asyncio.gather(*posts)
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {201, 409}, [a.text for a in answers]
    winners = [a for a in answers if a.status_code == 201]
    assert winners and all(a.json() == winners[0].json() for a in winners)
    for loser in (a for a in answers if a.status_code == 409):
        assert loser.json()["error"] == "idempotency_key_in_progress"
    assert await _qualifications(pool, organization, "idem-race") == 1

    theirs = await other_client.post("/v1/leads/qualify", json=lead, headers=key)
    assert theirs.status_code == 201 and "idempotent-replayed" not in theirs.headers
    everyone = await pool.fetchval("SELECT count(*) FROM qualifications WHERE lead_id = 'idem-race'")
    assert everyone == 2  # one per organisation: the same key is another key elsewhere


async def test_answer_lost_after_commit_is_never_run_again_and_bad_keys_are_400(
    client: httpx.AsyncClient, pool: asyncpg.Pool, organization: str
) -> None:
    lead = {**LEAD, "lead_id": "idem-lost"}
    body = httpx.Request("POST", "http://x", json=lead).content
    # What a gateway killed between its commit and recording the answer leaves behind.
    await pool.execute(
        """INSERT INTO idempotency_keys (organization_id, idempotency_key, fingerprint, locked_until,
                                         committed_at, expires_at)
           VALUES ($1, 'lost', $2, now() - interval '1 s', now(), now() + interval '1 h')""",
        organization,
        fingerprint("POST", "/v1/leads/qualify", body),
    )
    lost = await client.post("/v1/leads/qualify", json=lead, headers={"Idempotency-Key": "lost"})
    assert lost.status_code == 409 and lost.json()["error"] == "idempotency_key_outcome_unknown"
    assert await _qualifications(pool, organization, "idem-lost") == 0

    too_long = await client.post("/v1/leads/qualify", json=lead, headers={"Idempotency-Key": "x" * 300})
    assert too_long.status_code == 400 and too_long.json()["error"] == "invalid_idempotency_key"


async def test_an_answer_holding_a_signing_secret_is_never_stored_nor_replayed(
    client: httpx.AsyncClient, pool: asyncpg.Pool, organization: str
) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    hook = {"url": "https://hooks.example.com/jorge", "events": ["lead.qualified"]}
    first = await client.post("/v1/webhooks/register", json=hook, headers=key)
    assert first.status_code == 201 and first.json()["secret"].startswith("whsec_")
    retry = await client.post("/v1/webhooks/register", json=hook, headers=key)
    assert retry.status_code == 409, retry.text
    assert retry.json()["error"] == "idempotency_key_secret_not_replayed"
    assert first.json()["id"] in retry.json()["message"]
    stored = await pool.fetchval(
        "SELECT response FROM idempotency_keys WHERE organization_id = $1 AND idempotency_key = $2",
        organization,
        key["Idempotency-Key"],
    )
    assert first.json()["secret"].encode() not in bytes(stored) and b'"secret"' not in bytes(stored)
    endpoints = await pool.fetchval(
        "SELECT count(*) FROM webhook_endpoints WHERE organization_id = $1", organization
    )
    assert endpoints == 1
