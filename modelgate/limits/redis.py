"""Redis counters shared by every gateway process: each reserve and each settle is ONE Lua call.

Key formats are stable: ``mg:r:<scope>`` hashes of per-second buckets (``r<sec>`` requests,
``t<sec>`` tokens) expiring after two windows; ``mg:q:<scope>:<cycle>`` hashes of ``used`` and
``reserved`` tokens, expiring a week after the cycle ends. A quota hash that is missing (new
cycle, Redis restarted or flushed) is reported, never assumed empty: the caller rebuilds it
from the database's usage records.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from modelgate.limits.base import CounterStore, Decision, Plan, QuotaScope, QuotaUnknown, StoreUnavailable

__all__ = ["RedisStore"]

_RESERVE = """
local now = tonumber(ARGV[1])
local tokens = tonumber(ARGV[2])
local nr = tonumber(ARGV[3])
local nq = tonumber(ARGV[4])
local floor = now - 60
local missing = {}
for i = 1, nq do
  if redis.call('EXISTS', KEYS[nr + i]) == 0 then missing[#missing + 1] = i end
end
if #missing > 0 then return {'missing', missing} end
local function retry(buckets, used, cost, limit)
  table.sort(buckets, function(a, b) return a[1] < b[1] end)
  local need, freed = used + cost - limit, 0
  for _, b in ipairs(buckets) do
    freed = freed + b[2]
    if freed >= need then return math.min(60, math.max(1, b[1] + 60 - now)) end
  end
  return 60
end
local lr, rr, lt, rt = -1, -1, -1, -1
for i = 1, nr do
  local rpm = tonumber(ARGV[3 + 2 * i]); local tpm = tonumber(ARGV[4 + 2 * i])
  local h = redis.call('HGETALL', KEYS[i])
  local req, tok, rb, tb = 0, 0, {}, {}
  for j = 1, #h, 2 do
    local f = h[j]; local v = tonumber(h[j + 1]); local sec = tonumber(string.sub(f, 2))
    if sec <= floor then redis.call('HDEL', KEYS[i], f)
    elseif string.sub(f, 1, 1) == 'r' then req = req + v; rb[#rb + 1] = {sec, v}
    else tok = tok + v; tb[#tb + 1] = {sec, v} end
  end
  if rpm >= 0 and req + 1 > rpm then
    return {'rpm', i, retry(rb, req, 1, rpm), rpm, 0, tpm, tpm >= 0 and math.max(0, tpm - tok) or -1}
  end
  if tpm >= 0 and tok + tokens > tpm then
    local ra = 60
    if tokens <= tpm then ra = retry(tb, tok, tokens, tpm) end
    return {'tpm', i, ra, rpm, rpm >= 0 and math.max(0, rpm - req) or -1, tpm, math.max(0, tpm - tok)}
  end
  if rpm >= 0 and (rr < 0 or rpm - req - 1 < rr) then lr = rpm; rr = rpm - req - 1 end
  if tpm >= 0 and (rt < 0 or tpm - tok - tokens < rt) then lt = tpm; rt = tpm - tok - tokens end
end
local qrem = -1
local base = 5 + 2 * nr
for i = 1, nq do
  local limit = tonumber(ARGV[base + 2 * (i - 1)])
  local v = redis.call('HMGET', KEYS[nr + i], 'used', 'reserved')
  local remaining = limit - (tonumber(v[1]) or 0) - (tonumber(v[2]) or 0)
  if remaining <= 0 then return {'quota', i, 0, -1, -1, -1, -1} end
  if qrem < 0 or remaining < qrem then qrem = remaining end
end
for i = 1, nr do
  redis.call('HINCRBY', KEYS[i], 'r' .. now, 1)
  redis.call('HINCRBY', KEYS[i], 't' .. now, tokens)  -- even 0: settle adds the real count to this bucket
  redis.call('EXPIRE', KEYS[i], 130)
end
for i = 1, nq do redis.call('HINCRBY', KEYS[nr + i], 'reserved', tokens) end
return {'ok', lr, rr, lt, rt, qrem}
"""

_SETTLE = """
local sec = ARGV[1]
local delta = tonumber(ARGV[2]); local actual = tonumber(ARGV[3]); local reserved = tonumber(ARGV[4])
local nr = tonumber(ARGV[5])
for i = 1, nr do
  if delta ~= 0 and redis.call('HEXISTS', KEYS[i], 't' .. sec) == 1 then
    redis.call('HINCRBY', KEYS[i], 't' .. sec, delta)
  end
end
for i = nr + 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('HINCRBY', KEYS[i], 'used', actual)
    if redis.call('HINCRBY', KEYS[i], 'reserved', -reserved) < 0 then redis.call('HSET', KEYS[i], 'reserved', 0) end
  end
end
return 1
"""

_LOAD = """
if redis.call('HSETNX', KEYS[1], 'used', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'reserved', 0)
  redis.call('EXPIREAT', KEYS[1], ARGV[2])
end
return 1
"""

_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


def _keys(plan: Plan) -> list[str]:
    return [f"mg:r:{r.key}" for r in plan.rates] + [f"mg:q:{q.key}" for q in plan.quotas]


def _reserve_call(plan: Plan) -> tuple[list[str], list[Any]]:
    keys = _keys(plan)
    args: list[Any] = [int(plan.now), plan.tokens, len(plan.rates), len(plan.quotas)]
    for r in plan.rates:
        args += [-1 if r.rpm is None else r.rpm, -1 if r.tpm is None else r.tpm]
    for q in plan.quotas:
        args += [q.limit, int(q.expires_at)]
    return keys, args


def _status(res: Any) -> str:
    return res[0].decode() if isinstance(res[0], bytes) else str(res[0])


def _decision(plan: Plan, res: Any) -> Decision:
    """The reserve script's answer as a Decision (``missing``: quota counters to rebuild first)."""
    status = _status(res)
    if status == "missing":
        raise QuotaUnknown([plan.quotas[int(i) - 1] for i in res[1]])
    n = [None if int(v) < 0 else int(v) for v in res[1:]]
    if status == "ok":
        return Decision(True, limit_requests=n[0], remaining_requests=n[1], limit_tokens=n[2],
                        remaining_tokens=n[3], quota_remaining=n[4])  # fmt: skip
    idx = int(res[1]) - 1
    scope = plan.rates[idx].key if status in ("rpm", "tpm") else plan.quotas[idx].key
    retry = int(res[2]) if status != "quota" else max(1, int(plan.quotas[idx].expires_at - plan.now))
    extra = {"quota_limit": plan.quotas[idx].limit} if status == "quota" else {}
    return Decision(False, status, scope, retry, n[2], n[3], n[4], n[5], 0 if status == "quota" else None,
                    extra)  # fmt: skip


def _settle_call(plan: Plan, actual_tokens: int) -> tuple[list[str], list[Any]]:
    return _keys(plan), [int(plan.now), actual_tokens - plan.tokens, actual_tokens, plan.tokens, len(plan.rates)]


class RedisStore(CounterStore):
    name = "redis"

    def __init__(self, url: str, *, timeout: float = 5.0, max_connections: int = 256) -> None:
        # Timeouts detect outages, not load: a busy gateway's event loop can lag by seconds during a
        # burst (cold connections are opened by the hundred), and a false outage switches the process
        # to local counters (fail-open admits more than the limit) or to 503s (fail-closed). A dead
        # Redis refuses connections at once, whatever the timeout.
        # A blocking pool: more concurrent calls than connections wait for one (bounded) instead of
        # failing with "Too many connections", which would look like an outage under load.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, socket_timeout=timeout,
            socket_connect_timeout=timeout, decode_responses=False, health_check_interval=0,
        )  # fmt: skip
        self.client = aioredis.Redis.from_pool(pool)
        self._reserve = self.client.register_script(_RESERVE)
        self._settle = self.client.register_script(_SETTLE)
        self._load = self.client.register_script(_LOAD)
        self._busy = False  # a reserve (or a batch of them) is on its way to Redis
        self._waiting: list[tuple[Plan, list[str], list[Any], asyncio.Future[Any]]] = []

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except NoScriptError:  # redis restarted: scripts are re-sent by the next call
            return await script(keys=keys, args=args)
        except _ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def reserve(self, plan: Plan) -> Decision:
        keys, args = _reserve_call(plan)
        if self._busy:
            # another reserve is on its way to Redis: join the next pipelined batch rather than
            # paying a round trip (and redis-py's per-call work) of its own. Each script still runs
            # atomically; one connection alone never waits for a batch.
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiting.append((plan, keys, args, fut))
            res = await fut
        else:
            self._busy = True
            try:
                res = await self._call(self._reserve, keys, args)
            finally:
                self._hand_over()
        return _decision(plan, res)

    def _hand_over(self) -> None:
        if self._waiting:
            asyncio.get_running_loop().create_task(self._drain_reserves(), name="redis-reserves")
        else:
            self._busy = False

    async def _drain_reserves(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                results: list[Any]
                try:
                    results = await self._pipelined(self._reserve, [(keys, args) for _, keys, args, _ in batch])
                except StoreUnavailable as exc:
                    results = [exc] * len(batch)
                for (plan, _, _, fut), res in zip(batch, results, strict=True):
                    if fut.done():
                        if not isinstance(res, BaseException) and _status(res) == "ok":
                            # the request went away while waiting: give its reservation back
                            with contextlib.suppress(StoreUnavailable):
                                await self.settle(plan, 0)
                    elif isinstance(res, BaseException):
                        fut.set_exception(res)
                    else:
                        fut.set_result(res)
        finally:
            for _, _, _, fut in self._waiting:
                if not fut.done():
                    fut.set_exception(StoreUnavailable("the reserve batch was interrupted"))
            self._waiting = []
            self._busy = False

    async def _pipelined(self, script: Any, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """The scripts' results in order; a failed script's error in its place."""
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for keys, args in calls:
                    await script(keys=keys, args=args, client=pipe)
                results = list(await pipe.execute(raise_on_error=False))
        except _ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc
        for i, res in enumerate(results):
            if isinstance(res, NoScriptError):  # Redis restarted between the script check and the calls
                results[i] = await self._call(script, *calls[i])
        return results

    async def settle(self, plan: Plan, actual_tokens: int) -> None:
        await self._call(self._settle, *_settle_call(plan, actual_tokens))

    async def settle_many(self, items: list[tuple[Plan, int]]) -> None:
        """One pipelined round trip for all of them."""
        if len(items) == 1:
            await self.settle(*items[0])
            return
        results = await self._pipelined(self._settle, [_settle_call(plan, actual) for plan, actual in items])
        for res in results:
            if isinstance(res, BaseException):
                raise res

    async def load_quota(self, scope: QuotaScope, used: int) -> None:
        await self._call(self._load, [f"mg:q:{scope.key}"], [used, int(scope.expires_at) + 7 * 86400])

    async def quota_used(self, key: str) -> tuple[int, int] | None:
        try:
            v = await self.client.hmget(f"mg:q:{key}", "used", "reserved")
        except _ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc
        if v[0] is None:
            return None
        return int(v[0]), int(v[1] or 0)

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except _ERRORS:
            return False

    async def close(self) -> None:
        await self.client.aclose()
