"""The usage writer's direct SQLite connection (modelgate/usage/sqlite_direct.py): it writes on the
event loop's thread, so it must never wait there for another writer's lock, must never lose a
batch, and must checkpoint the write-ahead log it no longer checkpoints itself.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelgate.storage.engine import make_engine, make_sessionmaker
from modelgate.storage.migrate import upgrade
from modelgate.usage.events import UsageEvent
from modelgate.usage.flusher import UsageFlusher
from modelgate.usage.recorder import UsageRecorder


def events(n: int, prefix: str) -> list[UsageEvent]:
    now = time.time()
    return [UsageEvent(ts=now + i / 1000, request_id=f"{prefix}-{i}", route="chat", status_code=200, tenant_id=1,
                       endpoint_id=1, user_id=1, api_key_id=None, input_tokens=3, output_tokens=4)
            for i in range(n)]  # fmt: skip


def stored(db: Path, prefix: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM usage_events WHERE request_id LIKE ?", (prefix + "-%",))
                   .fetchone()[0])  # fmt: skip


@dataclass
class Writer:
    db: Path
    recorder: UsageRecorder
    flusher: UsageFlusher


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[Writer]:
    db = tmp_path / "usage.db"
    url = f"sqlite+aiosqlite:///{db}"
    upgrade(url)
    engine = make_engine(url)
    recorder = UsageRecorder(tmp_path / "spool")
    flusher = UsageFlusher(recorder, make_sessionmaker(engine), 60.0)
    assert flusher.direct is not None, "an SQLite file is written directly"
    try:
        yield Writer(db, recorder, flusher)
    finally:
        await flusher.stop()
        await engine.dispose()


async def test_a_locked_database_neither_blocks_the_loop_nor_loses_the_batch(writer: Writer) -> None:
    db, recorder, flusher = writer.db, writer.recorder, writer.flusher
    for e in events(120, "first"):
        recorder.record(e)
    assert await flusher.flush_once() == 120  # the direct path, nothing in the way

    other = sqlite3.connect(db, isolation_level=None)  # another process's writer, holding the lock
    other.execute("BEGIN IMMEDIATE")
    for e in events(80, "locked"):
        recorder.record(e)
    ticks = 0
    longest = 0.0

    async def ticker() -> None:
        nonlocal ticks, longest
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            ticks, longest = ticks + 1, max(longest, now - last)
            last = now

    tick = asyncio.create_task(ticker())
    flush = asyncio.create_task(flusher.flush_once())
    await asyncio.sleep(0.3)
    assert not flush.done(), "the batch waits for the lock (on the async engine's thread)"
    other.execute("COMMIT")
    other.close()
    assert await asyncio.wait_for(flush, 30) == 80
    tick.cancel()
    assert ticks >= 30 and longest < 0.2, (ticks, longest)  # the loop kept running meanwhile
    assert stored(db, "first") == 120 and stored(db, "locked") == 80


async def test_the_direct_writer_checkpoints_the_write_ahead_log(writer: Writer) -> None:
    db, recorder, flusher = writer.db, writer.recorder, writer.flusher
    direct = flusher.direct
    assert direct is not None
    for e in events(3000, "wal"):
        recorder.record(e)
    assert await flusher.flush_once() == 3000
    before = db.stat().st_size  # the new pages are still in the log: the writer does not checkpoint
    assert db.with_name(db.name + "-wal").stat().st_size > 100_000
    await direct.checkpoint()
    assert db.stat().st_size > before + 100_000  # copied into the database file, off the loop
    assert stored(db, "wal") == 3000
