"""Usage statistics (every dimension and range, per tenant-local day, scoped by role) and the
monthly detail export equal a direct computation over the raw events, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelgate.errors import BadRequest
from modelgate.services.context import Actor
from modelgate.services.sessions import actor_for
from modelgate.services.usage_stats import STAT_COLUMNS, export_month, month_bounds, stats_csv, usage_stats
from modelgate.storage import tables as t
from modelgate.usage.events import UsageEvent
from tests.usage.workload import (
    SPAN_DAYS,
    World,
    approx_rows,
    in_local_month,
    local_day,
    local_today,
    month_of,
    stats_rows,
)

Sessions = async_sessionmaker[AsyncSession]
DIMENSIONS = ("endpoint", "user", "api_key", "tenant")


async def stats_today(session: AsyncSession, actor: Actor, tenant: t.Tenant, **kw: Any) -> tuple[dict[str, Any], date]:
    """usage_stats and the tenant-local date it answered for (retried if the call straddled midnight)."""
    for _ in range(3):
        before = local_today(tenant.timezone)
        got = await usage_stats(session, actor, tenant, **kw)
        if local_today(tenant.timezone) == before:
            return got, before
    raise AssertionError("the local date kept changing")


def check(got: dict[str, Any], want_rows: list[dict[str, Any]], first: date, last: date) -> None:
    assert (got["start"], got["end"]) == (first.isoformat(), last.isoformat())
    approx_rows(got["rows"], want_rows, ("cost",))
    tot = got["totals"]
    assert tot["calls"] == sum(r["calls"] for r in want_rows)
    assert tot["input_tokens"] == sum(r["input_tokens"] for r in want_rows)
    assert tot["output_tokens"] == sum(r["output_tokens"] for r in want_rows)
    assert tot["total_tokens"] == tot["input_tokens"] + tot["output_tokens"]
    assert tot["cost"] == pytest.approx(sum(r["cost"] for r in want_rows), rel=1e-9, abs=1e-6)
    assert all(type(r[k]) is int for r in got["rows"] for k in ("calls", "input_tokens", "output_tokens"))


@pytest.mark.parametrize("dimension", DIMENSIONS)
async def test_statistics_per_dimension_and_range_equal_the_raw_events(
    world: World, sessions: Sessions, dimension: str
) -> None:
    async with sessions() as s:
        for tid, tz in world.tenants.items():
            tenant = await s.get(t.Tenant, tid)
            assert tenant is not None and tenant.timezone == tz
            for range_, days in (("last_week", 7), ("last_month", 30)):
                got, today = await stats_today(s, Actor.system(tid), tenant, dimension=dimension, range_=range_)
                first = today - timedelta(days=days - 1)
                want = stats_rows(world, tid, dimension, first, today)
                check(got, want, first, today)
                assert got["timezone"] == tz and not got["scoped_to_self"]
                assert len({r["date"] for r in want}) >= days - 1  # every day had traffic (bar a new one)
            # custom: the previous local month (a month boundary), and the whole workload span
            prev_first, prev_last = month_of(local_today(tz), back=1)
            got = await usage_stats(s, Actor.system(tid), tenant, dimension=dimension, range_="custom",
                                    start=prev_first, end=prev_last)  # fmt: skip
            check(got, stats_rows(world, tid, dimension, prev_first, prev_last), prev_first, prev_last)
            span_first = local_today(tz) - timedelta(days=SPAN_DAYS + 1)
            span_last = local_today(tz) + timedelta(days=1)
            got = await usage_stats(s, Actor.system(tid), tenant, dimension=dimension, range_="custom",
                                    start=span_first, end=span_last)  # fmt: skip
            want = stats_rows(world, tid, dimension, span_first, span_last)
            check(got, want, span_first, span_last)
            assert got["totals"]["calls"] == sum(1 for e in world.events if e.tenant_id == tid)
            # the CSV of a statistics view has the same rows
            parsed = list(csv.DictReader(io.StringIO(stats_csv(got))))
            assert list(parsed[0]) == STAT_COLUMNS and len(parsed) == len(want)
            for p, w in zip(parsed, want, strict=True):
                assert (p["name"], p["date"], int(p["calls"]), int(p["total_tokens"])) == (
                    w["name"], w["date"], w["calls"], w["total_tokens"])  # fmt: skip
                assert float(p["cost"]) == pytest.approx(w["cost"], abs=1e-6)


async def test_daily_statistics_follow_each_tenants_local_midnight(world: World, sessions: Sessions) -> None:
    """Events a second apart around a local midnight are on two local dates; the UTC date would differ."""
    async with sessions() as s:
        for tid, tz in world.tenants.items():
            tenant = await s.get(t.Tenant, tid)
            today = local_today(tz)
            midnight = datetime.combine(today - timedelta(days=2), datetime.min.time(), ZoneInfo(tz)).timestamp()
            before = [e for e in world.events if e.tenant_id == tid and midnight - 1 <= e.ts < midnight]
            after = [e for e in world.events if e.tenant_id == tid and midnight <= e.ts < midnight + 1]
            assert before and after
            got = await usage_stats(s, Actor.system(tid), tenant, dimension="tenant", range_="custom",
                                    start=today - timedelta(days=3), end=today - timedelta(days=2))  # fmt: skip
            by_day = {r["date"]: r["calls"] for r in got["rows"]}
            d3, d2 = (today - timedelta(days=3)).isoformat(), (today - timedelta(days=2)).isoformat()
            assert by_day[d3] == sum(1 for e in world.events if e.tenant_id == tid and local_day(e.ts, tz) == d3)
            assert by_day[d2] == sum(1 for e in world.events if e.tenant_id == tid and local_day(e.ts, tz) == d2)
            assert local_day(before[0].ts, tz) == d3 and local_day(after[0].ts, tz) == d2
            # UTC dates would split these events elsewhere: before the midnight (UTC-5) or after it (UTC+8)
            assert local_day(before[0].ts, "UTC") != d3 or local_day(after[0].ts, "UTC") != d2


async def test_regular_users_see_only_their_own_numbers_on_endpoints_they_may_monitor(
    world: World, sessions: Sessions
) -> None:
    async with sessions() as s:
        for tid in world.tenants:
            tenant = await s.get(t.Tenant, tid)
            for uid, (utid, username) in world.users.items():
                if utid != tid:
                    continue
                actor = await actor_for(s, await s.get(t.User, uid))
                is_admin = uid == world.admins[tid]
                granted = world.grants.get(uid, {})

                def mine(e: UsageEvent, uid: int = uid, granted: dict[int, str] = granted) -> bool:
                    return e.user_id == uid and e.endpoint_id in granted

                for dimension in DIMENSIONS:
                    got, today = await stats_today(s, actor, tenant, dimension=dimension, range_="last_month")
                    first = today - timedelta(days=29)
                    want = stats_rows(world, tid, dimension, first, today, keep=(lambda e: True) if is_admin else mine)
                    check(got, want, first, today)
                    assert got["scoped_to_self"] is not is_admin
                    if not is_admin:
                        assert {r["id"] for r in got["rows"]} <= (
                            set(granted) if dimension == "endpoint" else {uid} if dimension == "user"
                            else {k for k, (_, o, _) in world.keys.items() if o == uid} | {0}
                            if dimension == "api_key" else {tid}
                        )  # fmt: skip
                if not is_admin:  # the scoping has something to hide: others on her endpoints, her elsewhere
                    assert any(e.user_id != uid and e.endpoint_id in granted for e in world.events) or not granted
                    assert any(e.user_id == uid and e.endpoint_id not in granted for e in world.events)
                if username.startswith("carol"):
                    assert got["rows"] == [] and got["totals"]["calls"] == 0  # no grant: no numbers at all
                if username.startswith("alice"):
                    # alice holds a viewer grant on "vision": her own calls there count, nobody else's
                    assert any(r["name"].startswith("vision") for r in
                               (await usage_stats(s, actor, tenant, dimension="endpoint", range_="last_month"))["rows"])


async def test_statistics_reject_bad_parameters(world: World, sessions: Sessions) -> None:
    async with sessions() as s:
        tenant = await s.get(t.Tenant, next(iter(world.tenants)))
        system = Actor.system(tenant.id)
        for kw in (
            {"dimension": "model"},
            {"dimension": "user", "range_": "last_year"},
            {"dimension": "user", "range_": "custom"},
            {"dimension": "user", "range_": "custom", "start": date(2024, 3, 2), "end": date(2024, 3, 1)},
            {"dimension": "user", "range_": "custom", "start": date(2023, 1, 1), "end": date(2024, 3, 1)},
        ):
            with pytest.raises(BadRequest):
                await usage_stats(s, system, tenant, **kw)


async def _export(session: AsyncSession, tenant: t.Tenant, month: str) -> list[dict[str, str]]:
    text = "".join([chunk async for chunk in export_month(session, tenant, month)])
    return list(csv.DictReader(io.StringIO(text, newline="")))


async def test_monthly_export_parses_and_its_totals_equal_the_statistics(world: World, sessions: Sessions) -> None:
    async with sessions() as s:
        for tid, tz in world.tenants.items():
            tenant = await s.get(t.Tenant, tid)
            names = {
                "endpoint": {i: n for i, (_, n) in world.endpoints.items()},
                "user": {i: n for i, (_, n) in world.users.items()},
                "key": {i: n for i, (_, _, n) in world.keys.items()},
            }
            for back in (0, 1):
                first, last = month_of(local_today(tz), back)
                rows = await _export(s, tenant, f"{first:%Y-%m}")
                events = {e.request_id: e for e in in_local_month(world, tid, first, last)}
                assert events, "the workload covers this month"
                assert len(rows) == len(events) and {r["request_id"] for r in rows} == set(events)
                stamps = [datetime.fromisoformat(r["timestamp"]) for r in rows]
                assert stamps == sorted(stamps)
                # the month is the tenant's local month: its first and last instants are inside, no more
                lo, hi = (datetime.combine(d, datetime.min.time(), ZoneInfo(tz))
                          for d in (first, last + timedelta(days=1)))  # fmt: skip
                assert all(lo <= ts < hi for ts in stamps)
                assert any(e.ts - lo.timestamp() < 2 for e in events.values())  # the boundary events are in it
                for r in rows:
                    e = events[r["request_id"]]
                    assert datetime.fromisoformat(r["timestamp"]).timestamp() == pytest.approx(e.ts, abs=1e-5)
                    assert (r["endpoint"], r["user"], r["api_key"], r["channel"], r["route"], r["stream"],
                            r["status_code"], r["error_type"], r["input_tokens"], r["output_tokens"],
                            r["total_tokens"]) == (
                        names["endpoint"].get(e.endpoint_id, ""), names["user"][e.user_id],
                        names["key"].get(e.api_key_id, ""), e.channel, e.route, str(int(e.is_stream)),
                        str(e.status_code), e.error_type or "", str(e.input_tokens), str(e.output_tokens),
                        str(e.input_tokens + e.output_tokens))  # fmt: skip
                    assert (r["ttft_ms"] == "") == (e.ttft_ms is None)
                    assert float(r["cost"]) == pytest.approx(e.cost, abs=1e-8)
                # totals of the CSV == the statistics of that month (from the daily rollups)
                stats = await usage_stats(s, Actor.system(tid), tenant, dimension="endpoint", range_="custom",
                                          start=first, end=last)  # fmt: skip
                tot = stats["totals"]
                assert tot["calls"] == len(rows)
                assert tot["input_tokens"] == sum(int(r["input_tokens"]) for r in rows)
                assert tot["output_tokens"] == sum(int(r["output_tokens"]) for r in rows)
                assert tot["total_tokens"] == sum(int(r["total_tokens"]) for r in rows)
                assert tot["cost"] == pytest.approx(sum(float(r["cost"]) for r in rows), abs=1e-6)


async def test_only_the_last_twelve_months_can_be_exported(world: World, sessions: Sessions) -> None:
    async with sessions() as s:
        tenant = await s.get(t.Tenant, next(iter(world.tenants)))
        today = local_today(tenant.timezone)
        oldest, _ = month_of(today, 11)
        assert await _export(s, tenant, f"{oldest:%Y-%m}") == []  # allowed, and empty
        lo, hi = month_bounds(tenant, f"{oldest:%Y-%m}")
        assert hi > lo and lo.tzinfo is not None
        for refused in (month_of(today, 12)[0], month_of(today, -1)[0]):
            with pytest.raises(BadRequest):
                month_bounds(tenant, f"{refused:%Y-%m}")
            with pytest.raises(BadRequest):
                await _export(s, tenant, f"{refused:%Y-%m}")
        for malformed in ("2024-13", "2024", "abcd-ef"):
            with pytest.raises(BadRequest):
                month_bounds(tenant, malformed)
    assert datetime.now(UTC) > lo
