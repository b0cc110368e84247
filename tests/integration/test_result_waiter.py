"""The gateway's ResultWaiter against real PostgreSQL: woken by NOTIFY, never by polling."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from jorge_runtime.results import MATCH_SESSION, SELLER_ANALYSIS, notify_result
from jorge_runtime.settings import Settings
from services.gateway.results import ResultWaiter


@pytest.fixture
async def waiter(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[ResultWaiter]:
    assert settings.database_url
    waiter = ResultWaiter(
        settings.database_url, pool, application_name=f"waiter-{uuid.uuid4().hex[:8]}", reconnect_delay=0.05
    )
    await waiter.start()
    assert waiter.listening
    yield waiter
    await waiter.stop()


async def open_session(pool: asyncpg.Pool, organization: str) -> str:
    session_id = f"match-{uuid.uuid4().hex[:22]}"
    await pool.execute(
        """INSERT INTO match_sessions (id, organization_id, buyer_id, request)
           VALUES ($1, $2, 'buyer-001', '{}'::jsonb)""",
        session_id,
        organization,
    )
    return session_id


async def complete(pool: asyncpg.Pool, session_id: str, *, notify: bool = True) -> None:
    """What the matcher does: store the result and notify, in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """UPDATE match_sessions SET status = 'completed', completed_at = now(),
                      result = '{"total_matches": 0, "matches": [], "next_actions": []}'::jsonb
                WHERE id = $1""",
            session_id,
        )
        if notify:
            await notify_result(conn, MATCH_SESSION, session_id)


async def test_a_result_stored_before_the_wait_is_found_by_the_first_check(
    waiter: ResultWaiter, pool: asyncpg.Pool, organization: str
) -> None:
    session_id = await open_session(pool, organization)
    await complete(pool, session_id)
    started = time.monotonic()
    assert await waiter.wait(MATCH_SESSION, session_id, 5) == "completed"
    assert time.monotonic() - started < 2.5  # not at the deadline (bounds leave room for a loaded CI)


async def test_a_notification_during_the_wait_wakes_it_at_once(
    waiter: ResultWaiter, pool: asyncpg.Pool, organization: str
) -> None:
    session_id = await open_session(pool, organization)
    started = time.monotonic()
    waiting = asyncio.create_task(waiter.wait(MATCH_SESSION, session_id, 10))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await complete(pool, session_id)
    assert await asyncio.wait_for(waiting, 5) == "completed"
    assert time.monotonic() - started < 5  # the wait's deadline is 10 s


async def test_waits_do_not_poll_a_result_stored_silently_is_seen_only_at_the_deadline(
    waiter: ResultWaiter, pool: asyncpg.Pool, organization: str
) -> None:
    session_id = await open_session(pool, organization)
    started = time.monotonic()
    waiting = asyncio.create_task(waiter.wait(MATCH_SESSION, session_id, 1.0))
    await asyncio.sleep(0.2)
    await complete(pool, session_id, notify=False)
    assert await waiting == "completed"  # by the final check
    assert time.monotonic() - started >= 1.0


async def test_a_wait_that_runs_out_returns_none(
    waiter: ResultWaiter, pool: asyncpg.Pool, organization: str
) -> None:
    session_id = await open_session(pool, organization)
    started = time.monotonic()
    assert await waiter.wait(MATCH_SESSION, session_id, 0.3) is None
    assert 0.3 <= time.monotonic() - started < 3
    assert await waiter.wait(SELLER_ANALYSIS, "cma-unknown", 0.1) is None


async def test_notifications_only_wake_their_own_waits(
    waiter: ResultWaiter, pool: asyncpg.Pool, organization: str
) -> None:
    mine, other = await open_session(pool, organization), await open_session(pool, organization)
    waiting = [asyncio.create_task(waiter.wait(MATCH_SESSION, mine, 5)) for _ in range(3)]
    waiting_other = asyncio.create_task(waiter.wait(MATCH_SESSION, other, 0.8))
    await asyncio.sleep(0.2)
    await complete(pool, mine)
    assert await asyncio.wait_for(asyncio.gather(*waiting), 4) == ["completed"] * 3
    assert await waiting_other is None


async def test_the_listener_reconnects_after_its_backend_is_killed(
    waiter: ResultWaiter, pool: asyncpg.Pool, organization: str
) -> None:
    before_kill = await open_session(pool, organization)
    waiting = asyncio.create_task(waiter.wait(MATCH_SESSION, before_kill, 10))
    await asyncio.sleep(0.1)
    killed = await pool.fetchval(
        """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
            WHERE application_name = $1 AND datname = current_database()""",
        waiter.application_name,
    )
    assert killed == 1
    # Stored around the reconnection: its notification may reach nobody, the re-check finds it.
    await complete(pool, before_kill)
    assert await asyncio.wait_for(waiting, 3) == "completed"

    assert await waiter.until_listening(5)
    after = await open_session(pool, organization)
    started = time.monotonic()
    waiting = asyncio.create_task(waiter.wait(MATCH_SESSION, after, 10))
    await asyncio.sleep(0.2)
    await complete(pool, after)
    assert await asyncio.wait_for(waiting, 5) == "completed"
    assert time.monotonic() - started < 5  # the wait's deadline is 10 s


async def test_without_a_listener_waits_end_with_one_final_check(
    pool: asyncpg.Pool, organization: str
) -> None:
    nowhere = "postgresql://nobody@127.0.0.1:1/none"
    waiter = ResultWaiter(nowhere, pool, reconnect_delay=0.05)
    await waiter.start(timeout=0.2)
    try:
        assert not waiter.listening
        session_id = await open_session(pool, organization)
        waiting = asyncio.create_task(waiter.wait(MATCH_SESSION, session_id, 0.6))
        await asyncio.sleep(0.1)
        await complete(pool, session_id)
        assert await waiting == "completed"
        assert await waiter.wait(MATCH_SESSION, await open_session(pool, organization), 0.2) is None
    finally:
        await waiter.stop()
