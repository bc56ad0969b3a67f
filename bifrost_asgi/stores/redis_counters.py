"""Counters in Redis: exact across every worker and host that shares the server.

Each admission, settlement and read is one Lua script (one round trip, EVALSHA), and Redis runs a script
with nothing else in between: that is what makes admission all-or-nothing across a request's counters.
Every counter is a hash ``{used, reserved, start, end}`` under ``prefix + Limit.key``.

The scripts transcribe ``roll_window``, ``blocks`` and ``admit_states`` from ``counters.py``. Python
computes the window a counter would move to (calendar arithmetic stays in one place, ``window_bounds``);
the script decides, against the stored window, whether it moves. Numbers travel as ``repr`` and are
stored as ``%.17g``, both exact for doubles, so the arithmetic matches the memory store bit for bit.

Keys of one request must live on one server: with Redis Cluster, put a hash tag in ``prefix``.

redis-py is an optional extra, imported when a store is created: ``bifrost_asgi.stores`` exports this
class to every install, and creating one without the extra says what to install.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from bifrost_asgi.errors import store_unavailable
from bifrost_asgi.stores.batching import AdmitOp, SettleOp
from bifrost_asgi.stores.counters import (
    RESERVATION_TTL,
    Admission,
    Claim,
    CounterState,
    Limit,
    fresh_window,
    shielded,
    shielded_admit,
    slot,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisCounterStore", "connect_redis"]

log = logging.getLogger("bifrost_asgi.governance")

# A counter outlives its window by this much, so in-flight reservations (a long stream) still find it.
_TTL_GRACE_S = 3600.0
_WARN_EVERY_S = 60.0

# Shared by the scripts. ARGV[1] = now, ARGV[2] = TTL grace in seconds, ARGV[3] = the oldest reservation
# slot still held (older ones expire: `expire_reservations`); then fields per operation or key.
_PRELUDE = """
local now = tonumber(ARGV[1])
local grace = tonumber(ARGV[2])
local cutoff = tonumber(ARGV[3])
local states = {}

