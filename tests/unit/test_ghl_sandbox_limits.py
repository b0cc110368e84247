"""The GHL sandbox's daily window: it closes after its length and says when in its headers."""

from __future__ import annotations

import time

from sandboxes.ghl.state import Limits, SandboxState


def test_the_daily_window_reopens_after_its_length_and_announces_its_reset() -> None:
    state = SandboxState(Limits(daily=2, daily_reset_ms=100))
    first = state.gate("token", "2021-07-28")
    assert first.status is None
    assert 0 < int(first.headers["x-ratelimit-daily-reset"]) <= 100
    assert state.gate("token", "2021-07-28").headers["x-ratelimit-daily-remaining"] == "0"
    spent = state.gate("token", "2021-07-28")
    assert spent.status == 429
    assert int(spent.headers["x-ratelimit-daily-reset"]) <= 100
    assert state.stats["rate_limited"] == 1
    assert state.gate("other-token", "2021-07-28").status is None  # each token has its own day
    time.sleep(0.12)
    again = state.gate("token", "2021-07-28")
    assert again.status is None
    assert again.headers["x-ratelimit-daily-remaining"] == "1"
    assert int(again.headers["x-ratelimit-daily-reset"]) > 50  # a new window from this request


def test_the_daily_reset_header_can_be_left_out() -> None:
    state = SandboxState(Limits(daily_reset_header=False))
    headers = state.gate("token", "2021-07-28").headers
    assert "x-ratelimit-daily-reset" not in headers
    assert headers["x-ratelimit-daily-remaining"] == str(Limits().daily - 1)
