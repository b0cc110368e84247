"""The limiter a gateway falls back to while Redis is down: the same sliding logs, in memory.

Pure (no I/O). It enforces the per-second and per-minute limits per process, so with N
replicas a key may get up to N times its limit during the outage; daily limits cannot be kept
without the shared counters and are left to the caller (quotas fail closed, see
dependencies.authenticated_caller).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from services.gateway.limits import DAY, Applied, Decision, state, tightest


class LocalLimiter:
    """Sliding-window logs per (limit, subject) in this process."""

    def __init__(self, clock: Callable[[], float] = time.time, max_logs: int = 50_000) -> None:
        self._clock = clock
        self._max_logs = max_logs
        self._logs: dict[tuple[str, str], deque[float]] = {}

    def check(self, applied: Applied) -> Decision | None:
        """Count the request against the sub-day limits, or refuse it; None if none apply."""
        now = self._clock()
        windows = [counted for counted in applied if counted[0].window_seconds < DAY]
        if not windows:
            return None
        if len(self._logs) > self._max_logs:
            self._logs.clear()  # a crude bound: an outage's logs start over
        logs = []
        for limit, maximum, subject in windows:
            log = self._logs.setdefault((limit.name, subject), deque())
            while log and log[0] <= now - limit.window_seconds:
                log.popleft()
            if len(log) >= maximum:
                return Decision(False, state(limit, maximum, len(log), now, log[0] if log else None), now)
            logs.append(log)
        for log in logs:
            log.append(now)
        states = [
            state(limit, maximum, len(log), now, None)
            for (limit, maximum, _), log in zip(windows, logs, strict=True)
        ]
        return Decision(True, tightest(states), now)
