"""One GoHighLevel request budget per location, shared by every crm_sync replica through Redis.

A sliding log of granted requests (a sorted set, Redis's own clock) allows at most ``burst``
requests in any ``interval + margin`` milliseconds, and a counter per daily window caps the
daily total. The daily window is GHL's own once an answer carries ``x-ratelimit-daily-reset``
(milliseconds until GHL's daily budget resets), else the UTC day. The limits start from
settings and then follow GHL's X-RateLimit-* headers, because real tokens differ (a trial token
allows 25 per 10 s). The margin absorbs network jitter between our grant and GHL's arrival time,
so our own traffic never causes a 429. When the budget is spent, callers wait; hot callers
register as waiters and standard ones yield to them. When GHL says its daily budget is spent
but not when it resets, one probe request goes out per ``daily_probe_ms`` (see _OBSERVE). Events
parked on a spent budget are counted per location (see join_queue), so each stays parked about
as long as the calls ahead of it take.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis

from jorge_runtime.observability.metrics import GHL_BUDGET_REMAINING, GHL_BUDGET_STALE_GRANTS

Priority = Literal["hot", "standard"]

# Shared by both scripts. The location's daily window at `now`: its counter key, start and end
# (ms, Redis clock) and whether GHL said when it ends. Once GHL has told a reset time ('dreset'
# in the limits hash) the window is GHL's: past its end a new one starts, assumed to last a day
# until GHL's next answer says when it really ends ('dconfirmed'). Otherwise the UTC day.
_WINDOW = """
local DAY = 86400000
local function daily_window(p, now)
  local lk = p .. 'limits'
  local w = redis.call('HMGET', lk, 'dreset', 'dstart', 'dconfirmed')
  local dreset = tonumber(w[1])
  if not dreset then
    local day = math.floor(now / DAY)
    return p .. 'day:' .. day, day * DAY, (day + 1) * DAY, false
  end
  local key = p .. 'gday'
  if now >= dreset then
    local start = dreset + math.floor((now - dreset) / DAY) * DAY
    redis.call('HSET', lk, 'dstart', start, 'dreset', start + DAY, 'dconfirmed', '0')
    redis.call('DEL', key)
    return key, start, start + DAY, false
  end
  return key, tonumber(w[2]) or 0, dreset, w[3] == '1'
end
"""

# KEYS[1] = key prefix of the location. ARGV: default burst, interval ms, daily, margin ms,
# priority, waiter id, request id, daily probe ms.
# Returns {granted, wait_ms, burst_left, daily_left, granted_at (Redis ms), probe (1 or 0)}.
_ACQUIRE = (
    _WINDOW
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local p = KEYS[1]
local lk = p .. 'limits'
local lim = redis.call('HMGET', lk, 'burst', 'interval', 'daily', 'blocked_until', 'probe_until', 'dspent')
local burst = tonumber(lim[1]) or tonumber(ARGV[1])
local interval = tonumber(lim[2]) or tonumber(ARGV[2])
local daily = tonumber(lim[3]) or tonumber(ARGV[3])
local blocked = math.max(tonumber(lim[4]) or 0, tonumber(lim[5]) or 0)
local span = interval + tonumber(ARGV[4])
local hot = p .. 'hot'
local is_hot = ARGV[5] == 'hot'
local function deny(wait)
  if is_hot then
    redis.call('ZADD', hot, now, ARGV[6])
    redis.call('PEXPIRE', hot, 60000)
  end
  return {0, math.max(1, math.floor(wait)), 0, 0, 0, 0}
end
if blocked > now then return deny(blocked - now) end
local log = p .. 'log'
redis.call('ZREMRANGEBYSCORE', log, '-inf', now - span)
local used = redis.call('ZCARD', log)
if used >= burst then
  local idx = used - burst
  local entry = redis.call('ZRANGE', log, idx, idx, 'WITHSCORES')
  return deny(tonumber(entry[2]) + span - now + 1)
end
local probing = lim[6] == '1'
local dkey, _, dend, confirmed = daily_window(p, now)
local dused = tonumber(redis.call('GET', dkey) or '0')
-- While GHL says the day is spent, its probe answers decide, not our count.
if dused >= daily and not probing then
  if confirmed then return deny(dend - now) end
  -- Our count is spent but GHL never said so, nor when its day ends (its window is not the UTC
  -- day we assumed, and may have reset meanwhile): rest one probe interval, then probe, as if
  -- GHL had said "spent". Waiting for UTC midnight parked a location for hours.
  local rest = now + math.min(tonumber(ARGV[8]), dend - now)
  redis.call('HSET', lk, 'dspent', '1', 'probe_until', rest)
  return deny(rest - now)
end
if is_hot then
  redis.call('ZREM', hot, ARGV[6])
else
  redis.call('ZREMRANGEBYSCORE', hot, '-inf', now - 3000)
  if redis.call('ZCARD', hot) > 0 then return {0, 25, 0, 0, 0, 0} end
end
local daily_left = math.max(0, daily - dused - 1)
if probing then
  -- GHL said its daily budget is spent, not when it resets: this request is the one probe.
  redis.call('HSET', lk, 'probe_until', now + math.min(tonumber(ARGV[8]), dend - now))
  daily_left = 0
end
redis.call('ZADD', log, now, ARGV[7])
redis.call('PEXPIRE', log, span + 1000)
redis.call('INCR', dkey)
redis.call('PEXPIRE', dkey, dend - now + DAY)
return {1, 0, burst - used - 1, daily_left, now, probing and 1 or 0}
"""
)

