"""Webhook subscriptions over HTTP against a real gateway: records, secrets, test events,
delivery history and redelivery, organisation isolation, and Kafka being down."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from jorge_cli.stack import EmbeddedStack
from jorge_runtime.settings import Settings
from jorge_runtime.webhook_secrets import unseal, webhook_secret_cipher
from schemas.limits import GENERAL
from schemas.topics import WEBHOOK_DELIVERY_REQUESTED, TopicNames
from services.gateway.tenancy import TenancyStore, hash_key
from tests.support.services import KafkaRecord, ServiceProcess, read_topic

HOOK = {
    "url": "https://hooks.example.com/jorge",
    "events": ["lead.qualified", "buyer.matched", "seller.analyzed"],
}
GIVEN_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdefghijklmnopqrstuv").decode()


async def organization_of(pool: asyncpg.Pool, api_key: str) -> str:
    record = await TenancyStore(pool).find_key(key_hash=hash_key(api_key))
    assert record is not None
    return record.caller.organization_id


@pytest.fixture(autouse=True)
async def generous_limits(pool: asyncpg.Pool, api_key: str) -> None:
    """These tests send bursts well over 10 requests a second; limits are tested elsewhere."""
    organization = await organization_of(pool, api_key)
    for name in GENERAL:
        await TenancyStore(pool).set_rate_limit(organization, name, 100_000)


async def register(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/v1/webhooks/register", json=HOOK | overrides)
    assert response.status_code == 201, response.text
    return response.json()


async def delivery_requests(settings: Settings, topics: TopicNames, count: int) -> list[KafkaRecord]:
    assert settings.kafka_bootstrap_servers
    return await read_topic(
        settings.kafka_bootstrap_servers,
        topics(WEBHOOK_DELIVERY_REQUESTED),
        until=lambda got: len(got) >= count,
    )


async def stored_secrets(pool: asyncpg.Pool, settings: Settings, endpoint_id: str) -> tuple[str | None, ...]:
    """The endpoint's current and previous secrets as stored: encrypted, never in plain text."""
    row = await pool.fetchrow(
        """SELECT secret, previous_secret, secret_encrypted, previous_secret_encrypted
             FROM webhook_endpoints WHERE id = $1""",
        endpoint_id,
    )
    assert row is not None and row["secret"] is None and row["previous_secret"] is None
    cipher = webhook_secret_cipher(settings.crm_credentials_key)
    assert cipher is not None
    sealed = (row["secret_encrypted"], row["previous_secret_encrypted"])
    assert all(s is None or b"whsec_" not in s for s in sealed)
    return tuple(unseal(cipher, endpoint_id, s) for s in sealed)


