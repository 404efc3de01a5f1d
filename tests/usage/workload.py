"""A generated workload of usage events with known answers, and the reference computations.

``build_world`` creates two tenants in different time zones (Asia/Shanghai, UTC+8, and
America/New_York, UTC-5/-4), their users, endpoints, API keys and grants through the real
``modelgate.services`` functions on a migrated database, generates a seeded workload of events
(several days and weeks, local and UTC midnights, month starts, every error type, latencies in
every histogram bucket including the exact bounds and the overflow, streams with a time to
first token, requests that never resolved a tenant or endpoint) and pushes it through the real
writer (``UsageRecorder`` + ``UsageFlusher``) in several flushes of several batches each.

Everything below ``# --- reference`` recomputes the expected answers from the raw events
alone, without any modelgate code: sums, rates, error breakdowns, nearest-rank percentiles
mapped to their histogram bucket's upper bound, tenant-local dates, UTC-aligned buckets.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from modelgate.observability.metrics import Metrics
from modelgate.services.context import Actor
from modelgate.services.endpoints import create_endpoint
from modelgate.services.grants import grant_roles
from modelgate.services.keys import create_key
from modelgate.services.tenants import create_tenant
from modelgate.settings import Settings
from modelgate.storage import tables as t
from modelgate.storage.engine import make_engine, make_sessionmaker
from modelgate.storage.migrate import upgrade
from modelgate.usage.events import UsageEvent
from modelgate.usage.flusher import UsageFlusher
from modelgate.usage.recorder import UsageRecorder

# The histogram bounds are part of the schema (one column per bucket), not logic under test.
BOUNDS: tuple[int, ...] = t.LATENCY_BUCKETS_MS
# The error labels of the monitoring API (issue 5), plus "other" for anything unknown.
LABELS = ("rate_limited", "quota_exceeded", "permission_denied", "auth_failed", "bad_request", "upstream_4xx",
          "upstream_5xx", "upstream_timeout", "client_disconnected", "other")  # fmt: skip
# error_type as the gateway records it -> (HTTP status, expected monitoring label)
ERRORS: dict[str, tuple[int, str]] = {
    "rate_limited": (429, "rate_limited"),
    "quota_exceeded": (429, "quota_exceeded"),
    "permission_denied": (403, "permission_denied"),
    "auth_failed": (401, "auth_failed"),
    "bad_request": (400, "bad_request"),
    "not_found": (404, "bad_request"),  # unknown model: a bad request in monitoring
    "upstream_4xx": (502, "upstream_4xx"),
    "upstream_5xx": (502, "upstream_5xx"),
    "upstream_timeout": (504, "upstream_timeout"),
    "client_disconnected": (200, "client_disconnected"),
    "internal_error": (500, "other"),
    "something_new": (500, "other"),
}
# latencies that hit every bucket, its exact upper bound, just past it, and the overflow
SPECIAL_MS = sorted({0.0, 0.4, *(float(b) for b in BOUNDS), *(b + 0.001 for b in BOUNDS), *(b - 0.5 for b in BOUNDS),
                     75_000.0, 250_000.0})  # fmt: skip
ZONES = {"tz-shanghai": "Asia/Shanghai", "tz-newyork": "America/New_York"}
SPAN_DAYS = 64  # the previous calendar month always starts inside it


@dataclass
class World:
    url: str
    now: float
    tenants: dict[int, str] = field(default_factory=dict)  # id -> time zone
    tenant_names: dict[int, str] = field(default_factory=dict)
    users: dict[int, tuple[int, str]] = field(default_factory=dict)  # id -> (tenant, username)
    admins: dict[int, int] = field(default_factory=dict)  # tenant -> its Account/Gateway Admin's user id
    keys: dict[int, tuple[int, int, str]] = field(default_factory=dict)  # id -> (tenant, owner, name)
    endpoints: dict[int, tuple[int, str]] = field(default_factory=dict)  # id -> (tenant, name)
    grants: dict[int, dict[int, str]] = field(default_factory=dict)  # user -> {endpoint: role}
    events: list[UsageEvent] = field(default_factory=list)
    batches: list[list[UsageEvent]] = field(default_factory=list)  # as the flusher wrote them
    metrics: Metrics | None = None

    def tz(self, tenant_id: int | None) -> str:
        return self.tenants.get(tenant_id or 0, "UTC")

    def tenant(self, name: str) -> int:
        return next(i for i, n in self.tenant_names.items() if n == name)


# --------------------------------------------------------------------------- the world


async def _setup(world: World) -> None:
    settings = Settings(data_dir=Path("/nonexistent-not-used"))
    engine = make_engine(world.url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            for name, tz in ZONES.items():
                created = await create_tenant(session, Actor.system(), name, f"admin-{name[3:]}", timezone=tz)
                tid = created.tenant.id
                world.tenants[tid], world.tenant_names[tid] = tz, name
                world.users[created.admin.id] = (tid, created.admin.username)
                world.admins[tid] = created.admin.id
                system = Actor.system(tid)
                for u in ("alice", "bob", "carol"):
                    # plain members, written as SQL (services.users would spend ~0.5 s on argon2 each)
                    user = t.User(tenant_id=tid, username=f"{u}-{name[3:]}")
                    session.add(user)
                    await session.flush()
                    session.add(t.TenantRoleRow(tenant_id=tid, user_id=user.id, role="MEMBER"))
                    world.users[user.id] = (tid, user.username)
                for e in ("chat", "embed", "vision"):
                    values = {"name": f"{e}-{name[3:]}", "base_url": "http://127.0.0.1:9/v1", "model_version": "m"}
                    ep = await create_endpoint(session, settings, system, tid, values)
                    world.endpoints[ep.id] = (tid, ep.name)
                for uid, (utid, uname) in list(world.users.items()):
                    if utid != tid:
                        continue
                    for k in range(2 if uname.startswith("alice") else 1):
                        key, _ = await create_key(session, system, tid, owner=uname, name=f"{uname}-k{k}")
                        world.keys[key.id] = (tid, uid, key.name)
                # alice may use chat and monitor vision; bob may use chat; carol has no grant at all
                eps = {n.split("-")[0]: i for i, (et, n) in world.endpoints.items() if et == tid}
                for uname, role, ep_names in ((f"alice-{name[3:]}", "ENDPOINT_USER", ["chat"]),
                                              (f"alice-{name[3:]}", "ENDPOINT_VIEWER", ["vision"]),
                                              (f"bob-{name[3:]}", "ENDPOINT_USER", ["chat"])):  # fmt: skip
                    await grant_roles(session, system, tid, username=uname, role=role,
                                      endpoints=[f"{n}-{name[3:]}" for n in ep_names])  # fmt: skip
                    uid = next(i for i, (ut, un) in world.users.items() if un == uname)
                    for n in ep_names:
                        world.grants.setdefault(uid, {})[eps[n]] = role
    finally:
        await engine.dispose()


def _boundaries(now: float, start: float) -> list[float]:
    """Instants where a bucket, a local day or a month changes, inside (start, now)."""
    out: set[float] = set()
    for tz in ("UTC", *ZONES.values()):
        zone = ZoneInfo(tz)
        day = datetime.fromtimestamp(start, zone).date()
        last = datetime.fromtimestamp(now, zone).date()
        while day <= last:
            midnight = datetime.combine(day, datetime.min.time(), zone).timestamp()
            # every month start, and the last 4 midnights (dense), and every 5th day otherwise
            if day.day == 1 or (last - day).days < 4 or day.toordinal() % 5 == 0:
                out.add(midnight)
            day += timedelta(days=1)
    hour = now - now % 3600
    for h in range(1, 6):
        out.add(hour - h * 3600)
    return sorted(b for b in out if start < b - 2 and b + 2 < now)


def generate(world: World, seed: int = 20240501, n_random: int = 2400, n_dense: int = 700,
             span_days: int = SPAN_DAYS) -> list[UsageEvent]:  # fmt: skip
    rnd = random.Random(seed)
    now = world.now
    start = now - span_days * 86400
    seq = iter(range(10**9))
    by_tenant_users = defaultdict(list)
    for uid, (tid, _) in world.users.items():
        by_tenant_users[tid].append(uid)
    keys_of = defaultdict(list)
    for kid, (_, owner, _) in world.keys.items():
        keys_of[owner].append(kid)
    eps_of = defaultdict(list)
    for eid, (tid, _) in world.endpoints.items():
        eps_of[tid].append(eid)
    tenants = sorted(world.tenants)

    def latency() -> float:
        if rnd.random() < 0.35:
            return rnd.choice(SPECIAL_MS)
        return round(math.exp(rnd.uniform(math.log(0.5), math.log(90_000))), 3)

    def make(ts: float, tenant: int | None = None) -> UsageEvent:
        rid = f"req-{next(seq):06d}"
        if tenant is None and rnd.random() < 0.03:
            # a bad key: no tenant, no endpoint, no user
            return UsageEvent(ts=ts, request_id=rid, route="chat", status_code=401, error_type="auth_failed",
                              latency_ms=latency())  # fmt: skip
        tid = tenant if tenant is not None else rnd.choice(tenants)
        uid = rnd.choice(by_tenant_users[tid])
        kid = rnd.choice(keys_of[uid])
        channel, route = "api", rnd.choice(("chat", "chat", "chat", "embeddings", "completions"))
        if rnd.random() < 0.04:
            channel, route, kid = "test", "test", None  # console test connection: no key
        elif rnd.random() < 0.1:
            channel = "sql"
        eid: int | None = rnd.choice(eps_of[tid])
        error_type = None if rnd.random() < 0.7 else rnd.choice(list(ERRORS))
        if error_type == "not_found" or (error_type == "bad_request" and rnd.random() < 0.5):
            eid = None  # the model never resolved to an endpoint
        status = 200 if error_type is None else ERRORS[error_type][0]
        stream = route == "chat" and rnd.random() < 0.5
        reached_upstream = error_type in (None, "upstream_4xx", "upstream_5xx", "upstream_timeout",
                                          "client_disconnected")  # fmt: skip
        lat = latency()
        ttft = None
        if stream and reached_upstream and error_type != "upstream_4xx":
            ttft = min(lat, rnd.choice(SPECIAL_MS) if rnd.random() < 0.4 else round(lat * rnd.random(), 3))
        tin = rnd.randint(1, 4000) if reached_upstream else 0
        tout = rnd.randint(0, 1500) if error_type in (None, "client_disconnected") else 0
        cost = round(tin * rnd.choice((0.5, 1.25, 3.0)) / 1e6 + tout * rnd.choice((1.5, 10.0)) / 1e6, 9)
        upstream = {None: 200, "upstream_4xx": rnd.choice((400, 401, 404, 422)), "upstream_5xx": rnd.choice((500, 503)),
                    "client_disconnected": 200}.get(error_type) if reached_upstream else None  # fmt: skip
        return UsageEvent(
            ts=ts, request_id=rid, route=route, status_code=status, tenant_id=tid, endpoint_id=eid, user_id=uid,
            api_key_id=kid, channel=channel, is_stream=stream, error_type=error_type, input_tokens=tin,
            output_tokens=tout, cached_tokens=tin // 4 if rnd.random() < 0.2 else 0,
            reasoning_tokens=tout // 3 if rnd.random() < 0.1 else 0, is_estimated=rnd.random() < 0.05,
            latency_ms=lat, ttft_ms=ttft, upstream_status=upstream, cost=cost,
        )  # fmt: skip

    events = [make(rnd.uniform(start, now - 61)) for _ in range(n_random)]
    # the last three hours, densely: many requests share a minute (minute buckets add up)
    events += [make(rnd.uniform(now - 3 * 3600, now - 61)) for _ in range(n_dense)]
    # a burst within one minute of every tenant, one endpoint: histograms of one bucket
    burst = now - 7200 - now % 60 + 5
    events += [make(burst + i * 0.01, tenant=tenants[i % 2]) for i in range(120)]
    # on both sides of every boundary, for every tenant
    for b in _boundaries(now, start):
        for off in (-1.0, -0.001, 0.0, 0.5, 59.999, 60.0):
            for tid in tenants:
                events.append(make(b + off, tenant=tid))
    return events


async def _write(world: World, spool: Path, batch_size: int, seed: int) -> None:
    """Through the real recorder and flusher, in three flushes of several batches each."""
    engine = make_engine(world.url)
    rnd = random.Random(seed)
    shuffled = list(world.events)
    rnd.shuffle(shuffled)
    world.metrics = Metrics()
    recorder = UsageRecorder(spool, batch_size=batch_size)
    flusher = UsageFlusher(recorder, make_sessionmaker(engine), 60.0, tz_of=world.tz, metrics=world.metrics)
    try:
        cut = [0, len(shuffled) // 3, 2 * len(shuffled) // 3 + 17, len(shuffled)]
        for a, b in zip(cut, cut[1:], strict=False):
            part = shuffled[a:b]
            for e in part:
                recorder.record(e)
            for i in range(0, len(part), batch_size):
                world.batches.append(part[i : i + batch_size])
            assert await flusher.flush_once() == len(part)
            assert not recorder.buffer
    finally:
        await engine.dispose()


def build_world(
    url: str, spool: Path, *, now: float | None = None, batch_size: int = 400, span_days: int = SPAN_DAYS
) -> World:
    """Migrate, create the organisation, generate and write the workload (sync, for module fixtures)."""
    upgrade(url)
    world = World(url=url, now=now if now is not None else datetime.now(UTC).timestamp())
    asyncio.run(_setup(world))
    world.events = generate(world, span_days=span_days)
    asyncio.run(_write(world, spool, batch_size, seed=7))
    return world


async def fetch_all(session: Any, table: Any) -> list[dict[str, Any]]:
    rows = (await session.execute(select(table.__table__))).mappings().all()
    return [dict(r) for r in rows]


# --------------------------------------------------------------------------- reference
# Written from the definitions only; nothing below calls modelgate.


def label(e: UsageEvent) -> str | None:
    return None if e.error_type is None else ERRORS[e.error_type][1]


def succeeded(e: UsageEvent) -> bool:
    return e.error_type is None and e.status_code < 400


def bucket_index(ms: float) -> int:
    """Bucket i holds (BOUNDS[i-1], BOUNDS[i]]; past the last bound, the overflow bucket."""
    for i, bound in enumerate(BOUNDS):
        if ms <= bound:
            return i
    return len(BOUNDS)


def floor_to(ts: float, step: int) -> int:
    return math.floor(ts) // step * step


def local_day(ts: float, tz: str) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(tz)).date().isoformat()


def percentile_bound(values: list[float], q: Fraction) -> float | None:
    """Nearest-rank percentile of the raw values, reported as its bucket's upper bound
    (a value in the overflow bucket reports the last finite bound)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return float(BOUNDS[min(bucket_index(ordered[rank - 1]), len(BOUNDS) - 1)])


