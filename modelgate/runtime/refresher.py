"""Keeps the process's snapshot current.

Three paths, cheapest first: an in-process ``reload()`` right after a change made here (the
admin API and console await it before answering, so the next request sees the change); a
Redis pub/sub message from other processes when Redis is configured; and a poll of the one-row
``config_state.version`` every ``snapshot_poll_interval`` seconds as the safety net for
changes made by the CLI or another process.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelgate.runtime.bus import ConfigBus
from modelgate.runtime.loader import load_snapshot, read_version
from modelgate.runtime.snapshot import Snapshot
from modelgate.runtime.tasks import stop_task
from modelgate.secrets_box import SecretBox
from modelgate.settings import Settings

__all__ = ["RuntimeState"]

log = logging.getLogger("modelgate.runtime")


class RuntimeState:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], box: SecretBox, settings: Settings) -> None:
        self.snapshot: Snapshot = Snapshot.empty()
        self.loaded_at: float = 0.0
        self._sessions = sessions
        self._box = box
        self._settings = settings
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.bus: ConfigBus | None = ConfigBus(settings.redis_url, self._reload_version) if settings.redis_url else None

    async def _reload_version(self) -> int:
        return (await self.reload()).version

    async def changed(self) -> None:
        """After a local configuration write: reload here, then make every other process reload."""
        snap = await self.reload()
        if self.bus is not None:
            await self.bus.publish_and_wait(snap.version)

    async def reload(self) -> Snapshot:
        async with self._lock:
            async with self._sessions() as session:
                snap = await load_snapshot(session, self._box, self._settings)
            self.snapshot = snap
            self.loaded_at = time.time()
            return snap

    async def _poll(self) -> None:
        interval = self._settings.snapshot_poll_interval
        while True:
            await asyncio.sleep(interval)
            try:
                async with self._sessions() as session:
                    version = await read_version(session)
                if version != self.snapshot.version:
                    await self.reload()
                else:
                    self.loaded_at = time.time()
                if self.bus is not None:
                    await self.bus.report(self.snapshot.version)
            except asyncio.CancelledError:
                raise
            except Exception:  # database briefly unreachable: keep serving the last snapshot
                log.warning("configuration poll failed; serving the last snapshot", exc_info=True)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._poll(), name="snapshot-refresher")
        if self.bus is not None:
            self.bus.start()

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        if self.bus is not None:
            await self.bus.stop()