-- roll_window() and expire_reservations(): the counter as seen at `now`; one table per key, so a key
-- named twice is shared. Reservation slots are the hash's 'h:<slot>' fields.
local function current(key, aligned, fresh_start, fresh_end)
  local s = states[key]
  if s == nil then
    local v = redis.call('HGETALL', key)
    s = {used = 0, reserved = 0, start = 0, stop = 0, held = {}, gone = {}, dirty = false, rolled = false}
    for i = 1, #v, 2 do
      local f, x = v[i], tonumber(v[i + 1])
      if f == 'used' then s.used = x
      elseif f == 'reserved' then s.reserved = x
      elseif f == 'start' then s.start = x
      elseif f == 'end' then s.stop = x
      elseif string.sub(f, 1, 2) == 'h:' then s.held[tonumber(string.sub(f, 3))] = x
      end
    end
    states[key] = s
  end
  if s.stop == 0 or now >= s.stop or (aligned == '1' and now < s.start) then
    s.start, s.stop, s.used = tonumber(fresh_start), tonumber(fresh_end), 0
    s.dirty, s.rolled = true, true
  end
  for slot, amount in pairs(s.held) do
    if slot < cutoff then
      s.reserved = math.max(0, s.reserved - amount)
      s.held[slot] = nil
      s.gone[#s.gone + 1] = slot
      s.dirty = true
    end
  end
  return s
end

local function fmt(x)
  return string.format('%.17g', x)
end

local function save()
  for key, s in pairs(states) do
    if s.dirty then
      redis.call('HSET', key, 'used', fmt(s.used), 'reserved', fmt(s.reserved),
                 'start', fmt(s.start), 'end', fmt(s.stop))
      for slot, amount in pairs(s.held) do
        redis.call('HSET', key, 'h:' .. slot, fmt(amount))
      end
      for _, slot in ipairs(s.gone) do
        if s.held[slot] == nil then
          redis.call('HDEL', key, 'h:' .. slot)
        end
      end
    end
    -- The expiry follows the window's end, so it only moves when the window does.
    if s.rolled then
      redis.call('PEXPIRE', key, math.ceil((s.stop - now + grace) * 1000))
    end
  end
end
"""

# Admissions and settlements (stores/batching.py; a single admit or settle is a batch of one), in order.
# KEYS[1] and KEYS[2] are the batch's done and cancelled markers; counters follow. ARGV[4] = number of
# operations; then per operation: 'a' or 's', its claim count, and per claim: key index (into KEYS),
# aligned, fresh_start, fresh_end, amount, its reservation slot (-1: untracked), then for an admission
# kind and max, for a settlement the actual amount. Returns, per operation, the 1-based indexes of its
# blocking claims (admit_states / settle_states, transcribed). A batch whose caller timed out and gave it
# up (the cancelled marker, `_RESOLVE`) is never applied late; an applied one leaves the done marker with
# the operations it admitted, so a caller that timed out can learn what happened.
_BATCH = (
    _PRELUDE
    + """
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 'cancelled'
end
local out = {}
local admitted = {}
local p = 5
for o = 1, tonumber(ARGV[4]) do
  local op, n = ARGV[p], tonumber(ARGV[p + 1])
  p = p + 2
  local blocked, seen = {}, {}
  for i = 1, n do
    local q = p + (i - 1) * 8
    seen[i] = current(KEYS[tonumber(ARGV[q])], ARGV[q + 1], ARGV[q + 2], ARGV[q + 3])
  end
  if op == 'a' then
    for i = 1, n do
      local q = p + (i - 1) * 8
      local s, amount, max = seen[i], tonumber(ARGV[q + 4]), tonumber(ARGV[q + 7])
      local over
      if ARGV[q + 6] == 'requests' then
        over = s.used + s.reserved + amount > max
      else
        over = s.used + s.reserved >= max
      end
      if over then
        blocked[#blocked + 1] = i
      end
    end
    if #blocked == 0 then
      for i = 1, n do
        local q = p + (i - 1) * 8
        local s, amount, slot = seen[i], tonumber(ARGV[q + 4]), tonumber(ARGV[q + 5])
        s.reserved = s.reserved + amount
        if slot >= 0 then
          s.held[slot] = (s.held[slot] or 0) + amount
        end
        s.dirty = true
      end
    end
  else
    for i = 1, n do
      local q = p + (i - 1) * 8
      local s, amount, slot = seen[i], tonumber(ARGV[q + 4]), tonumber(ARGV[q + 5])
      s.used = s.used + tonumber(ARGV[q + 6])
      if slot < 0 then
        s.reserved = math.max(0, s.reserved - amount)
      elseif s.held[slot] ~= nil then
        local release = math.min(amount, s.held[slot])
        s.reserved = math.max(0, s.reserved - release)
        local left = s.held[slot] - release
        if left > 1e-12 then
          s.held[slot] = left
        else
          s.held[slot] = nil
          s.gone[#s.gone + 1] = slot
        end
      end
      s.dirty = true
    end
  end
  p = p + n * 8
  out[o] = blocked
  if op == 'a' and #blocked == 0 then
    admitted[#admitted + 1] = o
  end
end
save()
redis.call('SET', KEYS[1], table.concat(admitted, ',') .. ';', 'EX', 3600)
return out
"""
)

# What became of a batch whose answer never arrived: its done marker ('<admitted op indexes>;') if it was
# applied; else it is cancelled, so that it can never be applied later, and nil is returned.
_RESOLVE = """
local done = redis.call('GET', KEYS[1])
if done then
  return done
end
redis.call('SET', KEYS[2], '1', 'EX', 3600)
return false
"""

# Per key: aligned, fresh_start, fresh_end (ARGV from 4). Returns {used, reserved, start, end} per key.
_READ = (
    _PRELUDE
    + """
local out = {}
for i = 1, #KEYS do
  local a = 4 + (i - 1) * 3
  local s = current(KEYS[i], ARGV[a], ARGV[a + 1], ARGV[a + 2])
  out[i] = {fmt(s.used), fmt(s.reserved), fmt(s.start), fmt(s.stop)}
end
save()
return out
"""
)


class RedisCounterStore:
    """Budget and rate-limit counters shared by every worker and host through one Redis server.

    >>> store = RedisCounterStore("redis://redis.internal:6379/0", prefix="bifrost:")
    >>> admission = await store.admit(claims, now=time.time())

    If Redis cannot be reached, requests are refused with a 503 (``fail_open=False``, the default: limits
    are a promise) or let through unmetered (``fail_open=True``: availability first, with a warning).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "bifrost:",
        fail_open: bool = False,
        timeout_s: float = 1.0,
        max_connections: int = 64,
        reservation_ttl: float = RESERVATION_TTL,
    ) -> None:
        self._redis, self._unavailable = connect_redis(url, timeout_s, max_connections)
        self.reservation_ttl = reservation_ttl
        self._prefix = prefix
        self._fail_open = fail_open
        self._warned_at = -math.inf
        self._read = self._redis.register_script(_READ)
        self._resolve_script = self._redis.register_script(_RESOLVE)
        # Batches whose answer was lost (a timeout, a dropped connection): (id, operations), oldest first.
        self._unresolved: list[tuple[str, list[Any]]] = []
        self._batch = self._redis.register_script(_BATCH)

    async def admit(self, claims: Sequence[Claim], now: float) -> Admission:
        if not claims:
            return Admission(True, ())
        admit = self._admit_once(claims, now)
        return await shielded_admit(admit, lambda a: self.settle(a.claims, [0.0] * len(a.claims), now))

    async def settle(self, claims: Sequence[Claim], actual: Sequence[float], now: float) -> None:
        if claims:
            await shielded(self.run_batch([SettleOp.of(claims, actual)], now))

    async def read(self, limits: Sequence[Limit], now: float) -> list[CounterState]:
        if not limits:
            return []
        args: list[Any] = [now, _TTL_GRACE_S, self._cutoff(now)]
        for limit in limits:
            args += _window_args(limit, now)
        try:
            rows = await self._read(keys=self._keys(limits), args=args)
        except self._unavailable as exc:
            self._degrade("read", exc)
            return [CounterState() for _ in limits]  # failing open: nothing is known, nothing is counted
        return [CounterState(float(used), float(reserved), float(start), float(end))
                for used, reserved, start, end in rows]  # fmt: skip

    # The batcher must not retry this store's failed settlements itself: whether a batch whose answer was
    # lost was applied is only known later (`_resolve`), and a blind retry would count it twice.
    owns_retries = True

    async def run_batch(self, ops: Sequence[Any], now: float) -> list[Admission | None]:
        """Several admissions and settlements (`stores.batching`) in one script, in order.

        A batch whose answer is lost may or may not have run. Before the next batch, `_resolve` finds out:
        an applied one's admissions (their callers got a 503) are released, an unapplied one is cancelled
        for good and its settlements go again — so an outage leaks no reservation and counts nothing twice.
        """
        batch = uuid.uuid4().hex
        try:
            extras = await self._resolve()
        except Exception:
            # Still down: this batch was never sent. Kept as lost, it is resolved like one whose answer
            # was (never applied, so its settlements go again) — else a settlement queued during an
            # outage, a lease given back say, would be forgotten.
            self._unresolved.append((batch, list(ops)))
            raise
        todo = [*extras, *ops]
        keys: dict[str, int] = {self._marker("done", batch): 1, self._marker("cancelled", batch): 2}
        args: list[Any] = [now, _TTL_GRACE_S, self._cutoff(now), len(todo)]
        for op in todo:
            settling = hasattr(op, "actual")
            args += ["s" if settling else "a", len(op.claims)]
            for i, claim in enumerate(op.claims):
                index = keys.setdefault(self._prefix + claim.limit.key, len(keys) + 1)
                held = slot(claim.at, self.reservation_ttl) if claim.at else -1
                args += [index, *_window_args(claim.limit, now), claim.amount, held]
                args += [op.actual[i], 0] if settling else [claim.limit.kind, claim.limit.max]
        try:
            blocked = await self._batch(keys=list(keys), args=args)
        except self._unavailable as exc:
            self._unresolved.append((batch, todo))
            self._degrade("a batch", exc)
            # Failing open: nothing was reserved, so nothing is to settle (empty claims say so).
            return [None if hasattr(op, "actual") else Admission(True, ()) for op in ops]
        if not isinstance(blocked, list):  # cancelled: cannot happen to a batch we still wait for
            raise store_unavailable("a counter batch was cancelled")
        outcomes = [_outcome(op, found) for op, found in zip(todo, blocked, strict=True)]
        return outcomes[len(extras) :]

    async def _resolve(self) -> list[Any]:
        """Settle the fate of batches whose answer was lost; the operations to run first because of it."""
        extras: list[Any] = []
        while self._unresolved:
            batch, ops = self._unresolved[0]
            keys = [self._marker("done", batch), self._marker("cancelled", batch)]
            try:
                done = await self._resolve_script(keys=keys, args=[])
            except self._unavailable as exc:
                self._degrade("recovery", exc)  # still down: fail closed (or, open, try again later)
                break
            self._unresolved.pop(0)
            if done is None:  # never applied, and now never will be: its settlements are still owed
                extras += [op for op in ops if hasattr(op, "actual")]
                continue
            text = done.decode() if isinstance(done, bytes) else str(done)
            admitted = {int(i) for i in text.rstrip(";").split(",") if i}
            # Applied, but its callers were told it failed: give back what their admissions reserved.
            extras += [SettleOp.of(ops[i - 1].claims, [0.0] * len(ops[i - 1].claims)) for i in admitted]
        return extras

    def _marker(self, kind: str, batch: str) -> str:
        return f"{self._prefix}batch:{batch}:{kind}"

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def _admit_once(self, claims: Sequence[Claim], now: float) -> Admission:
        admission = (await self.run_batch([AdmitOp(tuple(claims))], now))[0]
        assert admission is not None
        return admission

    def _cutoff(self, now: float) -> int:
        return slot(now - self.reservation_ttl, self.reservation_ttl)

    def _keys(self, limits: Iterable[Limit]) -> list[str]:
        return [self._prefix + limit.key for limit in limits]

    def _degrade(self, what: str, exc: Exception) -> None:
        """Fail closed (raise a 503), or fail open and warn at most once a minute."""
        reason = f"{type(exc).__name__}: {exc}"  # redis-py names host and port, never the password
        if not self._fail_open:
            raise store_unavailable(reason) from exc
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            log.warning("governance store unavailable, %s not metered (fail_open): %s", what, reason)


def connect_redis(
    url: str, timeout_s: float, max_connections: int
) -> tuple[Redis, tuple[type[Exception], ...]]:
    """A client on a bounded pool, and the errors that mean Redis is down or too slow to answer (as
    opposed to a bug: a script error is not hidden by fail_open)."""
    try:
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
        raise ImportError(
            "Redis (counters, the response cache) needs redis-py: pip install 'bifrost-asgi[redis]'"
        ) from exc
    # One retry, and only for a failed connection: a pooled connection may have died with a Redis
    # restart. Timeouts are not retried, since the script may already have run.
    retry = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
    # A script takes microseconds; a second means Redis is in trouble, and requests should not wait on it.
    # A burst beyond ``max_connections`` queues for a connection instead of failing, as the default
    # pool would; each waits at most a few timeouts.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5 * timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=retry,
    )
    return Redis.from_pool(pool), (RedisConnectionError, RedisTimeoutError, OSError)


def _outcome(op: Any, blocked: list[int]) -> Admission | None:
    if hasattr(op, "actual"):
        return None
    if blocked:
        return Admission(False, op.claims, tuple(op.claims[i - 1] for i in blocked))
    return Admission(True, op.claims)


def _window_args(limit: Limit, now: float) -> list[Any]:
    return ["1" if limit.calendar_aligned else "0", *fresh_window(limit, now)]
