"""What the usage flusher costs per event: the work a gateway does for every call after replying.

Why: the flusher shares the event loop (and the core) with the data plane, so its CPU per event is
taken from request throughput and its longest stretch without an await shows up in p99. This
writes batches of realistic events (many keys, users, a few endpoints) through the real
``UsageFlusher`` into a migrated database and prints, per event, the CPU time of the event-loop
thread, of the whole process (including the database driver's thread) and the wall time.

    .venv/bin/python bench/flush_bench.py                      # SQLite in a temporary directory
    .venv/bin/python bench/flush_bench.py --postgres postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from usage_bench import create_org, events, pg_admin  # noqa: E402

from modelgate.observability.metrics import Metrics  # noqa: E402
from modelgate.storage.engine import make_engine, make_sessionmaker  # noqa: E402
from modelgate.storage.migrate import upgrade  # noqa: E402
from modelgate.usage.events import UsageEvent  # noqa: E402
from modelgate.usage.flusher import UsageFlusher  # noqa: E402
from modelgate.usage.recorder import UsageRecorder  # noqa: E402

console = Console(width=140)


def one_caller(stream: Iterator[UsageEvent]) -> Iterator[UsageEvent]:
    """Every event from the same key, user and endpoint, arriving now at 5,000 a second (bench/run.py's
    traffic): rollups stay tiny, so the cost is the detail rows'."""
    now = time.time()
    for i, e in enumerate(stream):
        e.tenant_id, e.endpoint_id, e.user_id, e.api_key_id = 1, 1, 1, 1
        e.ts = now + i / 5000
        yield e


async def measure(url: str, batch: int, batches: int, spool: Path, uniform: bool) -> dict[str, float]:
    org = await create_org(url)
    engine = make_engine(url)
    try:
        recorder = UsageRecorder(spool, batch_size=batch, max_buffer=batch * 4)
        flusher = UsageFlusher(recorder, make_sessionmaker(engine), 60.0,
                               tz_of=lambda tid: org.tenants.get(tid, "UTC"), metrics=Metrics())  # fmt: skip
        stream = events(org, batch * (batches + 2), time.time())
        if uniform:
            stream = one_caller(stream)
        for _ in range(2):  # warm-up: connections, statement caches
            for _ in range(batch):
                recorder.record(next(stream))
            await flusher.flush_once()
        loop_cpu = proc_cpu = wall = 0.0
        worst = 0.0
        for _ in range(batches):
            for _ in range(batch):
                recorder.record(next(stream))
            t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
            await flusher.flush_once()
            wall += time.perf_counter() - t0
            loop_cpu += time.thread_time() - c0
            proc_cpu += time.process_time() - p0
            worst = max(worst, time.perf_counter() - t0)
        n = batch * batches
        return {"loop_us": loop_cpu / n * 1e6, "proc_us": proc_cpu / n * 1e6, "wall_us": wall / n * 1e6,
                "worst_batch_ms": worst * 1e3}  # fmt: skip
    finally:
        await engine.dispose()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=500, help="events per flush (the server's default batch)")
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--one-caller", action="store_true",
                    help="all events from one key and endpoint, like bench/run.py (default: 1,800 keys)")
    ap.add_argument("--postgres", help="also PostgreSQL at this URL (a scratch database is created and dropped)")
    args = ap.parse_args()
    rows: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/flush.db"
        upgrade(url)
        rows.append(("sqlite", await measure(url, args.batch, args.batches, Path(tmp) / "spool", args.one_caller)))
        if args.postgres:
            await pg_admin("DROP DATABASE IF EXISTS mg_flush_bench")
            await pg_admin("CREATE DATABASE mg_flush_bench")
            try:
                pg = args.postgres.rsplit("/", 1)[0] + "/mg_flush_bench"
                upgrade(pg)
                rows.append(("postgresql", await measure(pg, args.batch, args.batches, Path(tmp) / "spool", args.one_caller)))
            finally:
                await pg_admin("DROP DATABASE IF EXISTS mg_flush_bench")
    table = Table(title=f"usage flusher cost per event ({args.batch}-event batches x {args.batches})")
    for col in ("database", "event-loop CPU µs", "process CPU µs", "wall µs", "slowest batch ms"):
        table.add_column(col, justify="right")
    for name, r in rows:
        table.add_row(name, f"{r['loop_us']:.1f}", f"{r['proc_us']:.1f}", f"{r['wall_us']:.1f}",
                      f"{r['worst_batch_ms']:.1f}")  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    asyncio.run(main())
