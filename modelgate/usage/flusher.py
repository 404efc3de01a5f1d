"""Batched writer of usage events: the only writer of ``usage_events``.

Runs in the server's lifespan: flushes when the buffer reaches a batch or every
``usage_flush_interval`` seconds, replays the spool file once the database answers again, and
drains everything on shutdown. A batch the database refuses goes to the spool file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Table, bindparam, insert, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from modelgate.observability.metrics import Metrics
from modelgate.runtime.tasks import stop_task
from modelgate.storage import tables as t
from modelgate.storage.bulk import BulkWrite
from modelgate.usage.events import EVENT_FIELDS, UsageEvent
from modelgate.usage.recorder import UsageRecorder
from modelgate.usage.rollup import DAILY_COUNTERS, MINUTE_COUNTERS, Folder, by_hour
from modelgate.usage.sqlite_direct import Busy, DirectSqlite

__all__ = ["UsageFlusher"]

log = logging.getLogger("modelgate.usage")
_SLICE = 20  # events handled between two returns to the event loop
_Put = Callable[["BulkWrite", list[Sequence[Any]]], Awaitable[None]]
_CHECKPOINT_EVERY = 2.0  # seconds between WAL checkpoints of the direct SQLite writer


class UsageFlusher:
    def __init__(
        self,
        recorder: UsageRecorder,
        sessions: async_sessionmaker[AsyncSession],
        interval: float,
        *,
        tz_of: Callable[[int], str] = lambda _tenant: "UTC",
        metrics: Metrics | None = None,
    ) -> None:
        self.recorder = recorder
        self._sessions = sessions
        self._interval = interval
        self._tz_of = tz_of
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None
        self.flushed = 0
        self._lock = asyncio.Lock()
        self.flushed_event = asyncio.Event()
        self._direct = _direct_sqlite(sessions)
        self._checkpointed = time.monotonic()

    @property
    def direct(self) -> DirectSqlite | None:
        """The direct SQLite writer, when the database is an SQLite file."""
        return self._direct

    async def _write(self, events: list[UsageEvent]) -> None:
        """Details and rollups of a batch in one transaction: both or neither.

        The Python work goes slice by slice with the event loop let in between, so no request
        waits behind a whole batch (that wait was most of the data plane's p99 at one connection).
        """
        # Behind (a batch or more still waiting): whole batches, or the writer would fall behind
        # for good under saturation, since every slice costs a turn of the event loop.
        step = _SLICE if len(self.recorder.buffer) < self.recorder.batch_size else max(1, len(events))
        folder = Folder(self._tz_of)
        async for part in _in_slices(events, step):
            folder.add(part)
        minutes, days = list(folder.minutes.values()), list(folder.days.values())
        if self._direct is None or not await self._write_direct(self._direct, events, minutes, days, step):
            await self._write_async(events, minutes, days, step)
        if self._metrics is not None:  # once the batch is stored: a spooled batch is counted when replayed
            async for part in _in_slices(events, step):
                self._metrics.observe(part)

    async def _store(
        self, put: _Put, dialect: str, events: list[UsageEvent], minutes: list[dict[str, Any]],
        days: list[dict[str, Any]], step: int,
    ) -> None:  # fmt: skip
        """The batch's statements, the same whichever connection ``put`` runs them on."""
        async for part in _in_slices(events, step):
            await put(_EVENTS, [_event_values(e) for e in part])
        await put(_rollup_write(dialect, "usage_minute"), [_minute_values(m) for m in minutes])
        await put(_rollup_write(dialect, "usage_hour"), [_hour_values(h) for h in by_hour(minutes)])
        await put(_rollup_write(dialect, "usage_daily"), [_daily_values(d) for d in days])
        await put(_TOUCH, _last_use(events))

    async def _write_direct(
        self, db: DirectSqlite, events: list[UsageEvent], minutes: list[dict[str, Any]], days: list[dict[str, Any]],
        step: int,
    ) -> bool:  # fmt: skip
        """False when another connection holds the write lock (the batch then goes the async way)."""

        async def put(statement: BulkWrite, rows: list[Sequence[Any]]) -> None:
            db.write(statement, rows)

        try:
            db.begin()
        except Busy:
            return False
        try:
            await self._store(put, "sqlite", events, minutes, days, step)
            db.commit()
        except BaseException:
            db.rollback()
            raise
        now = time.monotonic()
        if now - self._checkpointed >= _CHECKPOINT_EVERY:
            self._checkpointed = now
            await db.checkpoint()
        return True

    async def _write_async(
        self, events: list[UsageEvent], minutes: list[dict[str, Any]], days: list[dict[str, Any]], step: int
    ) -> None:
        async with self._sessions() as session, session.begin():

            async def put(statement: BulkWrite, rows: list[Sequence[Any]]) -> None:
                await statement.run(session, rows)

            dialect = (await session.connection()).dialect.name
            await self._store(put, dialect, events, minutes, days, step)

    async def flush_once(self) -> int:
        """Write everything buffered now; returns how many events were written.

        Serialised: a caller that needs "everything recorded so far is stored" (a quota counter
        being rebuilt from the records) also waits for a batch another flush has in hand.
        """
        async with self._lock:
            return await self._flush_unlocked()

    async def _flush_unlocked(self) -> int:
        await self._replay_spool()
        written = 0
        while self.recorder.buffer:
            batch = self.recorder.take(self.recorder.batch_size)
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                # shutting down mid-batch: the batch goes back in front, for stop()'s final flush
                self.recorder.buffer.extendleft(reversed(batch))
                raise
            except Exception:
                log.warning("usage write failed; %d events spooled to disk", len(batch), exc_info=True)
                self.recorder.spill(batch)
                break
            written += len(batch)
        if written:
            self.flushed += written
            self.flushed_event.set()
        return written

    async def _replay_spool(self) -> None:
        """Write back what the spool holds. At least once: a process that died in the middle of a
        replay left ``usage.replaying`` behind, which is replayed first (its batches committed
        before the crash are then written twice, which beats losing the rest)."""
        spool: Path = self.recorder.spool_dir
        path, replaying = spool / "usage.jsonl", spool / "usage.replaying"
        while True:
            if not replaying.exists():
                if not path.exists():
                    return
                path.rename(replaying)
            await self._replay_file(replaying)

    async def _replay_file(self, replaying: Path) -> None:
        events: list[UsageEvent] = []
        damaged: list[bytes] = []
        for line in replaying.read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                events.append(UsageEvent(**orjson.loads(line)))
            except (ValueError, TypeError):  # a torn append (power loss) or a foreign line
                damaged.append(line)
        if damaged:
            # set aside for the operator instead of failing every replay from now on
            rejected = replaying.with_name("usage.rejected.jsonl")
            with rejected.open("ab") as fh:
                fh.write(b"".join(line + b"\n" for line in damaged))
                fh.flush()
                os.fsync(fh.fileno())
            log.error("%d unreadable usage spool line(s) set aside in %s", len(damaged), rejected)
        batch = self.recorder.batch_size
        i = 0
        try:
            for i in range(0, len(events), batch):
                await self._write(events[i : i + batch])
        except Exception:
            # keep the not-yet-written tail on disk; written batches are committed already
            self.recorder.spill(events[i:])
            replaying.unlink()
            raise
        replaying.unlink()
        self.flushed += len(events)

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.recorder.wakeup.wait(), self._interval)
            except TimeoutError:
                pass
            self.recorder.wakeup.clear()
            try:
                await self.flush_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("usage flush failed; will retry", exc_info=True)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="usage-flusher")

    async def stop(self) -> None:
        """Stop the loop and drain: nothing recorded before shutdown is lost."""
        await stop_task(self._task)
        self._task = None
        try:
            await self.flush_once()
        except Exception:
            self.recorder.spill(self.recorder.take(len(self.recorder.buffer)))
        if self._direct is not None:
            self._direct.close()


