"""Batched writer of usage events: the only writer of ``usage_events``.

Runs in the server's lifespan: flushes when the buffer reaches a batch or every
``usage_flush_interval`` seconds, replays the spool file once the database answers again, and
drains everything on shutdown. A batch the database refuses goes to the spool file.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import orjson
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelgate.storage import tables as t
from modelgate.usage.events import UsageEvent
from modelgate.usage.recorder import UsageRecorder

__all__ = ["UsageFlusher"]

log = logging.getLogger("modelgate.usage")


class UsageFlusher:
    def __init__(
        self, recorder: UsageRecorder, sessions: async_sessionmaker[AsyncSession], interval: float
    ) -> None:
        self.recorder = recorder
        self._sessions = sessions
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self.flushed = 0
        self.flushed_event = asyncio.Event()

    async def _write(self, events: list[UsageEvent]) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(insert(t.UsageEvent), [e.as_row() for e in events])

    async def flush_once(self) -> int:
        """Write everything buffered now; returns how many events were written."""
        await self._replay_spool()
        written = 0
        while self.recorder.buffer:
            batch = self.recorder.take(self.recorder.batch_size)
            try:
                await self._write(batch)
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
        path: Path = self.recorder.spool_dir / "usage.jsonl"
        if not path.exists():
            return
        replaying = path.with_suffix(".replaying")
        path.rename(replaying)
        events = [UsageEvent(**orjson.loads(line)) for line in replaying.read_bytes().splitlines() if line]
        try:
            for i in range(0, len(events), self.recorder.batch_size):
                await self._write(events[i : i + self.recorder.batch_size])
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
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        try:
            await self.flush_once()
        except Exception:
            self.recorder.spill(self.recorder.take(len(self.recorder.buffer)))
