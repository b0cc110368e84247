"""The in-process fallback limiter (used while Redis is down): sliding windows, no boundary effect."""

from __future__ import annotations

from services.gateway.limits import applied_limits
from services.gateway.local_limits import LocalLimiter
from services.gateway.tenancy import Caller


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.95

    def __call__(self) -> float:
        return self.now


def test_sliding_second_across_a_boundary_and_the_slot_freeing() -> None:
    clock = Clock()
    limiter = LocalLimiter(clock)
    caller = Caller("org-a", "key-a")
    applied = applied_limits(caller, None)
    admitted = []
    for _ in range(15):  # 15 requests in 0.1 s across the second boundary at 1001
        decision = limiter.check(applied)
        assert decision is not None
        admitted.append(decision.allowed)
        clock.now += 0.1 / 15
    assert sum(admitted) == 10
    clock.now = 1_001.95  # the first request is exactly one second old: its slot is free
    decision = limiter.check(applied)
    assert decision is not None and decision.allowed


def test_daily_limits_are_left_to_the_caller() -> None:
    limiter = LocalLimiter(Clock())
    caller = Caller("org-a", "key-a")
    applied = applied_limits(caller, None)
    only_daily = [counted for counted in applied if counted[0].window_seconds >= 86_400]
    assert limiter.check(only_daily) is None