def _posix_to_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# Statements built and compiled once, run as driver-level executemany (see storage/bulk.py): per
# batch only the row tuples are made.
_EVENTS = BulkWrite(insert(t.UsageEvent.__table__), EVENT_FIELDS, {"ts": _posix_to_datetime})
_event_values = attrgetter(*EVENT_FIELDS)
_MINUTE_NAMES = ("endpoint_id", "minute", "tenant_id", *MINUTE_COUNTERS)
_HOUR_NAMES = ("endpoint_id", "hour", "tenant_id", *MINUTE_COUNTERS)
_DAILY_KEYS = ("day", "tenant_id", "endpoint_id", "user_id", "api_key_id")
_DAILY_NAMES = (*_DAILY_KEYS, *DAILY_COUNTERS)
_minute_values = itemgetter(*_MINUTE_NAMES)
_hour_values = itemgetter(*_HOUR_NAMES)
_daily_values = itemgetter(*_DAILY_NAMES)
_ROLLUPS: dict[str, tuple[Table, Sequence[str], Sequence[str], Sequence[str]]] = {
    "usage_minute": (t.UsageMinute.__table__, ("endpoint_id", "minute", "tenant_id"), MINUTE_COUNTERS,
                     _MINUTE_NAMES),
    "usage_hour": (t.UsageHour.__table__, ("endpoint_id", "hour", "tenant_id"), MINUTE_COUNTERS, _HOUR_NAMES),
    "usage_daily": (t.UsageDaily.__table__, _DAILY_KEYS, DAILY_COUNTERS, _DAILY_NAMES),
}
_UPSERTS: dict[tuple[str, str], BulkWrite] = {}
_KEYS = t.ApiKey.__table__
_TOUCH = BulkWrite(
    update(_KEYS)
    .where(_KEYS.c.id == bindparam("kid"),
           or_(_KEYS.c.last_used_at.is_(None), _KEYS.c.last_used_at < bindparam("when")))  # fmt: skip
    .values(last_used_at=bindparam("when")),
    ("kid", "when"),
    {"when": _posix_to_datetime},
)


