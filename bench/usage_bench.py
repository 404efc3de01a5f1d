"""Usage queries at scale: 1,000,000 usage events, then the two questions operators ask most.

    .venv/bin/python bench/usage_bench.py                  # SQLite and PostgreSQL, 1,000,000 events
    .venv/bin/python bench/usage_bench.py --events 200000  # smaller, quicker
    .venv/bin/python bench/usage_bench.py --skip-postgres

The events (60 days, 2 tenants in different time zones, 24 endpoints with a skewed load, 300 users,
600 keys, ~12% errors of every type, streams with a time to first token) are written through the
real writer (``UsageRecorder`` + ``UsageFlusher``: detail rows, minute and daily rollup upserts,
key last-use, all in one transaction per batch) in batches of 20,000, so the rollups are exactly
what a server would have built. Then, each the median of several runs on a warm database:

* metrics 60d: ``endpoint_metrics`` of the busiest endpoint over 60 days (daily buckets);
* stats month: ``usage_stats`` of a tenant over a custom calendar month, by endpoint and by user.

Budget (issue 5): each under 200 ms, on SQLite and on PostgreSQL (a database created on
127.0.0.1:5432 as user postgres, dropped afterwards). This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelgate.services.context import Actor  # noqa: E402
from modelgate.services.monitoring import endpoint_metrics  # noqa: E402
from modelgate.services.usage_stats import usage_stats  # noqa: E402
from modelgate.storage import tables as t  # noqa: E402
from modelgate.storage.engine import make_engine, make_sessionmaker  # noqa: E402
from modelgate.storage.migrate import upgrade  # noqa: E402
from modelgate.usage.events import UsageEvent  # noqa: E402
from modelgate.usage.flusher import UsageFlusher  # noqa: E402
from modelgate.usage.recorder import UsageRecorder  # noqa: E402

BUDGET_MS = 200.0
DAYS = 60
BATCH = 20_000
ZONES = (("bench-shanghai", "Asia/Shanghai"), ("bench-newyork", "America/New_York"))
ERRORS = (
    ("rate_limited", 429), ("quota_exceeded", 429), ("permission_denied", 403), ("bad_request", 400),
    ("upstream_4xx", 502), ("upstream_5xx", 502), ("upstream_timeout", 504), ("client_disconnected", 200),
)  # fmt: skip
console = Console(width=170)  # the table stays one line a row in a log file too


class Org:
    def __init__(self) -> None:
        self.tenants: dict[int, str] = {}
        self.endpoints: list[tuple[int, int]] = []  # (endpoint id, tenant id)
        self.users: dict[int, list[int]] = {}  # tenant -> user ids
        self.keys: dict[int, list[int]] = {}  # user -> key ids


async def create_org(url: str) -> Org:
    """Tenants, endpoints, users and keys as plain rows (the services would hash 300 passwords)."""
    org = Org()
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s, s.begin():
            for name, tz in ZONES:
                tenant = t.Tenant(name=name, timezone=tz)
                s.add(tenant)
                await s.flush()
                org.tenants[tenant.id] = tz
                for i in range(12):
                    ep = t.Endpoint(tenant_id=tenant.id, name=f"ep-{i:02d}", base_url="http://127.0.0.1:9/v1",
                                    model_version="m", price_input_per_m=1.0, price_output_per_m=4.0)  # fmt: skip
                    s.add(ep)
                    await s.flush()
                    org.endpoints.append((ep.id, tenant.id))
                for i in range(150):
                    user = t.User(tenant_id=tenant.id, username=f"user-{i:03d}")
                    s.add(user)
                    await s.flush()
                    org.users.setdefault(tenant.id, []).append(user.id)
                    for k in range(2):
                        key = t.ApiKey(tenant_id=tenant.id, public_id=secrets.token_hex(8), name=f"k{i}-{k}",
                                       owner_id=user.id, secret_digest=secrets.token_bytes(32))  # fmt: skip
                        s.add(key)
                        await s.flush()
                        org.keys.setdefault(user.id, []).append(key.id)
    finally:
        await engine.dispose()
    return org


def events(org: Org, n: int, now: float, seed: int = 5) -> Any:
    """n events over the last DAYS days, time-ordered in chunks like real traffic; endpoint load is skewed."""
    rnd = random.Random(seed)
    start = now - DAYS * 86400
    weights = [1.0 / (i + 1) for i in range(len(org.endpoints))]  # the first endpoint is the busiest
    chunk = 50_000
    seq = 0
    for c in range(0, n, chunk):
        size = min(chunk, n - c)
        lo = start + (now - 60 - start) * c / n
        hi = start + (now - 60 - start) * (c + size) / n
        eps = rnd.choices(org.endpoints, weights, k=size)
        for (eid, tid), ts in zip(eps, sorted(rnd.uniform(lo, hi) for _ in range(size)), strict=True):
            uid = rnd.choice(org.users[tid])
            err, status = (None, 200) if rnd.random() < 0.88 else rnd.choice(ERRORS)
            stream = rnd.random() < 0.4
            lat = rnd.lognormvariate(6.5, 1.1)
            tin = rnd.randint(10, 3000)
            tout = rnd.randint(0, 800) if err is None else 0
            seq += 1
            yield UsageEvent(
                ts=ts, request_id=f"b{seq:08d}", route="chat", status_code=status, tenant_id=tid, endpoint_id=eid,
                user_id=uid, api_key_id=rnd.choice(org.keys[uid]), is_stream=stream, error_type=err,
                input_tokens=tin, output_tokens=tout, latency_ms=lat,
                ttft_ms=lat * rnd.uniform(0.05, 0.5) if stream and err is None else None,
                upstream_status=200 if err is None else None, cost=(tin + 4 * tout) / 1e6,
            )  # fmt: skip


async def load(url: str, org: Org, n: int, now: float, spool: Path) -> float:
    engine = make_engine(url)
    started = time.perf_counter()
    try:
        recorder = UsageRecorder(spool, batch_size=BATCH, max_buffer=BATCH * 2)
        flusher = UsageFlusher(recorder, make_sessionmaker(engine), 60.0, tz_of=lambda tid: org.tenants.get(tid, "UTC"))
        written = 0
        for e in events(org, n, now):
            recorder.record(e)
            if len(recorder.buffer) >= BATCH:
                written += await flusher.flush_once()
                if written % 100_000 == 0:
                    rate = written / (time.perf_counter() - started)
                    console.print(f"  {written:>9,} events written  ({rate:,.0f}/s)", highlight=False)
        written += await flusher.flush_once()
        assert written == n, (written, n)
        # fresh planner statistics and (PostgreSQL) visibility map, as autovacuum gives a live database
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    finally:
        await engine.dispose()
    return time.perf_counter() - started


def _cpu_ticks(pid: int | None) -> int:
    """User + system CPU ticks of a local process (a PostgreSQL backend), 0 when unknown."""
    if pid is None:
        return 0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


async def timed(url: str, runs: int, fn: Callable[[Any], Awaitable[Any]]) -> tuple[float, float, Any]:
    """Median wall time over ``runs`` runs (after a warm-up run), and the mean CPU time a run costs.

    The CPU time is this process's (for SQLite: the whole query) plus, for PostgreSQL on this
    machine, the server backend's, measured in runs without parallel workers so that the backend
    does all of the work. On a busy machine the wall time mostly measures waiting for a core;
    the CPU time is what the query itself costs.
    """
    engine = make_engine(url)
    pg = engine.dialect.name == "postgresql"
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    try:
        sessions = make_sessionmaker(engine)
        async with sessions() as s:  # warm-up (and connection set-up)
            result = await fn(s)
        times = []
        for _ in range(runs):
            async with sessions() as s:
                t0 = time.perf_counter()
                result = await fn(s)
                times.append((time.perf_counter() - t0) * 1000)
        cpu = 0.0
        for _ in range(runs):
            async with sessions() as s:
                backend = None
                if pg:
                    await s.execute(text("SET max_parallel_workers_per_gather = 0"))
                    backend = (await s.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                c0, b0 = time.process_time(), _cpu_ticks(backend)
                await fn(s)
                cpu += (time.process_time() - c0) * 1000 + (_cpu_ticks(backend) - b0) * tick_ms
    finally:
        await engine.dispose()
    return statistics.median(times), cpu / runs, result


async def explain(url: str, sql: str, params: dict[str, Any]) -> str:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS) "
            rows = (await conn.execute(text(prefix + sql), params)).all()
    finally:
        await engine.dispose()
    return "\n".join("    " + " | ".join(str(c) for c in r) for r in rows)


def previous_month(today: date) -> tuple[date, date]:
    first_this = today.replace(day=1)
    last_prev = first_this - timedelta(days=1)
    return last_prev.replace(day=1), last_prev


async def bench(backend: str, url: str, n: int, runs: int, spool: Path, show_plans: bool) -> list[dict[str, Any]]:
    console.print(f"[bold]{backend}[/]: migrating, creating the organisation, writing {n:,} events ...")
    upgrade(url)
    org = await create_org(url)
    now = time.time()
    seconds = await load(url, org, n, now, spool)
    console.print(f"  wrote {n:,} events in {seconds:.0f} s ({n / seconds:,.0f}/s)", highlight=False)
    busiest, tenant_id = org.endpoints[0]
    end_s = int(now)
    start_s = end_s - DAYS * 86400

    async def metrics(s: Any) -> Any:
        return await endpoint_metrics(s, busiest, start_s, end_s)

    tz = org.tenants[tenant_id]
    first, last = previous_month(datetime.now(ZoneInfo(tz)).date())

    def stats(dimension: str) -> Callable[[Any], Awaitable[Any]]:
        async def run(s: Any) -> Any:
            tenant = await s.get(t.Tenant, tenant_id)
            return await usage_stats(s, Actor.system(tenant_id), tenant, dimension=dimension, range_="custom",
                                     start=first, end=last)  # fmt: skip

        return run

    counts = await table_counts(url)
    m_ms, m_cpu, m = await timed(url, runs, metrics)
    rows = [{"backend": backend, "query": "metrics 60d, busiest endpoint", "ms": m_ms, "cpu": m_cpu,
             "detail": f"{m['overview']['requests']:,} requests, {len(m['series'])} daily buckets; "
                       f"{counts['usage_hour']:,} hour, {counts['usage_minute']:,} minute rows in all"}]  # fmt: skip
    for dimension in ("endpoint", "user"):
        s_ms, s_cpu, st = await timed(url, runs, stats(dimension))
        rows.append({"backend": backend, "query": f"stats {first:%Y-%m} by {dimension}", "ms": s_ms, "cpu": s_cpu,
                     "detail": f"{st['totals']['calls']:,} calls, {len(st['rows']):,} rows; "
                               f"{counts['usage_daily']:,} daily rows in all"})  # fmt: skip
    if show_plans or any(r["ms"] > BUDGET_MS for r in rows):
        m_sql = ("SELECT hour - hour % 86400 AS bucket, sum(requests) FROM usage_hour "
                 "WHERE endpoint_id = :e AND hour >= :a AND hour < :b GROUP BY bucket")  # fmt: skip
        s_sql = ("SELECT endpoint_id, day, sum(requests), sum(input_tokens), sum(output_tokens), sum(cost) "
                 "FROM usage_daily WHERE tenant_id = :t AND day >= :f AND day <= :l "
                 "GROUP BY endpoint_id, day ORDER BY endpoint_id, day")  # fmt: skip
        plan = await explain(url, m_sql, {"e": busiest, "a": start_s, "b": end_s})
        console.print("  plan of the metrics query:\n" + plan)
        console.print(
            "  plan of the statistics query:\n"
            + await explain(url, s_sql, {"t": tenant_id, "f": first.isoformat(), "l": last.isoformat()})
        )
    return rows


async def table_counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return {name: int((await conn.execute(text(f"SELECT count(*) FROM {name}"))).scalar_one())
                    for name in ("usage_events", "usage_minute", "usage_hour", "usage_daily")}  # fmt: skip
    finally:
        await engine.dispose()


async def pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=9, help="timed runs per query (the median is reported)")
    ap.add_argument("--skip-sqlite", action="store_true")
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--plans", action="store_true", help="print the query plans even within budget")
    args = ap.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="usage-bench-") as tmp:
        if not args.skip_sqlite:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'usage.db'}"
            results += asyncio.run(bench("SQLite", url, args.events, args.runs, Path(tmp) / "spool", args.plans))
        if not args.skip_postgres:
            name = "mg_usage_bench_" + secrets.token_hex(4)
            asyncio.run(pg_admin(f"CREATE DATABASE {name}"))
            try:
                url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
                results += asyncio.run(bench("PostgreSQL", url, args.events, args.runs, Path(tmp) / "spool-pg",
                                             args.plans))  # fmt: skip
            finally:
                asyncio.run(pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    table = Table(title=f"Usage queries over {args.events:,} events (median of {args.runs} runs)")
    for col in ("backend", "query", "median ms", "cpu ms", "budget ms", "ok", "what it read"):
        table.add_column(col, justify="right" if col.endswith(" ms") else "left")
    ok = True
    for r in results:
        within = r["ms"] < BUDGET_MS
        ok &= within
        table.add_row(r["backend"], r["query"], f"{r['ms']:.1f}", f"{r['cpu']:.1f}", f"{BUDGET_MS:.0f}",
                      "[green]yes[/]" if within else "[red]NO[/]", r["detail"])  # fmt: skip
    console.print(table)
    load = os.getloadavg()[0]
    console.print(
        f"load average {load:.1f} on {os.cpu_count()} CPUs. median ms: wall-clock time of a call; cpu ms: the "
        "CPU time a call costs (this process, plus the PostgreSQL backend's, measured without parallel workers)",
        highlight=False,
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
