"""Tokens, rate limits and quotas, and the edge errors, against real gateways and Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import jwt
import pytest

from jorge_cli.stack import free_port
from jorge_runtime.settings import Settings
from schemas.topics import TopicNames
from services.gateway.tenancy import IssuedKey, TenancyStore
from tests.support.services import ServiceProcess


@pytest.fixture
async def org_key(pool: asyncpg.Pool) -> IssuedKey:
    tenancy = TenancyStore(pool)
    organization = f"org-{uuid.uuid4().hex[:10]}"
    await tenancy.create_organization(organization, "Limits Realty")
    return await tenancy.issue_key(organization, "limits")


async def set_limits(pool: asyncpg.Pool, organization: str, **limits: int) -> None:
    for name, value in limits.items():
        assert await TenancyStore(pool).set_rate_limit(organization, name, value)


@pytest.fixture
async def two_gateways(
    settings: Settings, topics: TopicNames, log_dir: Path
) -> AsyncIterator[list[ServiceProcess]]:
    quick = settings.model_copy(update={"auth_cache_seconds": 0.2})
    for n in range(2):
        (log_dir / str(n)).mkdir()
    services = [await ServiceProcess.gateway(quick, log_dir / str(n)).start() for n in range(2)]
    yield services
    for service in services:
        service.stop()


async def test_tokens_work_until_they_expire_or_their_key_is_revoked(
    client: httpx.AsyncClient, gateway: ServiceProcess, settings: Settings, api_key: str, pool: asyncpg.Pool
) -> None:
    issued = await client.post("/v1/auth/token", json={"api_key": api_key, "expires_in": 999_999})
    assert issued.status_code == 200
    body = issued.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600  # capped
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        as_token = await http.get(
            "/v1/leads/x/qualification", headers={"Authorization": f"Bearer {body['token']}"}
        )
        assert as_token.status_code == 404  # authenticated; nothing there

        assert settings.jwt_secret
        expired = jwt.encode({**claims, "iat": claims["iat"] - 7200, "exp": claims["iat"] - 3600},
                             settings.jwt_secret, algorithm="HS256")  # fmt: skip
        tampered = body["token"][:-4] + ("AAAA" if not body["token"].endswith("AAAA") else "BBBB")
        forged = jwt.encode(claims, "not-the-secret-but-long-enough-to-sign-with", algorithm="HS256")
        for token, code in (
            (expired, "token_expired"),
            (tampered, "invalid_token"),
            (forged, "invalid_token"),
        ):
            refused = await http.get(
                "/v1/leads/x/qualification", headers={"Authorization": f"Bearer {token}"}
            )
            assert (refused.status_code, refused.json()["error"]) == (401, code)
        wrong_key = await http.post("/v1/auth/token", json={"api_key": "jk_live_wrong-wrong-wrong"})
        assert (wrong_key.status_code, wrong_key.json()["error"]) == (401, "invalid_api_key")


async def test_a_token_dies_with_its_key(
    two_gateways: list[ServiceProcess], org_key: IssuedKey, pool: asyncpg.Pool
) -> None:
    async with httpx.AsyncClient(base_url=two_gateways[0].base_url) as http:
        token = (await http.post("/v1/auth/token", json={"api_key": org_key.secret})).json()["token"]
        await TenancyStore(pool).revoke_key(org_key.key_id)
        await asyncio.sleep(0.3)
        refused = await http.get("/v1/leads/x/qualification", headers={"Authorization": f"Bearer {token}"})
    assert (refused.status_code, refused.json()["error"]) == (401, "api_key_revoked")


async def test_the_101st_request_in_a_minute_is_refused_across_two_gateways(
    two_gateways: list[ServiceProcess], org_key: IssuedKey, pool: asyncpg.Pool
) -> None:
    await set_limits(pool, org_key.organization_id, key_per_second=10_000)  # isolate the minute limit
    headers = {"Authorization": f"Bearer {org_key.secret}"}
    clients = [httpx.AsyncClient(base_url=g.base_url, headers=headers) for g in two_gateways]
    try:
        answers = [await clients[n % 2].get("/v1/leads/x/qualification") for n in range(100)]
        refused = await clients[0].get("/v1/leads/x/qualification")
    finally:
        for http in clients:
            await http.aclose()
    assert [a.status_code for a in answers] == [404] * 100
    assert answers[0].headers["x-ratelimit-limit"] == "100"
    assert answers[0].headers["x-ratelimit-remaining"] == "99"
    assert answers[-1].headers["x-ratelimit-remaining"] == "0"
    # Sliding windows: whole again one minute after the last counted request.
    assert time.time() < int(answers[-1].headers["x-ratelimit-reset"]) <= time.time() + 61
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"] == "rate_limit_exceeded"
    assert body["message"] == "100 requests per minute per API key exceeded"
    assert 1 <= body["retry_after"] <= 60
    assert refused.headers["retry-after"] == str(body["retry_after"])
    assert refused.headers["x-ratelimit-remaining"] == "0"


async def test_bursts_above_ten_per_second_are_refused(client: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(*(client.get("/v1/leads/x/qualification") for _ in range(15)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [404] * 10 + [429] * 5
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["message"] == "10 requests per second per API key exceeded"


async def test_the_endpoint_quota_counts_only_its_endpoint(
    two_gateways: list[ServiceProcess], org_key: IssuedKey, pool: asyncpg.Pool
) -> None:
    await set_limits(pool, org_key.organization_id, lead_qualification_per_day=2)
    async with httpx.AsyncClient(base_url=two_gateways[1].base_url,
                                 headers={"Authorization": f"Bearer {org_key.secret}"}) as http:  # fmt: skip
        posted = [
            await http.post("/v1/leads/qualify", json={"lead_id": f"q-{n}", "email": "a@example.com"})
            for n in range(3)
        ]
        still_readable = await http.get("/v1/leads/q-0/qualification")
    assert [p.status_code for p in posted] == [201, 201, 429]
    assert posted[2].json()["message"] == "2 lead qualifications per day exceeded"
    assert still_readable.status_code == 200


@pytest.mark.parametrize(("mode", "expected"), [("open", 404), ("closed", 503)])
async def test_without_redis_the_fail_mode_decides_and_daily_quotas_fail_closed(
    settings: Settings, topics: TopicNames, api_key: str, log_dir: Path, mode: str, expected: int
) -> None:
    no_redis = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0",
                                           "rate_limit_fail_mode": mode})  # fmt: skip
    gateway = await ServiceProcess.gateway(no_redis, log_dir).start()
    try:
        async with httpx.AsyncClient(
            base_url=gateway.base_url, headers={"Authorization": f"Bearer {api_key}"}
        ) as http:
            started = time.monotonic()
            answers = [await http.get("/v1/leads/x/qualification") for _ in range(12)]
            took = time.monotonic() - started
            quota = await http.post("/v1/leads/qualify", json={"lead_id": "q", "email": "a@example.com"})
    finally:
        gateway.stop()
    assert answers[0].status_code == expected
    assert (quota.status_code, quota.json()["error"]) == (503, "rate_limiter_unavailable")
    assert quota.headers["retry-after"]
    if mode == "closed":
        assert answers[0].json()["error"] == "rate_limiter_unavailable"
        assert answers[0].headers["retry-after"]
    else:  # the gateway keeps the per-second limit by itself: 12 quick reads, at most 10 pass
        refused = [a.status_code for a in answers].count(429)
        assert refused >= 2 or took >= 1, (refused, took)
        assert refused == 0 or answers[-1].status_code == 429


async def test_oversized_and_non_json_bodies_are_refused_clearly(client: httpx.AsyncClient) -> None:
    too_big = await client.post("/v1/leads/qualify", json={"lead_id": "big", "email": "a@example.com",
                                                           "message": "x" * 300_000})  # fmt: skip
    assert (too_big.status_code, too_big.json()["error"]) == (413, "payload_too_large")
    form = await client.post(
        "/v1/leads/qualify", content=b"lead_id=x", headers={"Content-Type": "text/plain"}
    )
    assert (form.status_code, form.json()["error"]) == (415, "unsupported_media_type")
    assert form.headers["x-request-id"]
