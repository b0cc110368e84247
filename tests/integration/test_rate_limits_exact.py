"""Rate limits on the real Redis: exact in every window, counted in all limits or none."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from jorge_runtime.settings import Settings
from services.gateway.limits import RateLimiter, applied_limits
from services.gateway.tenancy import Caller


@pytest.fixture
async def limiter(settings: Settings) -> AsyncIterator[RateLimiter]:
    assert settings.redis_url
    client = aioredis.from_url(settings.redis_url)
    yield RateLimiter(client, prefix=f"rl-test-{uuid.uuid4().hex[:8]}")
    await client.aclose()


def _caller(**limits: int) -> Caller:
    return Caller(f"org-{uuid.uuid4().hex[:8]}", f"key_{uuid.uuid4().hex[:8]}", limits)


async def test_a_burst_across_a_second_boundary_gets_no_more_than_the_limit(limiter: RateLimiter) -> None:
    caller = _caller()
    applied = applied_limits(caller, None)
    # Start 50 ms before a second boundary: fixed windows admitted 10 + 10 here.
    await asyncio.sleep((0.95 - time.time() % 1) % 1)
    started = time.monotonic()
    decisions = []
    for _ in range(15):
        decisions.append(await limiter.check(applied, caller.organization_id))
        await asyncio.sleep(0.1 / 15)
    spread = time.monotonic() - started
    admitted = sum(d.allowed for d in decisions)
    assert admitted == 10, (admitted, spread)  # generous margin: a loaded machine spreads it < 1 s
    refused = next(d for d in decisions if not d.allowed)
    assert refused.headers()["X-RateLimit-Remaining"] == "0"
    assert refused.message() == "10 requests per second per API key exceeded"
    assert refused.retry_after == 1
    assert [d.headers()["X-RateLimit-Remaining"] for d in decisions[:3]] == ["9", "8", "7"]


async def test_a_slot_frees_exactly_one_window_after_it_was_taken(limiter: RateLimiter) -> None:
    caller = _caller(key_per_second=3)
    applied = applied_limits(caller, None)
    first = [await limiter.check(applied, caller.organization_id) for _ in range(3)]
    assert all(d.allowed for d in first)
    refused = await limiter.check(applied, caller.organization_id)
    assert not refused.allowed
    wait = refused.tightest.retry_at - refused.now
    assert 0 < wait <= 1
    await asyncio.sleep(wait + 0.05)
    assert (await limiter.check(applied, caller.organization_id)).allowed
    reset = int(first[-1].headers()["X-RateLimit-Reset"])
    assert first[-1].now < reset <= first[-1].now + 2


async def test_a_refused_request_counts_in_no_limit(limiter: RateLimiter) -> None:
    caller = _caller(lead_qualification_per_day=2, key_per_second=100)
    quota = applied_limits(caller, "lead_qualification_per_day")
    plain = applied_limits(caller, None)
    assert [(await limiter.check(quota, caller.organization_id)).allowed for _ in range(3)] == [
        True,
        True,
        False,
    ]
    after = await limiter.check(plain, caller.organization_id)
    # 2 admitted requests and this one: the refused third counted nowhere.
    assert after.allowed
    assert after.tightest.limit.name == "key_per_minute"
    assert after.headers()["X-RateLimit-Remaining"] == str(100 - 3)
