"""Waiting in tests: poll until a condition holds, against a generous deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    timeout: float = 30,
    what: str | Callable[[T | None], str] = "the condition",
    *,
    interval: float = 0.1,
) -> T:
    """Call ``check`` until its answer is truthy and return that answer; fail the test once
    ``timeout`` seconds have passed. ``what`` names the wait in the failure, or builds the
    message from the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await check()
        if answer:
            return answer
        message = what(answer) if callable(what) else f"timed out waiting for {what}"
        assert time.monotonic() < deadline, message
        await asyncio.sleep(interval)
