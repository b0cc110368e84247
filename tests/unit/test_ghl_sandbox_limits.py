"""The GHL sandbox's daily window: it closes after its length and says when in its headers."""

from __future__ import annotations

import time

from sandboxes.ghl.state import Limits, SandboxState


def test_the_daily_window_reopens_after_its_length_and_announces_its_reset() -> None:
    state = SandboxState(Limits(daily=2, daily_reset_ms=100, daily_reset_header=True))
    first = state.gate("token")
    assert first.status is None
    assert 0 < int(first.headers["x-ratelimit-daily-reset"]) <= 100
    assert state.gate("token").headers["x-ratelimit-daily-remaining"] == "0"
    spent = state.gate("token")
    assert spent.status == 429
    assert int(spent.headers["x-ratelimit-daily-reset"]) <= 100
    assert state.stats["rate_limited"] == 1
    assert state.gate("other-token").status is None  # each location has its own day
    time.sleep(0.12)
    again = state.gate("token")
    assert again.status is None
    assert again.headers["x-ratelimit-daily-remaining"] == "1"
    assert int(again.headers["x-ratelimit-daily-reset"]) > 50  # a new window from this request


def test_the_daily_reset_header_is_not_invented_by_default() -> None:
    state = SandboxState(Limits())
    headers = state.gate("token").headers
    assert "x-ratelimit-daily-reset" not in headers
    assert headers["x-ratelimit-daily-remaining"] == str(Limits().daily - 1)


def test_limits_are_per_location_shared_by_its_tokens() -> None:
    state = SandboxState(Limits(burst=2))
    state.token_locations.update({"pit": "loc-a", "oauth": "loc-a"})
    assert state.gate("pit").status is None
    assert state.gate("oauth").status is None
    assert state.gate("oauth").status == 429  # the location's burst, whichever token spends it
    assert state.gate("elsewhere").status is None
