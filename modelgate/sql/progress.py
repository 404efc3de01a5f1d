"""A terminal progress bar for long SQL runs (rich, on stderr so stdout stays the result).

DuckDB does not tell a UDF how many rows a query will have, so the bar counts what it can
see — rows through the ai_* functions, calls sent, failures — with a spinner, the elapsed time
and the row rate, and no fake percentage.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from modelgate.sql.duckdb_udf import SqlSession

__all__ = ["QueryProgress"]


class QueryProgress:
    """Attach to a SqlSession for the duration of a ``with`` block."""

    def __init__(self, session: SqlSession, console: Console, label: str = "ai_* calls") -> None:
        self.session = session
        self.rows = self.calls = self.failed = 0
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"),
                                  TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), console=console,
                                  transient=False, refresh_per_second=8)  # fmt: skip
        self._task = self._progress.add_task(label, total=None, stats=self._stats())

    def _stats(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        failed = f", [red]{self.failed} failed[/]" if self.failed else ""
        return f"{self.rows} rows, {self.calls} calls{failed} · {self.rows / elapsed:,.1f} rows/s"

    def on_rows(self, n: int) -> None:
        with self._lock:
            self.rows += n
            self._progress.update(self._task, stats=self._stats())

    def on_call(self, failed: bool) -> None:
        with self._lock:
            self.calls += 1
            self.failed += int(failed)
            self._progress.update(self._task, stats=self._stats())

    def __enter__(self) -> QueryProgress:
        self._started = time.monotonic()
        self.session.on_rows = self.on_rows
        self.session.client.on_call = self.on_call
        self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.session.on_rows = None
        self.session.client.on_call = None
        self._progress.update(self._task, stats=self._stats())
        self._progress.stop()