def minute_rollups(world: World, step: int = 60) -> dict[tuple[int, int, int], dict[str, Any]]:
    """The counters per (endpoint, UTC minute, tenant) -- or per hour with ``step=3600``."""
    out: dict[tuple[int, int, int], dict[str, Any]] = {}
    for e in world.events:
        key = (e.endpoint_id or 0, floor_to(e.ts, step), e.tenant_id or 0)
        r = out.setdefault(key, defaultdict(int, tenant_id=e.tenant_id or 0))
        r["requests"] += 1
        r["successes"] += succeeded(e)
        r["input_tokens"] += e.input_tokens
        r["output_tokens"] += e.output_tokens
        r["cost"] += e.cost
        r["latency_sum_ms"] += e.latency_ms
        r[f"lat_b{bucket_index(e.latency_ms)}"] += 1
        if e.ttft_ms is not None:
            r["ttft_count"] += 1
            r["ttft_sum_ms"] += e.ttft_ms
            r[f"ttft_b{bucket_index(e.ttft_ms)}"] += 1
        if (lab := label(e)) is not None:
            r[f"err_{lab}"] += 1
    return out


def daily_rollups(world: World) -> dict[tuple[str, int, int, int, int], dict[str, Any]]:
    out: dict[tuple[str, int, int, int, int], dict[str, Any]] = {}
    for e in world.events:
        key = (local_day(e.ts, world.tz(e.tenant_id)), e.tenant_id or 0, e.endpoint_id or 0, e.user_id or 0,
               e.api_key_id or 0)  # fmt: skip
        r = out.setdefault(key, defaultdict(int))
        r["requests"] += 1
        r["successes"] += succeeded(e)
        r["input_tokens"] += e.input_tokens
        r["output_tokens"] += e.output_tokens
        r["cost"] += e.cost
    return out


