"""No usage event is lost: flushed on shutdown, spooled to disk while the database refuses
writes, replayed once it accepts them again (by the same process or the next one).

The spool tests drive the real recorder and flusher against real SQLite files; the shutdown
and replay-on-start tests use real gateway processes.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest

from modelgate.storage.engine import make_engine, make_sessionmaker
from modelgate.storage.migrate import upgrade
from modelgate.usage.events import UsageEvent
from modelgate.usage.flusher import UsageFlusher
from modelgate.usage.recorder import UsageRecorder
from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess

MESSAGES = [{"role": "user", "content": "count my tokens please"}]


def make_event(i: int, prefix: str = "dur") -> UsageEvent:
    return UsageEvent(
        ts=time.time(),
        request_id=f"{prefix}-{i:04d}",
        route="chat",
        status_code=200 if i % 5 else 502,
        tenant_id=1,
        endpoint_id=1 + i % 3,
        user_id=1,
        api_key_id=None,
        input_tokens=10 + i,
        output_tokens=i,
        error_type=None if i % 5 else "upstream_5xx",
        latency_ms=12.5,
        ttft_ms=3.0 if i % 2 else None,
        cost=0.25,
    )


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def stored(db: Path, prefix: str) -> dict[str, tuple[int, int, str | None, float | None]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT request_id, input_tokens, output_tokens, error_type, ttft_ms FROM usage_events "
            "WHERE request_id LIKE ?",
            (prefix + "-%",),
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def expected(events: list[UsageEvent]) -> dict[str, tuple[int, int, str | None, float | None]]:
    return {e.request_id: (e.input_tokens, e.output_tokens, e.error_type, e.ttft_ms) for e in events}


def spool_lines(spool: Path) -> list[dict[str, object]]:
    path = spool / "usage.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


# ------------------------------------------------------------ spool and replay, in process


async def test_unavailable_database_spools_to_disk_and_a_later_flusher_replays(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    events = [make_event(i) for i in range(25)]
    recorder = UsageRecorder(spool, batch_size=10)
    for e in events:
        recorder.record(e)

    # a database that cannot be opened (its directory does not exist)
    dead = make_engine(sqlite_url(tmp_path / "no-such-dir" / "modelgate.db"))
    flusher = UsageFlusher(recorder, make_sessionmaker(dead), interval=60)
    assert await flusher.flush_once() == 0
    assert len(spool_lines(spool)) == 10, "the refused batch went to the spool"
    await flusher.stop()  # shutdown with the database still down: everything else spools too
    await dead.dispose()
    assert not recorder.buffer
    assert sorted(line["request_id"] for line in spool_lines(spool)) == [e.request_id for e in events]

    # the next process, with a working database, replays the spool on its first flush
    db = tmp_path / "good.db"
    upgrade(sqlite_url(db))
    good = make_engine(sqlite_url(db))
    try:
        later = UsageRecorder(spool, batch_size=10)
        later.record(make_event(99))
        flusher = UsageFlusher(later, make_sessionmaker(good), interval=60)
        assert await flusher.flush_once() == 1
    finally:
        await good.dispose()
    assert stored(db, "dur") == expected([*events, make_event(99)])
    assert not (spool / "usage.jsonl").exists() and not list(spool.glob("*.replaying"))


async def test_database_coming_back_is_caught_up_by_the_running_flusher(tmp_path: Path) -> None:
    """One flusher, one database URL: writes fail until the schema exists, then everything lands."""
    db = tmp_path / "late.db"
    sqlite3.connect(db).close()  # the file exists; its tables do not (yet)
    engine = make_engine(sqlite_url(db))
    spool = tmp_path / "spool"
    recorder = UsageRecorder(spool, batch_size=500)
    flusher = UsageFlusher(recorder, make_sessionmaker(engine), interval=0.05)
    flusher.start()
    try:
        first = [make_event(i, "late") for i in range(30)]
        for e in first:
            recorder.record(e)
        await wait_until(lambda: len(spool_lines(spool)) == 30 and not recorder.buffer)
        upgrade(sqlite_url(db))  # the database is back
        second = [make_event(i, "late") for i in range(30, 40)]
        for e in second:
            recorder.record(e)
        await wait_until(lambda: len(stored(db, "late")) == 40)
    finally:
        await flusher.stop()
        await engine.dispose()
    assert stored(db, "late") == expected(first + second)
    assert not (spool / "usage.jsonl").exists()


async def test_replay_survives_a_crash_in_the_middle_of_a_replay(tmp_path: Path) -> None:
    """A process that died while replaying left ``usage.replaying`` behind: the next one replays it."""
    spool = tmp_path / "spool"
    events = [make_event(i, "crash") for i in range(7)]
    UsageRecorder(spool).spill(events)
    (spool / "usage.jsonl").rename(spool / "usage.replaying")
    UsageRecorder(spool).spill([make_event(7, "crash")])  # and newer events spooled after it
    db = tmp_path / "db.db"
    upgrade(sqlite_url(db))
    engine = make_engine(sqlite_url(db))
    try:
        await UsageFlusher(UsageRecorder(spool), make_sessionmaker(engine), interval=60).flush_once()
    finally:
        await engine.dispose()
    assert stored(db, "crash") == expected([*events, make_event(7, "crash")])
    assert not list(spool.iterdir())


async def test_a_damaged_spool_line_does_not_block_the_others(tmp_path: Path) -> None:
    """A torn last line (power loss mid-append) is set aside for the operator, not replayed
    forever and not allowed to hold back the intact events."""
    spool = tmp_path / "spool"
    events = [make_event(i, "torn") for i in range(5)]
    UsageRecorder(spool).spill(events)
    with (spool / "usage.jsonl").open("ab") as fh:
        fh.write(b'{"ts": 1.0, "request_id": "torn-99", "rou')
    db = tmp_path / "db.db"
    upgrade(sqlite_url(db))
    engine = make_engine(sqlite_url(db))
    try:
        await UsageFlusher(UsageRecorder(spool), make_sessionmaker(engine), interval=60).flush_once()
    finally:
        await engine.dispose()
    assert stored(db, "torn") == expected(events)
    assert not (spool / "usage.jsonl").exists()
    rejected = list(spool.glob("*rejected*"))
    assert len(rejected) == 1 and b"torn-99" in rejected[0].read_bytes()


async def test_a_full_buffer_spills_instead_of_growing_or_dropping(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    recorder = UsageRecorder(spool, batch_size=1000, max_buffer=20)
    events = [make_event(i, "full") for i in range(50)]
    for e in events:
        recorder.record(e)
    assert len(recorder.buffer) <= 20
    in_memory = [e.request_id for e in recorder.buffer]
    on_disk = [str(line["request_id"]) for line in spool_lines(spool)]
    assert sorted(in_memory + on_disk) == [e.request_id for e in events], "nothing dropped, nothing twice"
    db = tmp_path / "db.db"
    upgrade(sqlite_url(db))
    engine = make_engine(sqlite_url(db))
    try:
        await UsageFlusher(recorder, make_sessionmaker(engine), interval=60).flush_once()
    finally:
        await engine.dispose()
    assert stored(db, "full") == expected(events)


# ---------------------------------------------------------------- real gateway processes


def test_sigterm_flushes_every_buffered_event(tmp_path: Path, upstream: FakeUpstream) -> None:
    # a flush interval far beyond the test: only the shutdown drain can write these events
    gw = GatewayProcess(tmp_path / "gw", extra_env={"MODELGATE_USAGE_FLUSH_INTERVAL": "300"}).start()
    try:
        gw.create_endpoint("dur-llm", upstream.base_url)
        key = gw.create_key("admin")["secret"]

        def call(i: int) -> str:
            stream = i % 3 == 0
            resp = httpx.post(
                gw.base_url + "/v1/chat/completions",
                timeout=30,
                json={"model": "dur-llm", "messages": MESSAGES, "stream": stream},
                headers={"authorization": f"Bearer {key}"},
            )
            assert resp.status_code == 200
            return resp.headers["x-request-id"]

        with ThreadPoolExecutor(6) as pool:
            rids = list(pool.map(call, range(40)))
        assert len(set(rids)) == 40
        assert gw.query("SELECT COUNT(*) FROM usage_events")[0][0] == 0, "nothing flushed before shutdown"
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGTERM)
        assert gw.proc.wait(20) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after its shutdown
    finally:
        gw.stop()
    rows = dict(gw.query("SELECT request_id, output_tokens FROM usage_events"))
    assert set(rows) == set(rids)
    assert set(rows.values()) == {5}  # "echo: count my tokens please"
    assert "Traceback" not in gw.log_text()


def test_a_gateway_replays_the_spool_it_finds_on_start(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path / "gw")
    events = [make_event(i, "left") for i in range(12)]
    UsageRecorder(gw.data_dir / "spool").spill(events)  # left behind by a previous process
    gw.start()
    try:
        deadline = time.monotonic() + 30
        while len(stored(gw.data_dir / "modelgate.db", "left")) < len(events) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stored(gw.data_dir / "modelgate.db", "left") == expected(events)
        assert not (gw.data_dir / "spool" / "usage.jsonl").exists()
    finally:
        gw.stop()


@pytest.fixture(autouse=True)
def _quiet_flusher_warnings(caplog: pytest.LogCaptureFixture) -> None:
    """The flusher logs each refused write at WARNING: expected here, kept out of the output."""
    caplog.set_level("ERROR", logger="modelgate.usage")