def _rollup_write(dialect: str, table_name: str) -> BulkWrite:
    """INSERT ... ON CONFLICT DO UPDATE adding the counters (SQLite and PostgreSQL alike), built
    once per (dialect, table): building the ~50 column expressions per batch cost a third of the
    event loop's time under load (py-spy)."""
    cached = _UPSERTS.get((dialect, table_name))
    if cached is not None:
        return cached
    table, keys, counters, names = _ROLLUPS[table_name]
    stmt = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=list(keys),
                                      set_={c: table.c[c] + stmt.excluded[c] for c in counters})  # fmt: skip
    cached = _UPSERTS[(dialect, table_name)] = BulkWrite(stmt, names)
    return cached


async def _in_slices(items: list[UsageEvent], step: int) -> AsyncIterator[list[UsageEvent]]:
    """``items`` in slices of ``step``, the event loop let in between when there are several."""
    for i in range(0, len(items), step):
        yield items[i : i + step]
        if step < len(items):
            await asyncio.sleep(0)


def _last_use(events: list[UsageEvent]) -> list[tuple[int, float]]:
    """``api_keys.last_used_at`` rows: one UPDATE per key seen in the batch, not per request."""
    last: dict[int, float] = {}
    for e in events:
        if e.api_key_id is not None and e.ts > last.get(e.api_key_id, 0.0):
            last[e.api_key_id] = e.ts
    return list(last.items())


def _direct_sqlite(sessions: async_sessionmaker[AsyncSession]) -> DirectSqlite | None:
    """A direct connection when the database is an SQLite file (see usage/sqlite_direct.py)."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        return None
    url = bind.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return DirectSqlite(url.database, bind.dialect)
