"""Configuration-change broadcast between gateway processes over Redis pub/sub.

A process that changed configuration publishes the new version; every process reloads its
snapshot on the message and reports the version it now serves in the ``mg:procs`` hash. The
writer waits (briefly, bounded) until every live process reports it, so a key disabled
through one process is refused by all of them on the very next request after the admin call
returns. Without Redis the version poll is the only path between processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from modelgate.runtime.tasks import stop_task

__all__ = ["ConfigBus"]

log = logging.getLogger("modelgate.runtime")
_CHANNEL = "mg:config"
_PROCS = "mg:procs"
_LIVE = 10.0  # seconds without a heartbeat after which a process is presumed gone
_CALL_TIMEOUT = 1.0  # bound of a heartbeat (the client has no socket timeout: the subscriber blocks)


class ConfigBus:
    def __init__(self, url: str, reload: Callable[[], Awaitable[int]]) -> None:
        self.client = aioredis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=None)
        self.proc_id = f"{os.getpid()}-{os.urandom(3).hex()}"
        self._reload = reload
        self._task: asyncio.Task[None] | None = None
        self.version = 0

    async def report(self, version: int) -> None:
        """Heartbeat with the version served. Bounded: the snapshot poll calls it, and a stalled
        Redis must not stop this process from following the database."""
        self.version = version
        try:
            async with asyncio.timeout(_CALL_TIMEOUT):
                await self.client.hset(_PROCS, self.proc_id, f"{version}:{time.time():.3f}")
        except (TimeoutError, OSError, aioredis.RedisError):
            pass

    async def publish_and_wait(self, version: int, timeout: float = 2.0) -> bool:
        """Tell the other processes; True once all live ones serve ``version`` (False on timeout)."""
        try:
            # the whole exchange is bounded: a stalled Redis (commands have no socket timeout here,
            # for the subscriber's sake) must not hang the admin write waiting on it
            async with asyncio.timeout(timeout):
                await self.report(version)
                await self.client.publish(_CHANNEL, str(version))
                while True:
                    procs = await self.client.hgetall(_PROCS)
                    now = time.time()
                    lagging = [p for p, v in procs.items() if _lags(v, version, now)]
                    if not lagging:
                        return True
                    await asyncio.sleep(0.005)
        except TimeoutError:
            log.warning("config broadcast not confirmed in %.1f s; other processes will catch up by polling", timeout)
        except (OSError, aioredis.RedisError):
            log.warning("config broadcast failed; other processes will catch up by polling")
        return False

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self.client.pubsub()
                await pubsub.subscribe(_CHANNEL)
                await self.report(await self._reload())  # catch up on anything missed while away
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self.report(await self._reload())
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis gone: retry; the version poll still keeps this process current
                await asyncio.sleep(1.0)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen(), name="config-bus")

    async def stop(self) -> None:
        await stop_task(self._task)
        try:
            async with asyncio.timeout(_CALL_TIMEOUT):
                await self.client.hdel(_PROCS, self.proc_id)
        except (TimeoutError, OSError, aioredis.RedisError):
            pass
        await self.client.aclose()


def _lags(value: bytes, version: int, now: float) -> bool:
    try:
        v, ts = value.decode().split(":")
        return int(v) < version and now - float(ts) < _LIVE
    except ValueError:
        return False