def kpis(events: list[UsageEvent]) -> dict[str, Any]:
    """The monitoring numbers of one bucket (or of the overview) from its raw events."""
    n = len(events)
    ok = sum(succeeded(e) for e in events)
    by_type = dict.fromkeys(LABELS, 0)
    for e in events:
        if (lab := label(e)) is not None:
            by_type[lab] += 1
    failed = sum(by_type.values())
    lat = [e.latency_ms for e in events]
    ttft = [e.ttft_ms for e in events if e.ttft_ms is not None]
    tin, tout = sum(e.input_tokens for e in events), sum(e.output_tokens for e in events)
    return {
        "requests": n, "successes": ok, "errors": failed,
        "success_rate": ok / n if n else None, "error_rate": failed / n if n else None,
        "errors_by_type": by_type,
        "latency_avg_ms": sum(lat) / n if n else None,
        "latency_p50_ms": percentile_bound(lat, Fraction(1, 2)),
        "latency_p95_ms": percentile_bound(lat, Fraction(95, 100)),
        "latency_p99_ms": percentile_bound(lat, Fraction(99, 100)),
        "ttft_avg_ms": sum(ttft) / len(ttft) if ttft else None,
        "ttft_p50_ms": percentile_bound(ttft, Fraction(1, 2)),
        "input_tokens": tin, "output_tokens": tout, "total_tokens": tin + tout,
        "cost": sum(e.cost for e in events),
    }  # fmt: skip


