"""Retention removes exactly what is older than its horizon and leaves everything newer untouched:
per-request details (on PostgreSQL by dropping whole monthly partitions, then trimming the
straddling month), minute rollups (a UTC minute goes once it has wholly passed) and daily
rollups (a tenant-local day goes once it has wholly passed in that tenant's time zone).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from modelgate.storage import tables as t
from modelgate.storage.engine import make_engine, make_sessionmaker
from modelgate.storage.migrate import upgrade
from modelgate.storage.partitions import month_add
from modelgate.usage.events import UsageEvent
from modelgate.usage.flusher import UsageFlusher
from modelgate.usage.recorder import UsageRecorder
from modelgate.usage.retention import prune
from tests.harness import drop_pg_database, new_pg_database
from tests.services import require_postgres
from tests.usage.workload import World, daily_rollups, fetch_all, floor_to, minute_rollups

DETAIL_DAYS, ROLLUP_DAYS = 100, 30
GONE_TENANT = 999  # rows of a tenant that no longer exists


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'retention.db'}"
        upgrade(url)
        yield url
        return
    require_postgres()
    url, name = new_pg_database()
    try:
        upgrade(url)
        yield url
    finally:
        drop_pg_database(name)


def workload(world: World, rnd: random.Random) -> list[UsageEvent]:
    now = world.now
    dh, rh = now - DETAIL_DAYS * 86400, now - ROLLUP_DAYS * 86400
    instants = [rnd.uniform(now - 430 * 86400, now) for _ in range(1500)]
    # right at both horizons, and all over the minute that holds the rollup horizon
    instants += [h + off for h in (dh, rh) for off in (-86400, -61, -1, -0.001, 0.0, 0.001, 1, 61)]
    instants += [floor_to(rh, 60) + s for s in (0, 0.5, 30, 59.9)] + [floor_to(rh, 60) - 0.01, floor_to(rh, 3600) + 0.5]
    # around the local midnights before and after the rollup horizon, in every zone involved
    for tz in ("UTC", "Asia/Shanghai", "America/New_York", "Etc/GMT+12"):
        day = datetime.fromtimestamp(rh, ZoneInfo(tz)).date()
        for d in (day - timedelta(days=1), day, day + timedelta(days=1)):
            midnight = datetime.combine(d, datetime.min.time(), ZoneInfo(tz)).timestamp()
            instants += [midnight - 1, midnight, midnight + 1]
    tenants = [*world.tenants, None, GONE_TENANT]
    events = []
    for i, ts in enumerate(instants):
        for tenant in tenants if i >= 1500 else [rnd.choice(tenants)]:
            if ts > now - 1:
                continue
            events.append(UsageEvent(
                ts=ts, request_id=f"r{len(events):05d}", route="chat", status_code=200, tenant_id=tenant,
                endpoint_id=None if tenant is None else (tenant or 0) * 10 + rnd.randint(0, 2),
                user_id=None if tenant is None else rnd.randint(1, 3), api_key_id=None,
                input_tokens=rnd.randint(1, 100), output_tokens=rnd.randint(0, 50), latency_ms=rnd.uniform(1, 900),
                cost=rnd.randint(1, 1000) / 1e6,
            ))  # fmt: skip
    return events


async def seed(url: str, spool: Path) -> World:
    world = World(url=url, now=datetime.now(UTC).timestamp())
    engine = make_engine(url)
    try:
        sessions = make_sessionmaker(engine)
        async with sessions() as s, s.begin():
            for name, tz in (("ret-sh", "Asia/Shanghai"), ("ret-ny", "America/New_York")):
                tenant = t.Tenant(name=name, timezone=tz)
                s.add(tenant)
                await s.flush()
                world.tenants[tenant.id], world.tenant_names[tenant.id] = tz, name
        world.events = workload(world, random.Random(11))
        recorder = UsageRecorder(spool, batch_size=700)
        for e in world.events:
            recorder.record(e)
        # the flusher dates a tenant it does not know in UTC, as the server does
        flusher = UsageFlusher(recorder, sessions, 60.0, tz_of=world.tz)
        assert await flusher.flush_once() == len(world.events)
    finally:
        await engine.dispose()
    return world


async def partitions(session: Any) -> dict[str, date]:
    rows = await session.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'usage_events'"))  # fmt: skip
    return {n: date(int(n[-6:-2]), int(n[-2:]), 1) if n[-6:].isdigit() else date.min for (n,) in rows.all()}


def kept_day(world: World, tenant_id: int, day: str, horizon: float) -> bool:
    """A local day stays unless it ended at or before the horizon (in the zone it was dated in)."""
    zone = "Etc/GMT+12" if tenant_id == GONE_TENANT else world.tz(tenant_id)
    end = datetime.combine(date.fromisoformat(day) + timedelta(days=1), datetime.min.time(), ZoneInfo(zone))
    return end.timestamp() > horizon


async def test_prune_removes_exactly_what_is_older_than_the_horizons(database: str, tmp_path: Path) -> None:
    world = await seed(database, tmp_path / "spool")
    dh, rh = world.now - DETAIL_DAYS * 86400, world.now - ROLLUP_DAYS * 86400
    minutes, hours, days = minute_rollups(world), minute_rollups(world, 3600), daily_rollups(world)
    engine = make_engine(database)
    try:
        sessions = make_sessionmaker(engine)
        pg = engine.dialect.name == "postgresql"
        if pg:
            async with sessions() as s:
                before = await partitions(s)
        async with sessions() as s, s.begin():
            result = await prune(s, detail_days=DETAIL_DAYS, rollup_days=ROLLUP_DAYS,
                                 now=datetime.fromtimestamp(world.now, UTC))  # fmt: skip
        async with sessions() as s:
            details = {r["request_id"]: r for r in await fetch_all(s, t.UsageEvent)}
            got_minutes = {(r["endpoint_id"], r["minute"], r["tenant_id"]): r for r in await fetch_all(s, t.UsageMinute)}
            got_hours = {(r["endpoint_id"], r["hour"], r["tenant_id"]): r for r in await fetch_all(s, t.UsageHour)}
            got_days = {(r["day"], r["tenant_id"], r["endpoint_id"], r["user_id"], r["api_key_id"]): r
                        for r in await fetch_all(s, t.UsageDaily)}  # fmt: skip
            after = await partitions(s) if pg else {}
        # details: every event at or after the horizon, none before, to the millisecond
        want = {e.request_id for e in world.events if e.ts >= dh}
        assert set(details) == want
        assert {e.request_id for e in world.events if dh - 0.002 < e.ts < dh} and want  # the edge was there
        # minute rollups: a minute goes once it has wholly passed; the kept ones are untouched
        want_minutes = {k: v for k, v in minutes.items() if k[1] + 60 > rh}
        assert set(got_minutes) == set(want_minutes)
        assert any(k[1] < rh < k[1] + 60 for k in got_minutes)  # the minute holding the horizon stays
        for k, w in want_minutes.items():
            assert (got_minutes[k]["requests"], got_minutes[k]["input_tokens"]) == (w["requests"], w["input_tokens"])
            assert got_minutes[k]["latency_sum_ms"] == pytest.approx(w["latency_sum_ms"])
        assert result["minute_rollups_deleted"] == len(minutes) - len(want_minutes)
        # hour rollups: likewise, an hour goes once it has wholly passed
        want_hours = {k: v for k, v in hours.items() if k[1] + 3600 > rh}
        assert set(got_hours) == set(want_hours) and any(k[1] < rh < k[1] + 3600 for k in got_hours)
        for k, w in want_hours.items():
            assert (got_hours[k]["requests"], got_hours[k]["output_tokens"]) == (w["requests"], w["output_tokens"])
        assert result["hour_rollups_deleted"] == len(hours) - len(want_hours)
        # daily rollups: per tenant-local day
        want_days = {k: v for k, v in days.items() if kept_day(world, k[1], k[0], rh)}
        assert set(got_days) == set(want_days)
        for k, w in want_days.items():
            assert (got_days[k]["requests"], got_days[k]["output_tokens"]) == (w["requests"], w["output_tokens"])
        assert result["daily_rollups_deleted"] == len(days) - len(want_days)
        for tid in (*world.tenants, 0, GONE_TENANT):  # something went, something stayed, in every zone
            assert any(k[1] == tid for k in got_days) and any(k[1] == tid for k in set(days) - set(got_days))
        if pg:
            horizon = datetime.fromtimestamp(dh, UTC)
            whole = {n for n, m in before.items() if m != date.min
                     and datetime.combine(month_add(m, 1), datetime.min.time(), UTC) <= horizon}  # fmt: skip
            assert len(whole) >= 8 and result["partitions_dropped"] == len(whole)
            assert not whole & set(after)  # dropped, not emptied
            assert set(before) - whole <= set(after) and "usage_events_default" in after
            this_month = datetime.fromtimestamp(world.now, UTC).date().replace(day=1)
            assert {f"usage_events_p{month_add(this_month, i):%Y%m}" for i in range(3)} <= set(after)
            # the rows the dropped partitions held are in the count of what went
            assert result["details_deleted"] < len(world.events) - len(want)
        else:
            assert result["details_deleted"] == len(world.events) - len(want)
        # a second run finds nothing more to remove
        async with sessions() as s, s.begin():
            again = await prune(s, detail_days=DETAIL_DAYS, rollup_days=ROLLUP_DAYS,
                                now=datetime.fromtimestamp(world.now, UTC))  # fmt: skip
        assert (again["details_deleted"], again["minute_rollups_deleted"], again["hour_rollups_deleted"],
                again["daily_rollups_deleted"], again.get("partitions_dropped", 0)) == (0, 0, 0, 0, 0)  # fmt: skip
    finally:
        await engine.dispose()


def test_new_events_after_a_prune_land_in_kept_or_new_partitions(database: str, tmp_path: Path) -> None:
    """After pruning, the writer still writes: this month and the months ahead have a partition."""

    async def run() -> None:
        engine = make_engine(database)
        try:
            sessions = make_sessionmaker(engine)
            async with sessions() as s, s.begin():
                await prune(s, detail_days=1, rollup_days=1)
            recorder = UsageRecorder(tmp_path / "spool", batch_size=10)
            now = datetime.now(UTC).timestamp()
            for i in range(25):
                recorder.record(UsageEvent(ts=now - i, request_id=f"after-{i}", route="chat", status_code=200,
                                           tenant_id=1, endpoint_id=1, input_tokens=i))  # fmt: skip
            assert await UsageFlusher(recorder, sessions, 60.0).flush_once() == 25
            async with sessions() as s:
                n = (await s.execute(text("SELECT count(*), sum(input_tokens) FROM usage_events"))).one()
                assert tuple(n) == (25, sum(range(25)))
                m = (await s.execute(text("SELECT sum(requests) FROM usage_minute"))).scalar_one()
                assert m == 25
        finally:
            await engine.dispose()

    asyncio.run(run())
