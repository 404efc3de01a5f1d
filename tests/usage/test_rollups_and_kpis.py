"""Rollups and monitoring KPIs equal a direct computation over the raw events.

The generated workload (tests/usage/workload.py) went through the real UsageRecorder and
UsageFlusher in three flushes of several batches, on SQLite and on PostgreSQL. Here every
stored detail, every minute and daily rollup row, every monitoring bucket at minute, hour and
day granularity, and the Prometheus counters the flusher feeds are checked against the
reference computed from the raw events in the test.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelgate.errors import BadRequest
from modelgate.services.monitoring import endpoint_metrics, parse_range
from modelgate.storage import tables as t
from tests.usage.workload import (
    LABELS,
    World,
    _approx,
    daily_rollups,
    expected_metrics,
    fetch_all,
    floor_to,
    label,
    local_day,
    minute_rollups,
)

Sessions = async_sessionmaker[AsyncSession]
FLOAT_COLUMNS = {"cost", "latency_sum_ms", "ttft_sum_ms"}


def _batch_of(world: World) -> dict[str, int]:
    return {e.request_id: i for i, batch in enumerate(world.batches) for e in batch}


async def test_every_event_is_stored_once_with_its_ids_and_numbers(world: World, sessions: Sessions) -> None:
    async with sessions() as s:
        rows = {r["request_id"]: r for r in await fetch_all(s, t.UsageEvent)}
        keys = {k["id"]: k["last_used_at"] for k in await fetch_all(s, t.ApiKey)}
    assert len(rows) == len(world.events)
    for e in world.events:
        r = rows[e.request_id]
        assert (r["tenant_id"], r["endpoint_id"], r["user_id"], r["api_key_id"], r["channel"], r["route"],
                r["is_stream"], r["status_code"], r["error_type"], r["input_tokens"], r["output_tokens"],
                r["cached_tokens"], r["reasoning_tokens"], r["is_estimated"], r["upstream_status"]) == (
                e.tenant_id, e.endpoint_id, e.user_id, e.api_key_id, e.channel, e.route, e.is_stream,
                e.status_code, e.error_type, e.input_tokens, e.output_tokens, e.cached_tokens,
                e.reasoning_tokens, e.is_estimated, e.upstream_status)  # fmt: skip
        assert r["ts"].timestamp() == pytest.approx(e.ts, abs=1e-5)
        assert r["latency_ms"] == pytest.approx(e.latency_ms) and r["cost"] == pytest.approx(e.cost)
        assert r["ttft_ms"] == _approx(e.ttft_ms)
    # one UPDATE per key and batch keeps the key's last use: the latest event of the key
    last: dict[int, float] = {}
    for e in world.events:
        if e.api_key_id is not None:
            last[e.api_key_id] = max(last.get(e.api_key_id, 0.0), e.ts)
    assert last and {k: keys[k].timestamp() for k in last} == pytest.approx(last, abs=1e-5)


@pytest.mark.parametrize("table", [t.UsageMinute, t.UsageHour], ids=["minute", "hour"])
async def test_minute_and_hour_rollups_equal_the_raw_events_and_add_up_across_batches(
    world: World, sessions: Sessions, table: Any
) -> None:
    period = "minute" if table is t.UsageMinute else "hour"
    step = 60 if period == "minute" else 3600
    want = minute_rollups(world, step)
    async with sessions() as s:
        got = {(r["endpoint_id"], r[period], r["tenant_id"]): r for r in await fetch_all(s, table)}
    assert set(got) == set(want)
    columns = [c.name for c in table.__table__.columns if c.name not in ("endpoint_id", period, "tenant_id")]
    assert {f"err_{x}" for x in LABELS} <= set(columns)
    for key, w in want.items():
        g = got[key]
        for c in columns:
            if c in FLOAT_COLUMNS:
                assert g[c] == pytest.approx(w[c], rel=1e-9, abs=1e-9), (key, c)
            else:
                assert g[c] == w[c], (key, c, g[c], w[c])
    # the workload really made the upserts add: many (endpoint, minute) keys got events from several batches
    batch = _batch_of(world)
    spread: dict[tuple[int, int], set[int]] = defaultdict(set)
    for e in world.events:
        spread[(e.endpoint_id or 0, floor_to(e.ts, step))].add(batch[e.request_id])
    assert sum(len(b) > 1 for b in spread.values()) >= 50
    # every error label, every latency bucket (overflow included) and streams' ttft are exercised
    assert all(sum(r[f"err_{x}"] for r in want.values()) > 0 for x in LABELS)
    assert all(sum(r[f"lat_b{i}"] for r in want.values()) > 0 for i in range(len(t.LATENCY_BUCKETS_MS) + 1))
    assert sum(r["ttft_count"] for r in want.values()) > 100


async def test_unresolved_requests_keep_their_tenant_in_minute_rollups(world: World, sessions: Sessions) -> None:
    """UsageMinute promises: requests that never resolved an endpoint roll up under endpoint 0 *of their tenant*."""
    want: dict[tuple[int, int], set[int]] = defaultdict(set)
    for e in world.events:
        if e.endpoint_id is None:
            want[floor_to(e.ts, 60)].add(e.tenant_id or 0)
    assert any(len(ts) > 1 for ts in want.values())  # minutes where several tenants had unresolved requests
    async with sessions() as s:
        got: dict[int, set[int]] = defaultdict(set)
        for r in await fetch_all(s, t.UsageMinute):
            if r["endpoint_id"] == 0:
                got[r["minute"]].add(r["tenant_id"])
    assert got == want


async def test_daily_rollups_are_per_tenant_local_day_and_equal_the_raw_events(
    world: World, sessions: Sessions
) -> None:
    want = daily_rollups(world)
    async with sessions() as s:
        got = {(r["day"], r["tenant_id"], r["endpoint_id"], r["user_id"], r["api_key_id"]): r
               for r in await fetch_all(s, t.UsageDaily)}  # fmt: skip
    assert set(got) == set(want)
    for key, w in want.items():
        g = got[key]
        assert (g["requests"], g["successes"], g["input_tokens"], g["output_tokens"]) == (
            w["requests"], w["successes"], w["input_tokens"], w["output_tokens"]), key  # fmt: skip
        assert g["cost"] == pytest.approx(w["cost"], rel=1e-9, abs=1e-9)
    # local midnight matters: events one second apart around a local midnight land on two local days,
    # and a UTC date would put some of them elsewhere
    differs = [e for e in world.events
               if e.tenant_id and local_day(e.ts, world.tz(e.tenant_id)) != local_day(e.ts, "UTC")]  # fmt: skip
    assert len(differs) > 100


def _assert_kpis(got: dict[str, Any], want: dict[str, Any], where: str) -> None:
    for k, v in want.items():
        if k in ("latency_avg_ms", "ttft_avg_ms", "cost", "success_rate", "error_rate"):
            assert got[k] == _approx(v), (where, k, got[k], v)
        else:
            assert got[k] == v, (where, k, got[k], v)
    # plain JSON numbers on every backend (PostgreSQL's SUM(bigint) is a Decimal, which JSON-encodes as a string)
    for k in ("requests", "successes", "errors", "input_tokens", "output_tokens", "total_tokens"):
        assert type(got[k]) is int, (where, k, type(got[k]))
    assert all(type(n) is int for n in got["errors_by_type"].values()), where
    assert isinstance(got["cost"], float | int) and not isinstance(got["cost"], bool)


def _endpoints_with_events(world: World) -> list[int]:
    return sorted({e.endpoint_id or 0 for e in world.events})


# (range in seconds, granularity asked for or None for automatic, granularity expected, end aligned?)
CASES = {
    "1d-auto-minute": (86400, None, "minute", False),
    "3h-minute-aligned": (3 * 3600, "minute", "minute", True),
    "1d+1s-auto-hour": (86400 + 1, None, "hour", False),
    "30d-auto-hour": (30 * 86400, None, "hour", False),
    "30d+1s-auto-day": (30 * 86400 + 1, None, "day", True),
    "60d-auto-day": (60 * 86400, None, "day", False),
    "7d-day": (7 * 86400, "day", "day", False),
    "6h-hour": (6 * 3600, "hour", "hour", False),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_endpoint_metrics_equal_the_raw_events(world: World, sessions: Sessions, case: str) -> None:
    span, asked, expect_gran, aligned = CASES[case]
    end_s = int(world.now) - int(world.now) % 60 if aligned else int(world.now)
    start_s = end_s - span
    step = {"minute": 60, "hour": 3600, "day": 86400}[expect_gran]
    endpoints = _endpoints_with_events(world)
    assert 0 in endpoints and len(endpoints) == 7
    async with sessions() as s:
        for eid in endpoints:
            got = await endpoint_metrics(s, eid, start_s, end_s, asked)
            want = expected_metrics(world, eid, start_s, end_s, step)
            assert got["granularity"] == expect_gran
            assert [b["t"] for b in got["series"]] == [b["t"] for b in want["series"]]
            assert len(got["series"]) == -(-(end_s - start_s // step * step) // step)
            for g, w in zip(got["series"], want["series"], strict=True):
                _assert_kpis(g, w, f"{case} endpoint {eid} bucket {w['t']}")
            _assert_kpis(got["overview"], want["overview"], f"{case} endpoint {eid} overview")
            assert want["overview"]["requests"] > 0
            # the overview is the sum of the series, and empty buckets are zeros, not gaps
            assert got["overview"]["requests"] == sum(b["requests"] for b in got["series"])
            for b in got["series"]:
                if b["requests"] == 0:
                    assert b["errors"] == b["successes"] == b["total_tokens"] == b["cost"] == 0
                    assert set(b["errors_by_type"].values()) == {0}
                    assert b["success_rate"] is b["latency_p50_ms"] is b["ttft_avg_ms"] is None
    if expect_gran == "minute":
        assert any(b["requests"] == 0 for b in got["series"])  # gaps exist in this workload, and are zeros


async def test_one_minute_burst_has_exact_percentiles(world: World, sessions: Sessions) -> None:
    """The 120-request burst shares one minute: its bucket's percentiles come from 120+ raw values."""
    burst_minute = floor_to(world.now - 7200 - world.now % 60 + 5, 60)
    eid = Counter(e.endpoint_id or 0 for e in world.events if floor_to(e.ts, 60) == burst_minute).most_common(1)[0][0]
    async with sessions() as s:
        got = await endpoint_metrics(s, eid, burst_minute, burst_minute + 60)
    want = expected_metrics(world, eid, burst_minute, burst_minute + 60, 60)
    assert got["granularity"] == "minute" and len(got["series"]) == 1
    assert want["overview"]["requests"] >= 15
    _assert_kpis(got["overview"], want["overview"], "burst")
    assert got["overview"]["latency_p50_ms"] <= got["overview"]["latency_p95_ms"] <= got["overview"]["latency_p99_ms"]


