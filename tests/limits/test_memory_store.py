"""The CounterStore contract, run against both backends: the in-process MemoryStore and the
RedisStore (its Lua scripts on the real Redis, in this xdist worker's own database).

A store checks every scope of a plan and reserves on all of them or on none; settle replaces the
estimate with the real count; a quota counter is never assumed empty (QuotaUnknown until
load_quota); under concurrency the limits hold exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from modelgate.limits import CounterStore, MemoryStore, Plan, QuotaScope, QuotaUnknown, RateScope
from modelgate.limits.redis import RedisStore
from tests.limits.support import flush_worker_redis, uid, worker_redis_url

NOW = 1_800_000_000.0  # a whole second; every test works on its own clock
DAY = 86_400


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CounterStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    url = worker_redis_url()
    flush_worker_redis(url)
    s = RedisStore(url)
    try:
        yield s
    finally:
        await s.close()


def rate(rpm: int | None = None, tpm: int | None = None, key: str | None = None) -> RateScope:
    return RateScope(key or f"ep:{uid()}", rpm, tpm)


def quota(limit: int, kind: str = "tenant", now: float = NOW) -> QuotaScope:
    return QuotaScope(f"{kind[0]}:{uid()}:m", limit, now - DAY, now + DAY, kind, 1)


def plan(*scopes: RateScope | QuotaScope, tokens: int = 0, now: float = NOW) -> Plan:
    return Plan([s for s in scopes if isinstance(s, RateScope)], [s for s in scopes if isinstance(s, QuotaScope)],
                tokens, now)  # fmt: skip


async def loaded(store: CounterStore, limit: int, used: int = 0, kind: str = "tenant") -> QuotaScope:
    q = quota(limit, kind)
    await store.load_quota(q, used)
    return q


# --------------------------------------------------------------------------- RPM


async def test_rpm_admits_exactly_the_limit_with_headers(store: CounterStore) -> None:
    r = rate(rpm=3)
    got = [await store.reserve(plan(r)) for _ in range(3)]
    assert all(d.allowed for d in got)
    assert [(d.limit_requests, d.remaining_requests) for d in got] == [(3, 2), (3, 1), (3, 0)]
    assert all(d.limit_tokens is None and d.remaining_tokens is None for d in got)
    denied = await store.reserve(plan(r))
    assert not denied.allowed
    assert (denied.reason, denied.scope) == ("rpm", r.key)
    assert (denied.limit_requests, denied.remaining_requests) == (3, 0)
    assert denied.retry_after == 60  # everything in the current second: the whole window


async def test_rpm_window_slides_by_the_second(store: CounterStore) -> None:
    r = rate(rpm=3)
    for t in (NOW, NOW, NOW + 30):
        assert (await store.reserve(plan(r, now=t))).allowed
    late = await store.reserve(plan(r, now=NOW + 59))
    assert not late.allowed and late.retry_after == 1  # the two at NOW leave at NOW + 60
    first = await store.reserve(plan(r, now=NOW + 60.5))
    assert first.allowed and first.remaining_requests == 1  # left in the window: NOW+30 and this one
    assert (await store.reserve(plan(r, now=NOW + 60.9))).allowed
    full = await store.reserve(plan(r, now=NOW + 61))
    assert not full.allowed and full.retry_after == 29  # the one at NOW+30 leaves at NOW+90


# --------------------------------------------------------------------------- TPM


async def test_tpm_admits_exactly_the_limit(store: CounterStore) -> None:
    r = rate(tpm=100)
    a = await store.reserve(plan(r, tokens=40))
    b = await store.reserve(plan(r, tokens=40))
    assert a.allowed and b.allowed
    assert [(d.limit_tokens, d.remaining_tokens) for d in (a, b)] == [(100, 60), (100, 20)]
    over = await store.reserve(plan(r, tokens=40))
    assert not over.allowed
    assert (over.reason, over.limit_tokens, over.remaining_tokens, over.retry_after) == ("tpm", 100, 20, 60)
    exact = await store.reserve(plan(r, tokens=20))
    assert exact.allowed and exact.remaining_tokens == 0
    assert not (await store.reserve(plan(r, tokens=1))).allowed


async def test_request_larger_than_tpm_is_refused_for_a_whole_window(store: CounterStore) -> None:
    d = await store.reserve(plan(rate(tpm=100), tokens=101))
    assert not d.allowed and d.reason == "tpm" and d.retry_after == 60


async def test_tpm_retry_after_counts_tokens_that_must_leave(store: CounterStore) -> None:
    r = rate(tpm=100)
    assert (await store.reserve(plan(r, tokens=30, now=NOW))).allowed
    assert (await store.reserve(plan(r, tokens=50, now=NOW + 10))).allowed
    d = await store.reserve(plan(r, tokens=60, now=NOW + 20))  # 40 must leave: the 30 are not enough
    assert not d.allowed and d.retry_after == 50  # NOW+10 leaves at NOW+70
    d = await store.reserve(plan(r, tokens=40, now=NOW + 20))  # 20 must leave: the 30 at NOW will do
    assert not d.allowed and d.retry_after == 40


async def test_settle_moves_tpm_to_the_actual_count(store: CounterStore) -> None:
    r = rate(tpm=100)
    p1, p2 = plan(r, tokens=40), plan(r, tokens=40)
    assert (await store.reserve(p1)).allowed and (await store.reserve(p2)).allowed
    await store.settle(p1, 10)  # real usage below the estimate frees 30
    d = await store.reserve(plan(r, tokens=40))
    assert d.allowed and d.remaining_tokens == 100 - 10 - 40 - 40
    await store.settle(p2, 55)  # above the estimate: the window holds 10 + 55 + 40
    assert not (await store.reserve(plan(r, tokens=1))).allowed


async def test_settle_of_a_zero_token_reservation_still_counts(store: CounterStore) -> None:
    """A request reserved with no estimate (e.g. an empty prompt) that turns out to use tokens."""
    r = rate(tpm=100)
    p = plan(r, tokens=0)
    assert (await store.reserve(p)).allowed
    await store.settle(p, 60)
    d = await store.reserve(plan(r, tokens=50))
    assert not d.allowed and d.remaining_tokens == 40


# --------------------------------------------------------------------------- quotas


async def test_quota_unknown_until_loaded_and_nothing_counted_meanwhile(store: CounterStore) -> None:
    r, q = rate(rpm=1), quota(100)
    with pytest.raises(QuotaUnknown) as info:
        await store.reserve(plan(r, q, tokens=10))
    assert [s.key for s in info.value.scopes] == [q.key]
    assert await store.quota_used(q.key) is None
    await store.load_quota(q, 40)
    d = await store.reserve(plan(r, q, tokens=10))
    assert d.allowed  # the RPM of 1 was not spent by the refused attempt
    assert d.quota_remaining == 60  # before this request's own reservation
    assert await store.quota_used(q.key) == (40, 10)
    await store.load_quota(q, 0)  # a second load (another process, a late rebuild) changes nothing
    assert await store.quota_used(q.key) == (40, 10)


async def test_quota_unknown_names_only_the_missing_counters(store: CounterStore) -> None:
    known = await loaded(store, 100)
    missing = quota(100, "endpoint")
    with pytest.raises(QuotaUnknown) as info:
        await store.reserve(plan(known, missing, tokens=1))
    assert [s.key for s in info.value.scopes] == [missing.key]
    assert await store.quota_used(known.key) == (0, 0)


async def test_settle_moves_quota_from_reserved_to_used(store: CounterStore) -> None:
    q = await loaded(store, 1000, used=5)
    p1, p2 = plan(q, tokens=30), plan(q, tokens=50)
    assert (await store.reserve(p1)).allowed and (await store.reserve(p2)).allowed
    assert await store.quota_used(q.key) == (5, 80)
    await store.settle(p1, 12)
    assert await store.quota_used(q.key) == (17, 50)
    await store.settle(p2, 70)
    assert await store.quota_used(q.key) == (87, 0)


async def test_exhausted_quota_is_refused_until_the_cycle_ends(store: CounterStore) -> None:
    q = await loaded(store, 100, used=99)
    p = plan(q, tokens=50)
    d = await store.reserve(p)
    assert d.allowed and d.quota_remaining == 1  # admitted while anything remains: overshoot <= its reservation
    refused = await store.reserve(plan(q, tokens=1, now=NOW + 5))
    assert not refused.allowed
    assert (refused.reason, refused.scope, refused.quota_remaining) == ("quota", q.key, 0)
    assert refused.retry_after == DAY - 5  # the cycle ends at NOW + DAY
    assert refused.extra == {"quota_limit": 100}
    await store.settle(p, 20)  # used 119 of 100: still refused
    assert not (await store.reserve(plan(q, tokens=1))).allowed
    assert await store.quota_used(q.key) == (119, 0)


async def test_available_is_the_minimum_of_tenant_and_endpoint(store: CounterStore) -> None:
    tenant = await loaded(store, 1000, used=900)
    endpoint = await loaded(store, 500, used=100, kind="endpoint")
    d = await store.reserve(plan(tenant, endpoint, tokens=150))
    assert d.allowed and d.quota_remaining == 100  # min(100, 400)
    refused = await store.reserve(plan(tenant, endpoint, tokens=1))
    assert not refused.allowed and refused.scope == tenant.key
    assert await store.quota_used(endpoint.key) == (100, 150)  # the refused one reserved nothing
    other_tenant_view = await store.reserve(plan(endpoint, tokens=10))
    assert other_tenant_view.allowed and other_tenant_view.quota_remaining == 250


# --------------------------------------------------------------------------- all or nothing


async def test_refusal_by_one_scope_reserves_nothing_anywhere(store: CounterStore) -> None:
    ep, key = rate(rpm=10, tpm=1000), rate(rpm=1, tpm=1000)
    q = await loaded(store, 10_000)
    assert (await store.reserve(plan(ep, key, q, tokens=100))).allowed
    refused = await store.reserve(plan(ep, key, q, tokens=100))
    assert not refused.allowed and (refused.reason, refused.scope) == ("rpm", key.key)
    # the endpoint window and the quota hold only the first request
    probe = await store.reserve(plan(ep, tokens=0))
    assert (probe.remaining_requests, probe.remaining_tokens) == (10 - 2, 1000 - 100)
    assert await store.quota_used(q.key) == (0, 100)


async def test_quota_refusal_counts_no_request_in_the_windows(store: CounterStore) -> None:
    ep = rate(rpm=2, tpm=1000)
    q = await loaded(store, 100, used=100)
    for _ in range(5):
        assert not (await store.reserve(plan(ep, q, tokens=10))).allowed
    d = await store.reserve(plan(ep, tokens=10))
    assert d.allowed and (d.remaining_requests, d.remaining_tokens) == (1, 990)


async def test_headers_report_the_tightest_scope(store: CounterStore) -> None:
    ep, key = rate(rpm=100, tpm=500), rate(rpm=5, tpm=10_000)
    d = await store.reserve(plan(ep, key, tokens=100))
    assert (d.limit_requests, d.remaining_requests) == (5, 4)  # the key's RPM is tighter
    assert (d.limit_tokens, d.remaining_tokens) == (500, 400)  # the endpoint's TPM is tighter


# --------------------------------------------------------------------------- concurrency


async def test_concurrent_reserves_admit_exactly_the_rpm(store: CounterStore) -> None:
    r = rate(rpm=50)
    got = await asyncio.gather(*(store.reserve(plan(r)) for _ in range(200)))
    allowed = [d for d in got if d.allowed]
    assert len(allowed) == 50
    assert sorted(d.remaining_requests for d in allowed) == list(range(50))  # each slot handed out once
    assert all(d.reason == "rpm" for d in got if not d.allowed)


async def test_concurrent_reserves_admit_exactly_the_tpm(store: CounterStore) -> None:
    r = rate(tpm=1000)
    got = await asyncio.gather(*(store.reserve(plan(r, tokens=20)) for _ in range(200)))
    allowed = [d for d in got if d.allowed]
    assert len(allowed) == 50
    assert sorted(d.remaining_tokens for d in allowed) == list(range(0, 1000, 20))


async def test_concurrent_reserves_overshoot_the_quota_by_less_than_one_reservation(store: CounterStore) -> None:
    q = await loaded(store, 95)
    got = await asyncio.gather(*(store.reserve(plan(q, tokens=10)) for _ in range(100)))
    assert sum(d.allowed for d in got) == 10  # admitted while used + reserved < 95: 0, 10, ..., 90
    assert await store.quota_used(q.key) == (0, 100)


async def test_concurrent_reserve_and_settle_keep_the_books(store: CounterStore) -> None:
    """Reserves and settles interleaved: every admitted token ends up in ``used``, nothing stays
    reserved, and admission never let used + reserved pass the quota by more than one estimate."""
    q = await loaded(store, 2000)
    r = rate(tpm=10**9)
    peak = 0
    admitted: list[int] = []

    async def call(i: int) -> None:
        nonlocal peak
        p = plan(r, q, tokens=40)
        d = await store.reserve(p)
        if not d.allowed:
            return
        used, reserved = await store.quota_used(q.key) or (0, 0)
        peak = max(peak, used + reserved)
        await asyncio.sleep(0.001 * (i % 5))
        actual = 10 + i % 30  # below the estimate, as the bound assumes
        await store.settle(p, actual)
        admitted.append(actual)

    await asyncio.gather(*(call(i) for i in range(300)))
    used, reserved = await store.quota_used(q.key) or (0, 0)
    assert reserved == 0
    assert used == sum(admitted)
    assert used < 2000 + 40 and peak < 2000 + 40  # never past the quota by a whole reservation
    assert len(admitted) < 300  # the quota did bind


# --------------------------------------------------------------------------- Redis specifics


@pytest.fixture
async def redis_store() -> AsyncIterator[RedisStore]:
    url = worker_redis_url()
    flush_worker_redis(url)
    s = RedisStore(url, max_connections=8)
    try:
        yield s
    finally:
        await s.close()


async def test_redis_more_concurrent_calls_than_connections_wait_instead_of_failing(redis_store: RedisStore) -> None:
    """A burst larger than the connection pool is load, not an outage: calls queue for a connection."""
    r = rate(rpm=50)
    got = await asyncio.gather(*(redis_store.reserve(plan(r)) for _ in range(200)))
    assert sum(d.allowed for d in got) == 50


async def test_redis_key_formats_and_expiry(redis_store: RedisStore) -> None:
    r = rate(rpm=5, tpm=100)
    q = quota(1000)
    await redis_store.load_quota(q, 7)
    assert (await redis_store.reserve(plan(r, q, tokens=30))).allowed
    c = redis_store.client
    assert await c.hgetall(f"mg:r:{r.key}") == {f"r{int(NOW)}".encode(): b"1", f"t{int(NOW)}".encode(): b"30"}
    assert 0 < await c.ttl(f"mg:r:{r.key}") <= 130  # two windows and a margin
    assert await c.hgetall(f"mg:q:{q.key}") == {b"used": b"7", b"reserved": b"30"}
    assert await c.expiretime(f"mg:q:{q.key}") == int(q.expires_at) + 7 * DAY  # a week after the cycle


async def test_redis_lost_counter_is_reported_not_assumed_empty(redis_store: RedisStore) -> None:
    q = await loaded(redis_store, 100, used=90)
    p = plan(q, tokens=5)
    assert (await redis_store.reserve(p)).allowed
    await redis_store.client.flushdb()  # Redis lost its data (restart, failover, FLUSHDB)
    with pytest.raises(QuotaUnknown):
        await redis_store.reserve(plan(q, tokens=5))
    await redis_store.settle(p, 5)  # a settle on the lost counter does not resurrect it half-empty
    assert await redis_store.quota_used(q.key) is None
