"""The shared GHL budget in Redis against the sandbox: no 429 of ours, headers followed, hot first,
GHL's daily window followed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from jorge_runtime.settings import Settings
from services.crm_sync.ghl.budget import BudgetDefaults, BudgetSpent, GhlBudget
from services.crm_sync.ghl.client import API_VERSION, GhlClient, GhlCredentials, GhlTransientError
from tests.support.ghl import Sandbox

# The margin covers the time between our grant and the sandbox counting the request. Forty
# requests at once on a loaded two-core CI machine have taken more than 100 ms between the two.
MARGIN_MS = 300


@pytest.fixture
async def sandbox(log_dir: Path) -> AsyncIterator[Sandbox]:
    async with Sandbox.running(log_dir / "ghl.log", burst=20, interval_ms=1000) as sandbox:
        yield sandbox


def credentials() -> GhlCredentials:
    name = uuid.uuid4().hex[:8]
    return GhlCredentials(f"loc-{name}", SecretStr(f"token-{name}"))


async def replicas(
    redis: aioredis.Redis, url: str, defaults: BudgetDefaults, n: int = 3, max_poll_seconds: float = 1.0
) -> list[GhlClient]:
    """n clients as n crm_sync replicas would hold: one budget object each, one Redis."""
    clients = [
        GhlClient(url, GhlBudget(redis, defaults, max_poll_seconds=max_poll_seconds), timeout_seconds=10)
        for _ in range(n)
    ]
    for client in clients:
        await client.open()
    return clients


async def flood(clients: list[GhlClient], creds: GhlCredentials, total: int) -> None:
    async def one(i: int) -> None:
        await clients[i % len(clients)].upsert_contact(
            creds, {"email": f"p{i}@example.com", "name": f"P {i}"}, "standard"
        )

    await asyncio.gather(*(one(i) for i in range(total)))


async def test_three_replicas_sharing_the_budget_never_cause_a_429(
    settings: Settings, redis: aioredis.Redis, sandbox: Sandbox
) -> None:
    clients = await replicas(
        redis, sandbox.url, BudgetDefaults(burst=20, interval_ms=1000, margin_ms=MARGIN_MS)
    )
    creds = credentials()
    try:
        await flood(clients, creds, 50)
    finally:
        for client in clients:
            await client.close()
    stats = await sandbox.stats()
    assert stats.get("rate_limited", 0) == 0
    assert stats["contacts"] == 50


async def test_the_budget_follows_the_limits_ghl_advertises(
    settings: Settings, redis: aioredis.Redis, sandbox: Sandbox
) -> None:
    # Our defaults allow 1,000 per second; this token's headers say 20 per second.
    clients = await replicas(
        redis, sandbox.url, BudgetDefaults(burst=1000, interval_ms=1000, margin_ms=MARGIN_MS)
    )
    creds = credentials()
    try:
        await flood(clients, creds, 1)  # the first answer teaches the budget
        await flood(clients, creds, 40)
    finally:
        for client in clients:
            await client.close()
    assert (await sandbox.stats()).get("rate_limited", 0) == 0


async def test_a_429_is_transient_and_rests_the_location(
    settings: Settings, redis: aioredis.Redis, sandbox: Sandbox
) -> None:
    [client] = await replicas(
        redis, sandbox.url, BudgetDefaults(burst=20, interval_ms=1000, margin_ms=0), n=1
    )
    creds = credentials()
    await sandbox.faults(storm_429=1)
    try:
        with pytest.raises(GhlTransientError):
            await flood([client], creds, 1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await flood([client], creds, 1)
        assert loop.time() - started > 0.5  # waited for the window instead of sending at once
    finally:
        await client.close()


async def test_hot_callers_go_before_standard_ones_when_the_budget_is_spent(
    settings: Settings, redis: aioredis.Redis
) -> None:
    budget = GhlBudget(redis, BudgetDefaults(burst=4, interval_ms=600, margin_ms=0), max_poll_seconds=0.05)
    location = f"loc-{uuid.uuid4().hex[:8]}"
    for _ in range(4):
        await budget.acquire(location)  # spend the window
    order: list[str] = []

    async def take(kind: str) -> None:
        await budget.acquire(location, "hot" if kind == "hot" else "standard")
        order.append(kind)

    standard = [asyncio.create_task(take("standard")) for _ in range(4)]
    await asyncio.sleep(0.1)  # the standard callers were waiting first
    hot = [asyncio.create_task(take("hot")) for _ in range(4)]
    await asyncio.gather(*standard, *hot)
    assert order[:4] == ["hot"] * 4


async def test_a_spent_daily_budget_waits_for_ghls_reset_then_proceeds_without_a_429(
    settings: Settings, redis: aioredis.Redis, log_dir: Path
) -> None:
    # Five a day, and GHL's day lasts 1.5 s from the first request: nothing like the UTC day.
    async with Sandbox.running(
        log_dir / "ghl-daily.log",
        burst=20,
        interval_ms=1000,
        daily=5,
        daily_reset_ms=1500,
        daily_reset_header=True,
    ) as sandbox:
        clients = await replicas(
            redis,
            sandbox.url,
            BudgetDefaults(burst=20, interval_ms=1000, margin_ms=MARGIN_MS),
            max_poll_seconds=0.05,
        )
        creds = credentials()
        loop = asyncio.get_running_loop()
        try:
            await flood(clients, creds, 1)  # the first answer tells the daily limit and reset
            started = loop.time()
            await flood(clients, creds, 9)  # four fit this window, five wait for the next
            elapsed = loop.time() - started
        finally:
            for client in clients:
                await client.close()
        stats = await sandbox.stats()
    assert stats.get("rate_limited", 0) == 0
    assert stats["requests"] == 10
    assert elapsed > 1.0  # held until GHL's window reset, then sent


async def test_ghl_saying_the_day_is_spent_without_a_reset_rests_the_location_until_one_probe(
    settings: Settings, redis: aioredis.Redis, log_dir: Path
) -> None:
    async with Sandbox.running(log_dir / "ghl-probe.log", burst=20, interval_ms=300, daily=1) as sandbox:
        probe_ms = 2000  # long enough that a stalled CI loop never sees a second probe before the check
        [client] = await replicas(
            redis,
            sandbox.url,
            BudgetDefaults(burst=20, interval_ms=300, margin_ms=MARGIN_MS, daily_probe_ms=probe_ms),
            n=1,
            max_poll_seconds=0.05,
        )
        creds = credentials()
        loop = asyncio.get_running_loop()
        waiting: list[asyncio.Task[None]] = []
        try:
            # Other traffic on the location (not counted by us) spends GHL's daily budget.
            async with httpx.AsyncClient(base_url=sandbox.url) as other:
                response = await other.post(
                    "/contacts/upsert",
                    headers={
                        "Authorization": f"Bearer {creds.token.get_secret_value()}",
                        "Version": API_VERSION,
                    },
                    json={"locationId": creds.location_id, "email": "other@example.com"},
                )
                assert response.status_code == 200
            with pytest.raises(GhlTransientError):
                await flood([client], creds, 1)  # 429, daily remaining 0, no reset time
            started = loop.time()
            # The rest is the probe interval, or less only when UTC midnight comes first.
            midnight_s = 86_400 - time.time() % 86_400
            waiting = [asyncio.create_task(flood([client], creds, 1)) for _ in range(5)]
            done, _ = await asyncio.wait(waiting, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            rested = loop.time() - started
            assert len(done) == 1  # one probe, and GHL is still spent
            assert isinstance(done.pop().exception(), GhlTransientError)
            assert rested > min(probe_ms / 1000, midnight_s) - 0.1  # not one 300 ms interval
            await asyncio.sleep(0.5)
            assert (await sandbox.stats())["rate_limited"] == 2  # ours and the probe, no burst of them
            # GHL resets (here: a bigger limit); the next probe's answer releases the others.
            await sandbox.limits(daily=100)
            await asyncio.wait_for(asyncio.gather(*[t for t in waiting if not t.done()]), timeout=10)
            assert (await sandbox.stats())["rate_limited"] == 2
        finally:
            for task in waiting:
                task.cancel()
            await client.close()


async def test_our_count_spent_without_ghl_saying_so_probes_instead_of_waiting_for_midnight(
    settings: Settings, redis: aioredis.Redis
) -> None:
    # CI saw a location parked for minutes: GHL's day (no reset header, so not the UTC day we
    # assume) reset between our requests, its answers never said "spent", our count did.
    budget = GhlBudget(redis, BudgetDefaults(margin_ms=0, daily_probe_ms=300), max_poll_seconds=0.02)
    location = f"loc-{uuid.uuid4().hex[:8]}"
    answer = {"x-ratelimit-limit-daily": "4", "x-ratelimit-daily-remaining": "3"}
    for _ in range(4):
        await budget.observe(location, answer, 200, await budget.acquire(location))
    with pytest.raises(BudgetSpent) as spent:
        await budget.acquire(location, max_wait_ms=50)
    assert spent.value.wait_ms <= 300  # one probe interval, not until UTC midnight
    await asyncio.sleep(0.35)
    probe = await budget.acquire(location, max_wait_ms=50)  # the one probe
    await budget.observe(location, answer, 200, probe)  # GHL has budget: its count decides again
    await budget.acquire(location, max_wait_ms=50)


async def test_an_answer_from_before_ghls_reset_leaves_the_new_window_alone(
    settings: Settings, redis: aioredis.Redis
) -> None:
    budget = GhlBudget(redis, BudgetDefaults(margin_ms=0), max_poll_seconds=0.02)
    location = f"loc-{uuid.uuid4().hex[:8]}"
    loop = asyncio.get_running_loop()
    spent = {"x-ratelimit-limit-daily": "5", "x-ratelimit-daily-remaining": "0"}
    before = await budget.acquire(location)
    await budget.observe(location, {**spent, "x-ratelimit-daily-reset": "300"}, 200, before)
    started = loop.time()
    after = await budget.acquire(location)
    assert loop.time() - started > 0.25  # held until GHL's reset
    # The answer to a request granted before the reset, arriving only now, is the old window's.
    await budget.observe(location, {**spent, "x-ratelimit-daily-reset": "60000"}, 200, before)
    async with asyncio.timeout(5):  # not held for the 60 s the old answer names; never loses its cancel
        await budget.acquire(location)
    # The same answer to a request of this window holds the location until the reset it names.
    await budget.observe(location, {**spent, "x-ratelimit-daily-reset": "60000"}, 200, after)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await budget.acquire(location)


async def test_a_grant_that_comes_back_late_is_given_up_for_a_fresh_one(
    settings: Settings, redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The request of a grant answered late would reach GHL late too, maybe past the margin.
    budget = GhlBudget(redis, BudgetDefaults(margin_ms=100))
    script = budget._acquire
    calls = 0

    async def stalled_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        answer = await script(*args, **kwargs)
        if calls == 1:
            await asyncio.sleep(0.2)  # the loop (or the process) stalled while the grant came back
        return answer

    monkeypatch.setattr(budget, "_acquire", stalled_once)
    location = f"loc-{uuid.uuid4().hex[:8]}"
    await budget.acquire(location)
    assert calls == 2
    assert await redis.zcard(f"ghl:{{{location}}}:log") == 2  # the stale grant stays counted


async def test_a_probe_that_comes_back_late_is_still_sent(
    settings: Settings, redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given up, the probe would hold its slot for the probe interval and the location would stay
    # parked: on a loaded machine every probe came back late and a spent location never resumed.
    budget = GhlBudget(redis, BudgetDefaults(margin_ms=100, daily_probe_ms=1_000))
    location = f"loc-{uuid.uuid4().hex[:8]}"
    spent = {"x-ratelimit-limit-daily": "1", "x-ratelimit-daily-remaining": "0"}
    await budget.observe(location, spent, 200, await budget.acquire(location))  # the day's last
    script = budget._acquire

    async def stalled(*args: Any, **kwargs: Any) -> Any:
        answer = await script(*args, **kwargs)
        await asyncio.sleep(0.2)  # the loop (or the process) stalled while the grant came back
        return answer

    monkeypatch.setattr(budget, "_acquire", stalled)
    await asyncio.sleep(1.1)  # the probe is due
    async with asyncio.timeout(5):
        await budget.acquire(location, max_wait_ms=500)  # the probe, not BudgetSpent