def expected_metrics(world: World, endpoint_id: int, start_s: int, end_s: int, step: int) -> dict[str, Any]:
    """UTC-aligned buckets from the one holding ``start_s`` up to ``end_s``; every bucket present."""
    first = start_s // step * step
    mine = [e for e in world.events if (e.endpoint_id or 0) == endpoint_id and first <= floor_to(e.ts, 60) < end_s]
    grouped: dict[int, list[UsageEvent]] = defaultdict(list)
    for e in mine:
        grouped[floor_to(e.ts, step)].append(e)
    series = [{"t": datetime.fromtimestamp(b, UTC).isoformat(), **kpis(grouped.get(b, []))}
              for b in range(first, end_s, step)]  # fmt: skip
    return {"overview": kpis(mine), "series": series}


def stats_rows(
    world: World, tenant_id: int, dimension: str, first: date, last: date,
    keep: Callable[[UsageEvent], bool] = lambda e: True,
) -> list[dict[str, Any]]:  # fmt: skip
    """Rows (id, local date, calls, tokens, cost) of one tenant's events in [first, last], by dimension."""
    tz = world.tz(tenant_id)
    attr = {"endpoint": "endpoint_id", "user": "user_id", "api_key": "api_key_id", "tenant": "tenant_id"}[dimension]
    groups: dict[tuple[int, str], list[UsageEvent]] = defaultdict(list)
    for e in world.events:
        if e.tenant_id != tenant_id or not keep(e):
            continue
        day = local_day(e.ts, tz)
        if first.isoformat() <= day <= last.isoformat():
            groups[(getattr(e, attr) or 0, day)].append(e)
    names = {
        "endpoint": {i: n for i, (tid, n) in world.endpoints.items() if tid == tenant_id},
        "user": {i: n for i, (tid, n) in world.users.items() if tid == tenant_id},
        "api_key": {i: n for i, (tid, _, n) in world.keys.items() if tid == tenant_id},
        "tenant": {tenant_id: world.tenant_names[tenant_id]},
    }[dimension]
    rows = []
    for (ident, day), evs in sorted(groups.items()):
        tin, tout = sum(e.input_tokens for e in evs), sum(e.output_tokens for e in evs)
        rows.append({"dimension": dimension, "id": ident, "name": names.get(ident, "(none)"), "date": day,
                     "calls": len(evs), "input_tokens": tin, "output_tokens": tout, "total_tokens": tin + tout,
                     "cost": sum(e.cost for e in evs)})  # fmt: skip
    return rows