async def test_register_with_a_generated_or_a_given_secret(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    generated = await register(client, description="CRM bridge")
    assert generated["id"].startswith("we_")
    assert generated["status"] == "active"
    assert generated["url"] == HOOK["url"] and generated["events"] == HOOK["events"]
    assert generated["description"] == "CRM bridge" and generated["max_concurrency"] == 10
    assert generated["created_at"] and generated["previous_secret_expires_at"] is None
    assert generated["secret"].startswith("whsec_")
    assert len(base64.b64decode(generated["secret"].removeprefix("whsec_"))) >= 24

    given = await register(
        client, secret=GIVEN_SECRET, events=["buyer.matched", "buyer.matched"], max_concurrency=3
    )
    assert given["secret"] == GIVEN_SECRET
    assert given["events"] == ["buyer.matched"] and given["max_concurrency"] == 3
    assert await stored_secrets(pool, settings, given["id"]) == (GIVEN_SECRET, None)

    # A secret of the subscriber's own, like the client's document shows: its whsec_ form is shown.
    own = await register(client, secret="our-crm-bridge-webhook-secret-2026")
    assert own["secret"] == "whsec_" + base64.b64encode(b"our-crm-bridge-webhook-secret-2026").decode()


async def test_registration_refuses_bad_secrets_events_and_urls(
    client: httpx.AsyncClient, pool: asyncpg.Pool, api_key: str
) -> None:
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"secret": "my-webhook-secret"}, 400, "invalid_webhook_secret"),
        ({"secret": "whsec_" + base64.b64encode(b"short").decode()}, 400, "invalid_webhook_secret"),
        ({"events": ["lead.qualified", "lead.created"]}, 400, "unknown_event"),
        ({"url": "http://127.0.0.1:9000/hook"}, 400, "webhook_url_not_allowed"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, 400, "webhook_url_not_allowed"),
        ({"url": "http://[::1]/hook"}, 400, "webhook_url_not_allowed"),
        ({"url": "https://user:pw@hooks.example.com/"}, 400, "invalid_webhook_url"),
        ({"url": "ftp://hooks.example.com/"}, 400, "invalid_webhook_url"),
        ({"events": []}, 422, "validation_error"),
        ({"max_concurrency": 51}, 422, "validation_error"),
        ({"url": "https://hooks.example.com/" + "a" * 2048}, 422, "validation_error"),
    ]
    for change, status, error in cases:
        response = await client.post("/v1/webhooks/register", json=HOOK | change)
        assert (response.status_code, response.json()["error"]) == (status, error), change
        assert "my-webhook-secret" not in response.text and "pw@" not in response.text
    organization = await organization_of(pool, api_key)
    assert (
        await pool.fetchval("SELECT count(*) FROM webhook_endpoints WHERE organization_id = $1", organization)
        == 0
    )


