"""A consecutive-failure circuit breaker (pure; the clock is injected).

When Claude times out or fails for several leads in a row, each further lead would wait the
full CLAUDE_TIMEOUT before the rules answer, and the backlog in Kafka would grow by that much
per lead. After ``threshold`` failures in a row the breaker opens: leads go straight to the
rules for ``cooldown`` seconds, then one lead tries Claude again (half-open).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    """Open after ``threshold`` consecutive failures; let one call through after ``cooldown``."""

    def __init__(
        self, threshold: int = 5, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._threshold = threshold
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None

    def allow(self) -> bool:
        """True when a call may go to Claude (closed, or half-open after the cool-down)."""
        if self._opened_at is None:
            return True
        if self._clock() - self._opened_at >= self._cooldown:
            self._opened_at = self._clock()  # one trial call per cool-down period
            return True
        return False

    def record(self, ok: bool) -> None:
        """Count the outcome of a call that was allowed."""
        if ok:
            self._failures, self._opened_at = 0, None
            return
        self._failures += 1
        if self._failures >= self._threshold:
            self._opened_at = self._clock()

    @property
    def is_open(self) -> bool:
        """True while leads bypass Claude."""
        return self._opened_at is not None
