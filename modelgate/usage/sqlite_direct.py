"""The usage writer's own SQLite connection, used on the event loop's thread.

Why not aiosqlite here: aiosqlite runs each call on a worker thread, and SQLite's module hands the
GIL back and forth for every row it steps through. With the data plane busy on the loop thread,
that hand-over became a context switch per row between two threads sharing one core: at one
connection a request cost ~165 µs more CPU with the writer on than off (measured per request
from /proc while bench/run.py's load ran), against ~20 µs of actual writing.
SQLite in WAL mode with ``synchronous=NORMAL`` commits without waiting for the disk, so a slice
of rows written right on the loop blocks it well under a millisecond.

Two things could block the loop for long, and neither may: waiting for another writer's lock
(``busy_timeout=0``: a busy database raises ``Busy`` at once and the caller writes that batch
through the async engine instead, which waits on its own thread), and a WAL checkpoint
(``wal_autocheckpoint=0`` here; ``checkpoint()`` runs one on a worker thread, where SQLite keeps
the GIL released for the whole of it).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Dialect

from modelgate.storage.bulk import BulkWrite

__all__ = ["Busy", "DirectSqlite"]


class Busy(Exception):
    """Another connection holds SQLite's write lock right now."""


class DirectSqlite:
    def __init__(self, path: str, dialect: Dialect) -> None:
        self.path = path
        self.dialect = dialect
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpoint_lock = threading.Lock()
        # observability hook: called with (SQL, number of rows) for every batch statement
        self.on_statement: Callable[[str, int], None] | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=0")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._conn = conn
        return self._conn

    def begin(self) -> None:
        try:
            self._connection().execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise Busy(str(exc)) from None
            raise

    def write(self, statement: BulkWrite, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            sql, params = statement.params(self.dialect, rows)
            self._connection().executemany(sql, params)
            if self.on_statement is not None:
                self.on_statement(sql, len(rows))

    def commit(self) -> None:
        self._connection().execute("COMMIT")

    def rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _checkpoint_now(self) -> None:
        with self._checkpoint_lock:
            if self._checkpointer is None:
                self._checkpointer = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                self._checkpointer.execute("PRAGMA busy_timeout=1000")
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    async def checkpoint(self) -> None:
        """Copy the write-ahead log back into the database file, off the event loop."""
        await asyncio.to_thread(self._checkpoint_now)

    def close(self) -> None:
        for conn in (self._conn, self._checkpointer):
            if conn is not None:
                conn.close()
        self._conn = self._checkpointer = None
