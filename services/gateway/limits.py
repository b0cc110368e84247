"""Rate limits and quotas, counted in Redis atomically across every gateway replica.

Per-second and per-minute limits are sliding logs, exact in every window: a key allowed 10 a
second never gets an 11th request in ANY 1-second span, whatever the boundaries (fixed windows
let 20 through across a second boundary; GCRA with a burst of 10 lets up to 19 through in a
sliding second). Each admitted request is one sorted-set member scored by Redis's own clock in
microseconds, so replicas with skewed clocks still agree; a key holds at most its limit's worth
of members. Daily limits and quotas are counters per UTC day (a calendar quota, reset at
midnight). One Lua script checks every counter and counts in all of them or none: a refused
request consumes nothing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import redis.asyncio as aioredis
import redis.exceptions

from schemas.limits import GENERAL, LIMITS, Limit
from services.gateway.tenancy import Caller

log = logging.getLogger(__name__)

DAY = 86_400
_MICRO = 1_000_000

# ARGV: groups of (name, subject, window seconds, maximum). Returns
#   refused: {now_us, index, count, oldest_us}   (oldest_us: when the first slot was taken; 0 for a day)
#   allowed: {now_us, 0, count_1, ..., count_n}  (counts after this request)
_CHECK_AND_COUNT = """
local t = redis.call('TIME')
local now_s = tonumber(t[1])
local now_us = now_s * 1000000 + tonumber(t[2])
local n = #ARGV / 4
local keys, counts = {}, {}
for i = 1, n do
  local base = (i - 1) * 4
  local window = tonumber(ARGV[base + 3])
  local key = KEYS[1] .. ARGV[base + 1] .. ':' .. ARGV[base + 2]
  if window >= 86400 then
    key = key .. ':' .. math.floor(now_s / window)
    counts[i] = tonumber(redis.call('GET', key) or '0')
  else
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now_us - window * 1000000)
    counts[i] = redis.call('ZCARD', key)
  end
  keys[i] = key
  if counts[i] >= tonumber(ARGV[base + 4]) then
    local oldest = 0
    if window < 86400 then oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]) end
    return {now_us, i, counts[i], oldest}
  end
end
local out = {now_us, 0}
local seq = redis.call('INCR', KEYS[1] .. 'seq')
for i = 1, n do
  local window = tonumber(ARGV[(i - 1) * 4 + 3])
  if window >= 86400 then
    local count = redis.call('INCR', keys[i])
    if count == 1 then redis.call('EXPIRE', keys[i], window + 1) end
    out[#out + 1] = count
  else
    redis.call('ZADD', keys[i], now_us, now_us .. ':' .. seq)
    redis.call('PEXPIRE', keys[i], window * 1000 + 1000)
    out[#out + 1] = counts[i] + 1
  end
end
return out
"""


@dataclass(frozen=True, slots=True)
class LimitState:
    """Where one limit stands after this request."""

    limit: Limit
    maximum: int
    remaining: int
    reset_at: int  # Unix time the limit is whole again (every counted request has aged out)
    retry_at: float  # Unix time one more request fits (matters when remaining is 0)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome: allowed or not, and the tightest limit (the one refused, if any)."""

    allowed: bool
    tightest: LimitState
    now: float

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.tightest.retry_at - self.now))

    def headers(self) -> dict[str, str]:
        """X-RateLimit-* for the tightest limit (and Retry-After when refused)."""
        headers = {
            "X-RateLimit-Limit": str(self.tightest.maximum),
            "X-RateLimit-Remaining": str(self.tightest.remaining),
            "X-RateLimit-Reset": str(self.tightest.reset_at),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers

    def message(self) -> str:
        return f"{self.tightest.maximum} {self.tightest.limit.description} exceeded"


class LimiterUnavailable(Exception):
    """Redis could not be asked; the configured fail mode decides what happens."""


#: The limits that count a request: each with its maximum and whom it counts (a key id, an
#: organisation, a client address).
Applied = list[tuple[Limit, int, str]]


def applied_limits(caller: Caller, quota: str | None) -> Applied:
    """Every limit that counts this request, with the caller's maximum for it."""
    names = [*GENERAL, quota] if quota else list(GENERAL)
    return [
        (
            LIMITS[name],
            caller.rate_limits.get(name, LIMITS[name].default),
            caller.key_id if LIMITS[name].scope == "key" else caller.organization_id,
        )
        for name in names
    ]


def state(limit: Limit, maximum: int, count: int, now: float, oldest: float | None) -> LimitState:
    """A limit's state at ``now`` after ``count`` requests in its window (oldest: the first's time)."""
    if limit.window_seconds >= DAY:
        next_day = (int(now) // limit.window_seconds + 1) * limit.window_seconds
        return LimitState(limit, maximum, max(0, maximum - count), next_day, next_day)
    whole_at = math.ceil(now + limit.window_seconds)
    retry_at = (oldest + limit.window_seconds) if oldest is not None else now
    return LimitState(limit, maximum, max(0, maximum - count), whole_at, retry_at)


def tightest(states: list[LimitState]) -> LimitState:
    """The limit closest to refusing (the longest window among equals)."""
    return min(states, key=lambda s: (s.remaining, -s.limit.window_seconds))


class RateLimiter:
    """Counts a request against every limit that applies to it."""

    def __init__(self, client: aioredis.Redis, prefix: str = "rl") -> None:
        self._prefix = prefix
        self._script = client.register_script(_CHECK_AND_COUNT)

    async def check(self, applied: Applied, tag: str) -> Decision:
        """Count the request, or refuse it without counting; LimiterUnavailable if Redis fails.

        ``tag`` (the organisation) keeps every counter of a request on one cluster slot."""
        args: list[str | int] = []
        for limit, maximum, subject in applied:
            args += [limit.name, subject, limit.window_seconds, maximum]
        try:
            result = await self._script(keys=[f"{self._prefix}:{{{tag}}}:"], args=args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            raise LimiterUnavailable(str(exc)) from exc
        now, refused = int(result[0]) / _MICRO, int(result[1])
        if refused:
            limit, maximum, _ = applied[refused - 1]
            oldest = int(result[3]) / _MICRO if int(result[3]) else None
            return Decision(False, state(limit, maximum, int(result[2]), now, oldest), now)
        states = [
            state(limit, maximum, int(count), now, None)
            for (limit, maximum, _), count in zip(applied, result[2:], strict=True)
        ]
        return Decision(True, tightest(states), now)
