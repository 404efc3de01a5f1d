"""The Limiter (modelgate.limits.policy) over real stores: quota counters rebuilt from the usage
source once however many requests wait, and a Redis of the test's own that goes away and comes
back under both failure policies.

The quota source stands for the database's usage records (in the gateway it is a SQL sum); here it
is a plain function over a dict the test keeps in step with what was settled, as the usage
recorder keeps the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis

from modelgate.errors import ServiceUnavailable
from modelgate.limits import Limiter, MemoryStore, Plan, QuotaScope, RateScope
from modelgate.limits.redis import RedisStore
from tests.harness import free_port
from tests.limits.support import PrivateRedis, flush_worker_redis, uid, worker_redis_url

DAY = 86_400


def quota(limit: int) -> QuotaScope:
    now = time.time()
    return QuotaScope(f"t:{uid()}:m", limit, now - DAY, now + DAY, "tenant", 1)


def plan(*scopes: RateScope | QuotaScope, tokens: int = 0) -> Plan:
    return Plan([s for s in scopes if isinstance(s, RateScope)], [s for s in scopes if isinstance(s, QuotaScope)],
                tokens, time.time())  # fmt: skip


class Books:
    """The usage records: what the quota source answers, and how often it was asked."""

    def __init__(self, used: int = 0, delay: float = 0.0) -> None:
        self.used = used
        self.delay = delay
        self.calls: list[str] = []
        self.fail_next = False

    async def source(self, scope: QuotaScope) -> int:
        self.calls.append(scope.key)
        await asyncio.sleep(self.delay)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("database unreachable")
        return self.used


async def until(check: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    r = PrivateRedis(tmp_path / "redis").start()
    try:
        yield r
    finally:
        r.kill()


# --------------------------------------------------------------------------- rebuild


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_quota_counter_is_rebuilt_once_for_all_waiting_requests(backend: str) -> None:
    if backend == "redis":
        url = worker_redis_url()
        flush_worker_redis(url)
    books = Books(used=70, delay=0.05)
    lim = Limiter(MemoryStore() if backend == "memory" else RedisStore(url), books.source)
    try:
        q = quota(100)
        got = await asyncio.gather(*(lim.reserve(plan(q, tokens=10)) for _ in range(20)))
        assert books.calls == [q.key]  # one database query, not twenty
        assert sum(d.allowed for d in got) == 3  # 70 used: admitted at 70, 80 and 90
        assert await lim.primary.quota_used(q.key) == (70, 30)
    finally:
        await lim.close()


async def test_a_failed_rebuild_fails_its_waiters_and_is_retried() -> None:
    books = Books(used=10, delay=0.05)
    books.fail_next = True
    lim = Limiter(MemoryStore(), books.source)
    q = quota(100)
    got = await asyncio.gather(*(lim.reserve(plan(q, tokens=1)) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(g, RuntimeError) for g in got)
    assert len(books.calls) == 1
    d = await lim.reserve(plan(q, tokens=1))  # nothing half-loaded was left behind
    assert d.allowed and d.quota_remaining == 90
    await lim.close()


# --------------------------------------------------------------------------- Redis unreachable


async def test_fail_open_uses_local_counters_of_the_same_limits() -> None:
    books = Books(used=95)
    lim = Limiter(RedisStore(f"redis://127.0.0.1:{free_port()}/0"), books.source, policy="open")
    try:
        assert lim.state == "redis:up"
        r, q = RateScope(f"ep:{uid()}", 3, None), quota(1000)
        plans = [plan(r, q, tokens=10) for _ in range(4)]
        got = [await lim.reserve(p) for p in plans]
        assert lim.state == "redis:down"
        assert [d.allowed for d in got] == [True, True, True, False] and got[3].reason == "rpm"
        assert all(p.store is lim.local for p in plans[:3])
        assert books.calls == [q.key]  # the local quota counter was rebuilt from the records
        assert await lim.local.quota_used(q.key) == (95, 30)
        for p in plans[:3]:
            lim.settle(p, 4)
        assert await lim.local.quota_used(q.key) == (107, 0)
        assert await lim.quota_status(q) == (107, 0)
    finally:
        await lim.close()


async def test_fail_closed_refuses_with_limiter_unavailable() -> None:
    lim = Limiter(RedisStore(f"redis://127.0.0.1:{free_port()}/0"), Books().source, policy="closed")
    try:
        for _ in range(2):  # the first call finds out, the second is refused without trying
            with pytest.raises(ServiceUnavailable) as info:
                await lim.reserve(plan(RateScope(f"ep:{uid()}", 10, None)))
            assert info.value.status == 503 and info.value.code == "limiter_unavailable"
        assert lim.state == "redis:down"
    finally:
        await lim.close()


@pytest.mark.parametrize("policy", ["open", "closed"])
async def test_back_to_redis_when_it_returns_with_counters_rebuilt(private_redis: PrivateRedis, policy: str) -> None:
    books = Books(used=0)
    lim = Limiter(RedisStore(private_redis.url()), books.source, policy=policy)
    try:
        q = quota(1000)
        p = plan(q, tokens=100)
        assert (await lim.reserve(p)).allowed and p.store is lim.primary
        lim.settle(p, 100)
        books.used += 100

        async def settled() -> bool:
            return await lim.primary.quota_used(q.key) == (100, 0)

        await until(settled)
        private_redis.kill()
        p = plan(q, tokens=50)
        if policy == "open":
            assert (await lim.reserve(p)).allowed and p.store is lim.local
            lim.settle(p, 50)
            books.used += 50
        else:
            with pytest.raises(ServiceUnavailable):
                await lim.reserve(p)
        assert not lim.healthy
        private_redis.start()  # same port, empty: everything it held is gone
        await until(lambda: lim.healthy)
        assert lim.state == "redis:up"
        p = plan(q, tokens=10)
        d = await lim.reserve(p)
        assert d.allowed and p.store is lim.primary
        # rebuilt from the records: the usage before and during the outage both count
        assert await lim.primary.quota_used(q.key) == (books.used, 10)
        assert d.quota_remaining == 1000 - books.used
    finally:
        await lim.close()


async def test_each_outage_starts_from_the_records_not_from_the_last_outage(private_redis: PrivateRedis) -> None:
    """Fail-open twice in one cycle: the local counters of the second outage must include what was
    used through Redis in between, or the quota is overshot by all of it."""
    books = Books(used=0)
    lim = Limiter(RedisStore(private_redis.url()), books.source, policy="open")

    async def call(tokens: int) -> bool:
        p = plan(q, tokens=tokens)
        d = await lim.reserve(p)
        if d.allowed:
            lim.settle(p, tokens)
            books.used += tokens
        return d.allowed

    try:
        q = quota(1000)
        private_redis.kill()
        assert await call(100)  # outage 1: local counter rebuilt (0 used)
        private_redis.start()
        await until(lambda: lim.healthy)
        assert await call(800)  # through Redis (its counter rebuilt: 100)
        await until(lambda: _redis_used(private_redis, q) == 900)
        private_redis.kill()
        assert await call(50)  # outage 2: 900 used, 100 remain
        assert await call(50)  # 950 used, 50 remain
        assert not await call(50)  # 1000 used: exhausted
        assert books.used == 1000
    finally:
        await lim.close()


async def test_settles_that_fail_while_redis_is_unreachable_are_replayed(private_redis: PrivateRedis) -> None:
    """Redis stalls (data kept) while a request ends: its settle must not be lost, or the
    reservation stays in the quota counter for the rest of the cycle."""
    lim = Limiter(RedisStore(private_redis.url(), timeout=0.5), Books(used=0).source, policy="open")
    try:
        q = quota(1000)
        p = plan(q, tokens=100)
        assert (await lim.reserve(p)).allowed
        with private_redis.client() as admin:
            admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
            lim.settle(p, 30)
            await until(lambda: not lim.healthy, timeout=5)
        await until(lambda: lim.healthy, timeout=10)
        await until(lambda: _redis_used(private_redis, q) == 30, timeout=5)
        assert _redis_counter(private_redis, q) == (30, 0)
    finally:
        await lim.close()


def _redis_counter(r: PrivateRedis, q: QuotaScope) -> tuple[int, int] | None:
    try:
        with r.client() as c:
            used, reserved = c.hmget(f"mg:q:{q.key}", "used", "reserved")
    except redis.RedisError:
        return None
    return None if used is None else (int(used), int(reserved or 0))


def _redis_used(r: PrivateRedis, q: QuotaScope) -> int | None:
    got = _redis_counter(r, q)
    return None if got is None else got[0]


# --------------------------------------------------------------------------- batching on Redis


async def test_concurrent_redis_reserves_and_settles_share_round_trips_and_stay_exact() -> None:
    """Reserves that arrive while one is on its way go together in one pipeline, settles likewise;
    every script still runs atomically, so 200 concurrent requests against RPM 50 admit exactly 50
    and the quota counter ends with exactly what was settled."""
    url = worker_redis_url()
    flush_worker_redis(url)
    store = RedisStore(url)
    lim = Limiter(store, Books(used=0).source)
    pipelines = 0
    original = store._pipelined

    async def counting(*args: object) -> list[object]:
        nonlocal pipelines
        pipelines += 1
        return await original(*args)  # type: ignore[arg-type]

    store._pipelined = counting  # type: ignore[method-assign]
    try:
        rate, q = RateScope(f"ep:{uid()}", 50, None), quota(10**9)
        plans = [plan(rate, q, tokens=10) for _ in range(200)]
        got = await asyncio.gather(*(lim.reserve(p) for p in plans))
        assert sum(d.allowed for d in got) == 50
        assert 1 <= pipelines < 20, pipelines  # a handful of batches, not 200 round trips
        for p, d in zip(plans, got, strict=True):
            if d.allowed:
                lim.settle(p, 7)
        await until(lambda: lim._settler is not None and lim._settler.done())
        assert await store.quota_used(q.key) == (50 * 7, 0)
    finally:
        await lim.close()