async def test_list_is_paginated_newest_first_without_secrets(client: httpx.AsyncClient) -> None:
    created = [(await register(client, description=f"n{n}"))["id"] for n in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/webhooks", params=params)).json()
        pages += 1
        assert all("secret" not in item for item in page["data"])
        seen += [item["id"] for item in page["data"]]
        assert page["has_more"] == (page["next_cursor"] is not None)
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3
    assert seen == list(reversed(created))
    everything = (await client.get("/v1/webhooks", params={"limit": 100})).json()
    assert len(everything["data"]) == 5 and everything["has_more"] is False
    bad = await client.get("/v1/webhooks", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_cursor"
    assert (await client.get("/v1/webhooks", params={"limit": 101})).status_code == 422


async def test_get_patch_and_soft_delete(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    endpoint = await register(client, description="first")
    path = f"/v1/webhooks/{endpoint['id']}"

    fetched = await client.get(path)
    assert fetched.status_code == 200
    assert "secret" not in fetched.json() and endpoint["secret"] not in fetched.text
    assert fetched.json()["url"] == HOOK["url"]

    patched = await client.patch(
        path,
        json={"url": "https://other.example.com/in", "events": ["seller.analyzed"], "max_concurrency": 2,
              "status": "disabled", "description": None},
    )  # fmt: skip
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["url"], body["events"], body["max_concurrency"]) == (
        "https://other.example.com/in",
        ["seller.analyzed"],
        2,
    )
    assert body["status"] == "disabled" and body["disabled_reason"] == "disabled_by_user"
    assert body["description"] is None and "secret" not in body

    resumed = (await client.patch(path, json={"status": "active"})).json()
    assert resumed["status"] == "active" and resumed["disabled_reason"] is None
    assert resumed["url"] == "https://other.example.com/in"  # fields left out are unchanged

    refused = await client.patch(path, json={"url": "http://10.0.0.7/hook"})
    assert refused.status_code == 400 and refused.json()["error"] == "webhook_url_not_allowed"
    unknown = await client.patch(path, json={"events": ["lead.deleted"]})
    assert unknown.status_code == 400 and unknown.json()["error"] == "unknown_event"
    assert (await client.patch(path, json={"status": "deleted"})).status_code == 422

    deleted = await client.delete(path)
    assert deleted.status_code == 204 and deleted.content == b""
    for response in (await client.get(path), await client.delete(path), await client.patch(path, json={})):
        assert response.status_code == 404 and response.json()["error"] == "webhook_not_found"
    assert (await client.get("/v1/webhooks")).json()["data"] == []
    row = await pool.fetchrow(
        "SELECT status, secret, secret_encrypted FROM webhook_endpoints WHERE id = $1", endpoint["id"]
    )
    assert row is not None  # kept for history, secret forgotten
    assert dict(row) == {"status": "deleted", "secret": None, "secret_encrypted": None}


async def test_rotation_shows_a_new_secret_once_and_keeps_the_old_one_for_the_overlap(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    endpoint = await register(client, secret=GIVEN_SECRET)
    rotated = await client.post(f"/v1/webhooks/{endpoint['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != GIVEN_SECRET
    assert await stored_secrets(pool, settings, endpoint["id"]) == (new_secret, GIVEN_SECRET)
    row = await pool.fetchrow(
        "SELECT previous_secret_expires_at FROM webhook_endpoints WHERE id = $1", endpoint["id"]
    )
    assert row is not None
    expected = datetime.now(UTC) + timedelta(hours=24)
    assert abs(row["previous_secret_expires_at"] - expected) < timedelta(minutes=1)
    shown = (await client.get(f"/v1/webhooks/{endpoint['id']}")).json()
    assert shown["previous_secret_expires_at"] is not None
    assert new_secret not in str(shown) and GIVEN_SECRET not in str(shown)


async def test_test_event_is_stored_published_listed_and_redeliverable(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, topics: TopicNames
) -> None:
    endpoint = await register(client)
    webhook_id = endpoint["id"]
    accepted = await client.post(f"/v1/webhooks/{webhook_id}/test", headers={"X-Request-ID": "req-test-1"})
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["message_id"].startswith("msg_") and body["delivery_id"].startswith("wd_")
    assert body["status"] == "pending" and body["event_type"] == "webhook.test"
    assert body["delivery_url"] == f"/v1/webhooks/{webhook_id}/deliveries/{body['delivery_id']}"

    [record] = await delivery_requests(settings, topics, 1)
    assert record.key == webhook_id
    assert record.headers["event-type"] == "webhook.delivery_requested"
    event = record.json()
    assert event["correlation_id"] == "req-test-1"
    assert event["payload"] == {
        "delivery_id": body["delivery_id"], "endpoint_id": webhook_id, "message_id": body["message_id"],
        "event_type": "webhook.test", "trigger": "manual",
    }  # fmt: skip

    listed = (await client.get(f"/v1/webhooks/{webhook_id}/deliveries")).json()
    [delivery] = listed["data"]
    assert (delivery["id"], delivery["message_id"]) == (body["delivery_id"], body["message_id"])
    assert (delivery["status"], delivery["attempt_count"], delivery["event_type"]) == (
        "pending",
        0,
        "webhook.test",
    )
    assert delivery["next_attempt_at"] is not None and delivery["last_response_code"] is None

    detail_path = f"/v1/webhooks/{webhook_id}/deliveries/{body['delivery_id']}"
    detail = (await client.get(detail_path)).json()
    assert detail["attempts"] == []
    assert detail["payload"]["event"] == "webhook.test"
    assert set(detail["payload"]) == {"event", "timestamp", "data"}
    assert detail["payload"]["data"]["webhook_id"] == webhook_id

    # What the delivery engine will write: a failed attempt, then the delivery gives up.
    await pool.execute(
        """INSERT INTO webhook_attempts (id, delivery_id, attempt_number, trigger, status, url,
                                         started_at, duration_ms, response_status, response_body)
           VALUES ($1, $2, 1, 'manual', 'failed', $3, now(), 153, 500, 'upstream exploded')""",
        f"wa_{uuid.uuid4().hex[:24]}", body["delivery_id"], HOOK["url"],
    )  # fmt: skip
    await pool.execute(
        """UPDATE webhook_deliveries SET status = 'failed', attempts = 1, last_response_code = 500,
                  next_attempt_at = NULL, next_trigger = 'scheduled' WHERE id = $1""",
        body["delivery_id"],
    )
    with pytest.raises(asyncpg.CheckViolationError):  # bodies are capped at 20 KB
        await pool.execute(
            """INSERT INTO webhook_attempts (id, delivery_id, attempt_number, trigger, status, url,
                                             started_at, response_body)
               VALUES ('wa_toolong', $1, 2, 'scheduled', 'failed', 'https://x', now(), $2)""",
            body["delivery_id"], "x" * 20_481,
        )  # fmt: skip
    detail = (await client.get(detail_path)).json()
    assert (
        detail["status"] == "failed" and detail["attempt_count"] == 1 and detail["last_response_code"] == 500
    )
    [attempt] = detail["attempts"]
    assert (attempt["attempt_number"], attempt["trigger"], attempt["status"]) == (1, "manual", "failed")
    assert (attempt["response_status"], attempt["duration_ms"]) == (500, 153)
    assert attempt["response_body"] == "upstream exploded" and attempt["error"] is None
    failed = (await client.get(f"/v1/webhooks/{webhook_id}/deliveries", params={"status": "failed"})).json()
    pending = (await client.get(f"/v1/webhooks/{webhook_id}/deliveries", params={"status": "pending"})).json()
    assert [d["id"] for d in failed["data"]] == [body["delivery_id"]] and pending["data"] == []

    again = await client.post(f"{detail_path}/redeliver")
    assert again.status_code == 202, again.text
    assert again.json()["message_id"] == body["message_id"]  # the same webhook-id
    records = await delivery_requests(settings, topics, 2)
    assert [r.json()["payload"]["message_id"] for r in records] == [body["message_id"]] * 2
    row = await pool.fetchrow(
        "SELECT status, next_trigger, attempts, next_attempt_at FROM webhook_deliveries WHERE id = $1",
        body["delivery_id"],
    )
    assert row is not None
    assert (row["status"], row["next_trigger"], row["attempts"]) == ("pending", "manual", 1)
    assert row["next_attempt_at"] is not None
    assert len((await client.get(detail_path)).json()["attempts"]) == 1  # history is kept

    missing = await client.post(f"/v1/webhooks/{webhook_id}/deliveries/wd_{'0' * 24}/redeliver")
    assert missing.status_code == 404 and missing.json()["error"] == "delivery_not_found"


async def test_deliveries_are_paginated(client: httpx.AsyncClient) -> None:
    webhook_id = (await register(client))["id"]
    sent = [(await client.post(f"/v1/webhooks/{webhook_id}/test")).json()["delivery_id"] for _ in range(3)]
    first = (await client.get(f"/v1/webhooks/{webhook_id}/deliveries", params={"limit": 2})).json()
    second = (
        await client.get(
            f"/v1/webhooks/{webhook_id}/deliveries", params={"limit": 2, "cursor": first["next_cursor"]}
        )
    ).json()
    assert first["has_more"] and not second["has_more"]
    assert [d["id"] for d in first["data"] + second["data"]] == list(reversed(sent))


async def test_a_disabled_endpoint_gets_no_test_event(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    webhook_id = (await register(client))["id"]
    await client.patch(f"/v1/webhooks/{webhook_id}", json={"status": "disabled"})
    response = await client.post(f"/v1/webhooks/{webhook_id}/test")
    assert response.status_code == 409 and response.json()["error"] == "webhook_disabled"
    assert (
        await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1", webhook_id) == 0
    )


async def test_another_organisation_gets_404_everywhere(
    client: httpx.AsyncClient, gateway: ServiceProcess, pool: asyncpg.Pool
) -> None:
    webhook_id = (await register(client))["id"]
    delivery_id = (await client.post(f"/v1/webhooks/{webhook_id}/test")).json()["delivery_id"]
    tenancy = TenancyStore(pool)
    other_org = f"org-{uuid.uuid4().hex[:10]}"
    await tenancy.create_organization(other_org, "Other Realty")
    other_key = (await tenancy.issue_key(other_org, "test")).secret
    base = f"/v1/webhooks/{webhook_id}"
    async with httpx.AsyncClient(
        base_url=gateway.base_url, headers={"Authorization": f"Bearer {other_key}"}
    ) as other:
        assert (await other.get("/v1/webhooks")).json()["data"] == []
        responses = [
            await other.get(base),
            await other.patch(base, json={"status": "disabled"}),
            await other.post(f"{base}/rotate-secret"),
            await other.post(f"{base}/test"),
            await other.get(f"{base}/deliveries"),
            await other.get(f"{base}/deliveries/{delivery_id}"),
            await other.post(f"{base}/deliveries/{delivery_id}/redeliver"),
            await other.delete(base),
        ]
    for response in responses:
        assert response.status_code == 404, response.request.url
        assert response.json()["error"] == "webhook_not_found"
    still = (await client.get(base)).json()
    assert still["status"] == "active"


async def test_allowed_subnets_and_required_https_come_from_settings(
    settings: Settings, topics: TopicNames, api_key: str, log_dir: Path
) -> None:
    demo = settings.model_copy(
        update={"webhook_allowed_subnets": "127.0.0.0/8", "webhook_require_https": True}
    )
    gateway = await ServiceProcess.gateway(demo, log_dir).start()
    try:
        async with httpx.AsyncClient(
            base_url=gateway.base_url, headers={"Authorization": f"Bearer {api_key}"}
        ) as http:
            loopback = await http.post(
                "/v1/webhooks/register", json=HOOK | {"url": "https://127.0.0.1:9443/in"}
            )
            plain = await http.post("/v1/webhooks/register", json=HOOK | {"url": "http://127.0.0.1:9080/in"})
            private = await http.post("/v1/webhooks/register", json=HOOK | {"url": "https://10.0.0.1/in"})
    finally:
        gateway.stop()
    assert loopback.status_code == 201, loopback.text
    assert plain.status_code == 400 and plain.json()["error"] == "webhook_url_not_allowed"
    assert "HTTPS" in plain.json()["message"]
    assert private.status_code == 400 and private.json()["error"] == "webhook_url_not_allowed"


async def test_kafka_down_means_503_and_nothing_stored(
    own_broker: tuple[EmbeddedStack, Settings], pool: asyncpg.Pool, api_key: str, log_dir: Path
) -> None:
    broker, settings = own_broker
    gateway = await ServiceProcess.gateway(settings, log_dir).start()
    try:
        async with httpx.AsyncClient(
            base_url=gateway.base_url, timeout=15, headers={"Authorization": f"Bearer {api_key}"}
        ) as client:
            webhook_id = (await register(client))["id"]
            sent = (await client.post(f"/v1/webhooks/{webhook_id}/test")).json()
            await pool.execute(
                "UPDATE webhook_deliveries SET status = 'failed' WHERE id = $1", sent["delivery_id"]
            )
            broker.stop()
            # Sent before the gateway knows Kafka is gone: accepted (committed, staged for the
            # outbox relay) or already refused; from then on it refuses before writing.
            first = await client.post(f"/v1/webhooks/{webhook_id}/test")
            test = await client.post(f"/v1/webhooks/{webhook_id}/test")
            redeliver = await client.post(
                f"/v1/webhooks/{webhook_id}/deliveries/{sent['delivery_id']}/redeliver"
            )
    finally:
        gateway.stop()
    for response in (test, redeliver):
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "event_bus_unavailable" and response.headers["retry-after"]
    organization = await organization_of(pool, api_key)
    assert await pool.fetchval(
        "SELECT count(*) FROM webhook_messages WHERE organization_id = $1", organization
    ) == 1 + (first.status_code == 202)
    assert first.status_code in (202, 503), first.text
    assert (
        await pool.fetchval("SELECT status FROM webhook_deliveries WHERE id = $1", sent["delivery_id"])
        == "failed"
    )
