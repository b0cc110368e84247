"""Rate limits and quotas, counted in Redis atomically across every gateway replica.

Fixed windows aligned on Redis's own clock (second, minute, UTC day), so replicas with skewed
clocks still share one count: the 100th request of a minute passes, the 101st is refused. A
refused request consumes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
import redis.exceptions

from jorge_runtime.tenancy import Caller
from schemas.limits import GENERAL, LIMITS, Limit

log = logging.getLogger(__name__)

# Check every counter, then count in all or none: one round trip, no read-then-write race.
_CHECK_AND_COUNT = """
local now = tonumber(redis.call('TIME')[1])
local n = #ARGV / 4
local keys = {}
for i = 1, n do
  local name, subject = ARGV[(i - 1) * 4 + 1], ARGV[(i - 1) * 4 + 2]
  local window = tonumber(ARGV[(i - 1) * 4 + 3])
  keys[i] = KEYS[1] .. name .. ':' .. subject .. ':' .. math.floor(now / window)
end
for i = 1, n do
  local count = tonumber(redis.call('GET', keys[i]) or '0')
  if count >= tonumber(ARGV[(i - 1) * 4 + 4]) then return {now, i, count} end
end
local out = {now, 0}
for i = 1, n do
  local count = redis.call('INCR', keys[i])
  if count == 1 then redis.call('EXPIRE', keys[i], tonumber(ARGV[(i - 1) * 4 + 3]) + 1) end
  out[#out + 1] = count
end
return out
"""


@dataclass(frozen=True, slots=True)
class LimitState:
    """Where one limit stands after this request."""

    limit: Limit
    maximum: int
    remaining: int
    reset_at: int


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome: allowed or not, and the tightest limit (the one refused, if any)."""

    allowed: bool
    tightest: LimitState
    now: int

    @property
    def retry_after(self) -> int:
        return max(1, self.tightest.reset_at - self.now)

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


class RateLimiter:
    """Counts a request against every limit that applies to it."""

    def __init__(self, client: aioredis.Redis, prefix: str = "rl") -> None:
        self._prefix = prefix
        self._script = client.register_script(_CHECK_AND_COUNT)

    async def check(self, caller: Caller, quota: str | None) -> Decision:
        """Count the request, or refuse it without counting; LimiterUnavailable if Redis fails."""
        names = [*GENERAL, quota] if quota else list(GENERAL)
        applied = [(LIMITS[name], caller.rate_limits.get(name, LIMITS[name].default)) for name in names]
        args: list[str | int] = []
        for limit, maximum in applied:
            subject = caller.key_id if limit.scope == "key" else caller.organization_id
            args += [limit.name, subject, limit.window_seconds, maximum]
        # The organisation in a hash tag keeps every counter of a request on one cluster slot.
        try:
            result = await self._script(keys=[f"{self._prefix}:{{{caller.organization_id}}}:"], args=args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            raise LimiterUnavailable(str(exc)) from exc
        now, refused = int(result[0]), int(result[1])

        def state(index: int, count: int) -> LimitState:
            limit, maximum = applied[index]
            reset_at = (now // limit.window_seconds + 1) * limit.window_seconds
            return LimitState(limit, maximum, max(0, maximum - count), reset_at)

        if refused:
            return Decision(False, state(refused - 1, int(result[2])), now)
        states = [state(i, int(count)) for i, count in enumerate(result[2:])]
        tightest = min(states, key=lambda s: (s.remaining, -s.limit.window_seconds))
        return Decision(True, tightest, now)
