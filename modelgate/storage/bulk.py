"""A Core statement compiled once per dialect and run as one driver-level executemany.

Why: the usage flusher writes hundreds of rows per batch on the same event loop (and core) as the
data plane. SQLAlchemy's per-row parameter handling (``construct_params`` and type processors
run for every parameter set) cost more than the driver's own work (py-spy, bench/flush_bench.py).
Here the SQL text, the parameter order and the few bind processors that matter (date-times) are
worked out once; each row is then a tuple handed to the driver's ``executemany``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ClauseElement

__all__ = ["BulkWrite"]

Convert = Callable[[Any], Any]


class _Prepared:
    __slots__ = ("fixes", "perm", "sql")

    def __init__(self, sql: str, perm: list[int] | None, fixes: list[tuple[int, Convert]]) -> None:
        self.sql = sql
        self.perm = perm  # None: the caller's order is the statement's
        self.fixes = fixes

    def row(self, values: Sequence[Any]) -> tuple[Any, ...]:
        vals = list(values) if self.perm is None else [values[i] for i in self.perm]
        for pos, fn in self.fixes:
            vals[pos] = fn(vals[pos])
        return tuple(vals)


class BulkWrite:
    """``stmt`` with parameters named ``names``; rows are sequences of values in ``names`` order.

    ``convert`` maps a name to a function applied before the column type's own bind processing
    (for instance a POSIX timestamp to a ``datetime``). Only positional paramstyles are used
    (SQLite's ``?``, asyncpg's ``$n``), the two drivers modelgate supports.
    """

    def __init__(self, stmt: ClauseElement, names: Sequence[str], convert: Mapping[str, Convert] | None = None) -> None:
        self._stmt = stmt
        self._names = list(names)
        self._convert = dict(convert or {})
        self._prepared: dict[str, _Prepared] = {}

    def prepare(self, dialect: Dialect) -> _Prepared:
        prepared = self._prepared.get(dialect.name)
        if prepared is not None:
            return prepared
        compiled = self._stmt.compile(dialect=dialect, column_keys=self._names)
        if not compiled.positional or compiled.positiontup is None:
            raise ValueError(f"BulkWrite needs a positional paramstyle, not {dialect.paramstyle!r}")
        order = list(compiled.positiontup)
        unknown = set(order) - set(self._names)
        if unknown:
            raise ValueError(f"statement parameters without values: {sorted(unknown)}")
        perm = [self._names.index(n) for n in order]
        fixes: list[tuple[int, Convert]] = []
        for pos, name in enumerate(order):
            process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            pre = self._convert.get(name)
            fn = _chain(pre, process)
            if fn is not None:
                fixes.append((pos, fn))
        prepared = self._prepared[dialect.name] = _Prepared(
            compiled.string, None if perm == list(range(len(self._names))) else perm, fixes
        )
        return prepared

    def params(self, dialect: Dialect, rows: Sequence[Sequence[Any]]) -> tuple[str, list[tuple[Any, ...]]]:
        """The SQL text and the driver's parameter tuples for ``rows``."""
        prepared = self.prepare(dialect)
        row = prepared.row
        return prepared.sql, [row(r) for r in rows]

    async def run(self, session: AsyncSession, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            conn = await session.connection()
            await conn.exec_driver_sql(*self.params(conn.dialect, rows))


def _chain(first: Convert | None, then: Convert | None) -> Convert | None:
    if first is None or then is None:
        return first or then

    def both(value: Any) -> Any:
        return then(first(value)) if value is not None else then(None)

    return both