# KEYS[1] = key prefix. ARGV: max, remaining, interval ms, daily limit, daily remaining (each ''
# when the header was absent), status, default burst, interval ms, daily, margin ms, daily reset
# ms ('' when absent), granted_at ('' when unknown), daily probe ms.
# Returns {burst_left, daily_left}.
_OBSERVE = (
    _WINDOW
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local p = KEYS[1]
local lk = p .. 'limits'
if ARGV[1] ~= '' and tonumber(ARGV[1]) > 0 then redis.call('HSET', lk, 'burst', ARGV[1]) end
if ARGV[3] ~= '' and tonumber(ARGV[3]) > 0 then redis.call('HSET', lk, 'interval', ARGV[3]) end
if ARGV[4] ~= '' and tonumber(ARGV[4]) > 0 then redis.call('HSET', lk, 'daily', ARGV[4]) end
local lim = redis.call('HMGET', lk, 'burst', 'interval', 'daily')
local burst = tonumber(lim[1]) or tonumber(ARGV[7])
local interval = tonumber(lim[2]) or tonumber(ARGV[8])
local daily = tonumber(lim[3]) or tonumber(ARGV[9])
local margin = tonumber(ARGV[10])
local span = interval + margin
local log = p .. 'log'
redis.call('ZREMRANGEBYSCORE', log, '-inf', now - span)
if ARGV[2] ~= '' then
  -- GHL counts fewer left than we do (other traffic on the location): count the difference now.
  local missing = (burst - redis.call('ZCARD', log)) - tonumber(ARGV[2])
  for i = 1, missing do
    redis.call('ZADD', log, now, 'seen:' .. now .. ':' .. i .. ':' .. math.random(1e9))
  end
  redis.call('PEXPIRE', log, span + 1000)
end
local dkey, dstart, dend, confirmed = daily_window(p, now)
local gkey = p .. 'gday'
-- An answer to a request granted before this window began tells nothing about this window.
if (tonumber(ARGV[12]) or now) >= dstart then
  local reset = tonumber(ARGV[11])
  -- A reset more than two days away is no daily reset (say, a misread timestamp): ignored.
  if reset and reset <= 2 * DAY then
    -- Our clock when the answer arrived plus GHL's duration: never before GHL's reset.
    local at = now + reset + margin
    if dkey ~= gkey then
      -- GHL's window replaces the UTC day; its count starts from GHL's own when it gives one.
      local carried = 0
      if ARGV[5] == '' then carried = tonumber(redis.call('GET', dkey) or '0') end
      redis.call('SET', gkey, carried, 'PX', at - now + DAY)
      redis.call('HSET', lk, 'dstart', 0)
    elseif at > dend + span then
      -- GHL's window reset before the end we expected: GHL's next window has begun.
      redis.call('SET', gkey, 0, 'PX', at - now + DAY)
      redis.call('HSET', lk, 'dstart', now)
    end
    redis.call('HSET', lk, 'dreset', at, 'dconfirmed', '1')
    dkey, dend, confirmed = gkey, at, true
  end
  if ARGV[5] ~= '' then
    local left = tonumber(ARGV[5])
    if left == 0 and not confirmed then
      -- Spent, and GHL did not say until when: rest, then let one probe out per rest (see
      -- _ACQUIRE) rather than mark the whole window spent or send every interval.
      local rest = now + math.min(tonumber(ARGV[13]), dend - now)
      local probe = tonumber(redis.call('HGET', lk, 'probe_until') or '0')
      redis.call('HSET', lk, 'dspent', '1', 'probe_until', math.max(probe, rest))
    else
      local used = tonumber(redis.call('GET', dkey) or '0')
      if redis.call('HGET', lk, 'dspent') == '1' then
        redis.call('HDEL', lk, 'dspent', 'probe_until')
        -- Spent before, budget now: GHL's window reset, so our count is of the old one.
        if left > 0 then used = -1 end
      end
      local their_used = math.max(0, daily - left)
      if their_used > used then
        redis.call('SET', dkey, their_used, 'PX', dend - now + DAY)
      end
    end
  end
end
if ARGV[6] == '429' then
  redis.call('HSET', lk, 'blocked_until', now + interval)
end
redis.call('PEXPIRE', lk, 2 * DAY)
local daily_left = math.max(0, daily - tonumber(redis.call('GET', dkey) or '0'))
if redis.call('HGET', lk, 'dspent') == '1' then daily_left = 0 end
return {burst - redis.call('ZCARD', log), daily_left}
"""
)

# KEYS[1] = key prefix of the location. ARGV: default burst, interval ms, priority, calls
# (negative: the event's turn came, its calls leave the queue), the budget's own wait ms.
# Returns how long a parked event with `calls` requests should wait: the budget's wait, or the
# time the calls parked before it take at the location's rate, whichever is longer. Hot calls
# wait only for hot ones (standard requests yield to them), standard ones for both.
_QUEUE = """
local p = KEYS[1]
local key = p .. 'queued:' .. ARGV[3]
local calls = tonumber(ARGV[4])
if calls < 0 then
  if redis.call('DECRBY', key, -calls) <= 0 then redis.call('DEL', key) end
  return 0
end
local lim = redis.call('HMGET', p .. 'limits', 'burst', 'interval')
local burst = tonumber(lim[1]) or tonumber(ARGV[1])
local interval = tonumber(lim[2]) or tonumber(ARGV[2])
local ahead = math.max(0, tonumber(redis.call('GET', p .. 'queued:hot') or '0'))
if ARGV[3] ~= 'hot' then
  ahead = ahead + math.max(0, tonumber(redis.call('GET', p .. 'queued:standard') or '0'))
end
redis.call('INCRBY', key, calls)
local wait = math.max(tonumber(ARGV[5]), math.ceil(ahead * interval / burst))
-- Outlives the last parked event's wait; one lost on the way only shortens later estimates.
if redis.call('PTTL', key) < wait + 60000 then redis.call('PEXPIRE', key, wait + 60000) end
return wait
"""


#: Stale grants given up in a row at most (a machine too loaded for any fresh one still sends).
_MAX_STALE = 3


@dataclass(frozen=True, slots=True)
class BudgetDefaults:
    """Limits used until GHL's headers say otherwise, the jitter margin, and how often to probe
    a location whose daily budget GHL says is spent without saying when it resets."""

    burst: int = 100
    interval_ms: int = 10_000
    daily: int = 200_000
    margin_ms: int = 250
    daily_probe_ms: int = 300_000


class BudgetSpent(Exception):
    """The location's budget frees up only after ``wait_ms``, longer than a caller may wait:
    the event is parked (delay topics) instead of holding its partition, lock and connection."""

    def __init__(self, location: str, wait_ms: int) -> None:
        super().__init__(f"GHL budget of the location spent for {wait_ms} ms")
        self.location = location
        self.wait_ms = wait_ms


class GhlBudget:
    """Acquire before every GHL call; observe every answer."""

    def __init__(
        self,
        redis: aioredis.Redis,
        defaults: BudgetDefaults,
        *,
        key_prefix: str = "",
        max_poll_seconds: float = 1.0,
    ) -> None:
        self._redis = redis
        self._defaults = defaults
        self._key_prefix = key_prefix
        self._max_poll = max_poll_seconds
        self._acquire = redis.register_script(_ACQUIRE)
        self._observe = redis.register_script(_OBSERVE)
        self._queue = redis.register_script(_QUEUE)

    def _key(self, location: str) -> str:
        # The hash tag keeps one location's keys on one cluster slot.
        return f"{self._key_prefix}ghl:{{{location}}}:"

    async def acquire(
        self, location: str, priority: Priority = "standard", *, max_wait_ms: int | None = None
    ) -> int:
        """Wait until one request to ``location`` fits the shared budget, then count it.

        Returns the grant time (ms, Redis clock), to pass to :meth:`observe` with the answer.
        With ``max_wait_ms``, a wait longer than that raises BudgetSpent at once instead.
        """
        d = self._defaults
        waiter = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        stale = 0
        while True:
            asked = loop.time()
            granted, wait_ms, burst_left, daily_left, granted_at, probe = await self._acquire(
                keys=[self._key(location)],
                args=[
                    d.burst,
                    d.interval_ms,
                    d.daily,
                    d.margin_ms,
                    priority,
                    waiter,
                    uuid.uuid4().hex,
                    d.daily_probe_ms,
                ],
            )
            lag_ms = (loop.time() - asked) * 1000
            if granted and not probe and d.margin_ms and lag_ms > d.margin_ms / 2 and stale < _MAX_STALE:
                # The answer came back late (a stalled loop or process): the request would reach
                # GHL later than the grant by about as much, and the margin may not cover it. The
                # grant stays counted; a fresh one is asked for. Never a probe's: it is the one
                # request that tells whether GHL's day has reset, and discarding it would leave the
                # location parked for another probe interval each time (on a loaded machine, on
                # and on).
                stale += 1
                GHL_BUDGET_STALE_GRANTS.inc()
                continue
            if granted:
                GHL_BUDGET_REMAINING.labels(location, "burst").set(int(burst_left))
                GHL_BUDGET_REMAINING.labels(location, "daily").set(int(daily_left))
                return int(granted_at)
            if max_wait_ms is not None and int(wait_ms) > max_wait_ms:
                if priority == "hot":  # no longer waiting: standard requests need not yield to it
                    await self._redis.zrem(f"{self._key(location)}hot", waiter)
                raise BudgetSpent(location, int(wait_ms))
            # Poll at least every max_poll seconds (hot waiters refresh their place), with jitter
            # so that replicas woken by the same expiry do not all ask in the same millisecond.
            await asyncio.sleep(min(int(wait_ms) / 1000, self._max_poll) + random.uniform(0, 0.005))  # noqa: S311  not for security: jitter or seeded demo data

    async def observe(
        self, location: str, headers: Mapping[str, str], status: int, granted_at: int | None = None
    ) -> None:
        """Follow GHL's X-RateLimit-* headers; after a 429 the location rests one interval.

        ``granted_at`` (what :meth:`acquire` returned) lets an answer to a request granted in an
        earlier daily window leave the current window's count alone.
        """
        d = self._defaults

        def header(name: str) -> str:
            value = headers.get(name, "")
            return value.strip() if value.strip().isdigit() else ""

        burst_left, daily_left = await self._observe(
            keys=[self._key(location)],
            args=[
                header("x-ratelimit-max"),
                header("x-ratelimit-remaining"),
                header("x-ratelimit-interval-milliseconds"),
                header("x-ratelimit-limit-daily"),
                header("x-ratelimit-daily-remaining"),
                str(status),
                d.burst,
                d.interval_ms,
                d.daily,
                d.margin_ms,
                header("x-ratelimit-daily-reset"),
                "" if granted_at is None else str(granted_at),
                d.daily_probe_ms,
            ],
        )
        GHL_BUDGET_REMAINING.labels(location, "burst").set(int(burst_left))
        GHL_BUDGET_REMAINING.labels(location, "daily").set(int(daily_left))

    async def join_queue(self, location: str, priority: Priority, calls: int, wait_ms: int) -> int:
        """Count an event with ``calls`` requests as parked at ``location`` (its budget spent for
        ``wait_ms``) and return how long it should stay parked: until the calls parked before it
        (hot ones only, for a hot event) would have gone out at the location's rate, if that is
        later. So a backlog comes back about when the budget can take it, each event about once,
        instead of every event every few seconds (which made the cost of waiting grow with the
        square of the backlog). A count, not a reservation: whoever finds budget uses it."""
        d = self._defaults
        key = self._key(location)
        wait = await self._queue(keys=[key], args=[d.burst, d.interval_ms, priority, calls, wait_ms])
        return int(wait)

    async def leave_queue(self, location: str, priority: Priority, calls: int) -> None:
        """The parked event's turn came: its ``calls`` no longer wait at ``location``."""
        d = self._defaults
        await self._queue(keys=[self._key(location)], args=[d.burst, d.interval_ms, priority, -calls, 0])