async def test_metric_ranges_and_granularities_are_validated(world: World, sessions: Sessions) -> None:
    now = world.now
    assert parse_range("15m", None, None, now) == (int(now) - 900, int(now))
    assert parse_range("60d", None, None, now) == (int(now) - 60 * 86400, int(now))
    for bad in ("61d", "30s", "0m", "7w", "d", "-5m"):
        with pytest.raises(BadRequest):
            parse_range(bad, None, None, now)
    async with sessions() as s:
        with pytest.raises(BadRequest):
            await endpoint_metrics(s, 1, int(now) - 86400, int(now), "week")
        with pytest.raises(BadRequest):  # 86,400 points: refused, not computed
            await endpoint_metrics(s, 1, int(now) - 60 * 86400, int(now), "minute")


def test_prometheus_counters_fed_by_the_flusher_equal_the_raw_events(world: World) -> None:
    assert world.metrics is not None
    reg = world.metrics.registry

    def val(name: str, **labels: str) -> float:
        return reg.get_sample_value(name, labels) or 0.0

    requests = Counter((e.route, e.channel, str(e.status_code)) for e in world.events)
    for (route, channel, status), n in requests.items():
        assert val("modelgate_requests_total", route=route, channel=channel, status=status) == n
    errors = Counter(label(e) for e in world.events if e.error_type is not None)
    assert set(errors) == set(LABELS)
    for lab, n in errors.items():
        assert val("modelgate_errors_total", type=lab) == n
    denied = errors["rate_limited"] + errors["quota_exceeded"]
    assert val("modelgate_limiter_decisions_total", decision="denied") == denied
    assert val("modelgate_tokens_total", direction="input") == sum(e.input_tokens for e in world.events)
    assert val("modelgate_tokens_total", direction="output") == sum(e.output_tokens for e in world.events)
    for code, n in Counter(e.upstream_status for e in world.events if e.upstream_status is not None).items():
        assert val("modelgate_upstream_responses_total", code=str(code)) == n
    for route, n in Counter(e.route for e in world.events).items():
        assert val("modelgate_request_duration_seconds_count", route=route) == n
        assert val("modelgate_request_duration_seconds_sum", route=route) == pytest.approx(
            sum(e.latency_ms for e in world.events if e.route == route) / 1000)
        below_1s = sum(1 for e in world.events if e.route == route and e.latency_ms <= 1000)
        assert val("modelgate_request_duration_seconds_bucket", route=route, le="1.0") == below_1s
    assert val("modelgate_time_to_first_token_seconds_count") == sum(e.ttft_ms is not None for e in world.events)
