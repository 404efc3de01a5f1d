"""The hot path's only contact with usage storage: a non-blocking append to a buffer.

The buffer is bounded: past ``usage_buffer_max`` events it spills the oldest half to the
spool file (replayed later) instead of dropping anything or blocking a request.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from pathlib import Path

import orjson

from modelgate.usage.events import UsageEvent

__all__ = ["UsageRecorder"]


class UsageRecorder:
    def __init__(self, spool_dir: Path, *, batch_size: int = 500, max_buffer: int = 100_000) -> None:
        self.buffer: deque[UsageEvent] = deque()
        self.spool_dir = spool_dir
        self.batch_size = batch_size
        self.max_buffer = max_buffer
        self.wakeup = asyncio.Event()
        self.recorded = 0

    def record(self, event: UsageEvent) -> None:
        self.buffer.append(event)
        self.recorded += 1
        n = len(self.buffer)
        if n >= self.batch_size:
            self.wakeup.set()
        if n > self.max_buffer:
            self.spill([self.buffer.popleft() for _ in range(n // 2)])

    def take(self, limit: int) -> list[UsageEvent]:
        buf = self.buffer
        return [buf.popleft() for _ in range(min(limit, len(buf)))]

    def spill(self, events: list[UsageEvent]) -> None:
        """Append events to the spool file (one JSON document a line); fsync'd, so nothing is lost."""
        if not events:
            return
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        path = self.spool_dir / "usage.jsonl"
        data = b"".join(orjson.dumps(e.as_json()) + b"\n" for e in events)
        with path.open("ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
