"""The platform's Redis client against a real Redis: a cancelled loop of commands stops."""

from __future__ import annotations

import asyncio

from jorge_runtime.redis import create_redis
from jorge_runtime.settings import Settings


async def test_a_timeout_around_a_loop_of_commands_always_ends_it(settings: Settings) -> None:
    # On Python 3.11 redis-py's write under wait_for dropped such cancels: of 50 loops like
    # these, a dozen ran on past their 0.3 s and never stopped.
    assert settings.redis_url
    client = create_redis(settings.redis_url)

    async def poll_until_cancelled() -> None:
        async with asyncio.timeout(0.3):
            while True:
                await client.ping()
                await asyncio.sleep(0.02)

    loops = [asyncio.create_task(poll_until_cancelled()) for _ in range(50)]
    try:
        done, running = await asyncio.wait(loops, timeout=10)
        assert not running
        assert all(isinstance(loop.exception(), TimeoutError) for loop in done)
    finally:
        for loop in loops:
            loop.cancel()
        await client.aclose()