def local_today(tz: str) -> date:
    return datetime.now(ZoneInfo(tz)).date()


def month_of(d: date, back: int = 0) -> tuple[date, date]:
    """First and last day of the calendar month ``back`` months before ``d``'s."""
    y, m = divmod(d.year * 12 + d.month - 1 - back, 12)
    first = date(y, m + 1, 1)
    ny, nm = divmod(y * 12 + m + 1, 12)
    return first, date(ny, nm + 1, 1) - timedelta(days=1)


def in_local_month(world: World, tenant_id: int, first: date, last: date) -> list[UsageEvent]:
    tz = world.tz(tenant_id)
    lo, hi = first.isoformat(), last.isoformat()
    return [e for e in world.events if e.tenant_id == tenant_id and lo <= local_day(e.ts, tz) <= hi]


def approx_rows(got: Iterable[dict[str, Any]], want: Iterable[dict[str, Any]], float_keys: tuple[str, ...]) -> None:
    got, want = list(got), list(want)
    assert len(got) == len(want), f"{len(got)} rows, expected {len(want)}"
    for g, w in zip(got, want, strict=True):
        for k in float_keys:
            assert g[k] == _approx(w[k]), (k, g, w)
        assert {k: v for k, v in g.items() if k not in float_keys} == {
            k: v for k, v in w.items() if k not in float_keys
        }, (g, w)


def _approx(x: float | None) -> Any:
    import pytest

    return None if x is None else pytest.approx(x, rel=1e-9, abs=2e-6)
