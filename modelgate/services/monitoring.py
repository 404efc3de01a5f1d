"""Endpoint monitoring: time series and overview KPIs from the minute and hour rollups.

Buckets are aligned to UTC (minute, hour, day); the granularity follows the range unless
given (≤ 1 day: 1 minute; ≤ 30 days: 1 hour; longer: 1 day). Empty buckets are present as
zeros so a chart has no gaps. Latency percentiles are histogram estimates: the upper bound of
the bucket where the percentile falls (bounds in ``LATENCY_BUCKETS_MS``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.errors import BadRequest
from modelgate.storage import tables as t
from modelgate.storage.tables import ERROR_TYPES, LATENCY_BUCKETS_MS
from modelgate.usage.rollup import MINUTE_COUNTERS

__all__ = ["GRANULARITIES", "endpoint_metrics", "parse_range", "percentile"]

GRANULARITIES = {"minute": 60, "hour": 3600, "day": 86400}
_UNITS = {"m": 60, "h": 3600, "d": 86400}
_MAX_RANGE = 60 * 86400
_NB = len(LATENCY_BUCKETS_MS) + 1
_NUM = {c: float if c in ("cost", "latency_sum_ms", "ttft_sum_ms") else int for c in MINUTE_COUNTERS}


def parse_range(range_: str | None, start: datetime | None, end: datetime | None, now: float) -> tuple[int, int]:
    """[start, end) in epoch seconds from ``range=15m|1h|7d...`` or explicit start/end."""
    if range_ is not None:
        if len(range_) < 2 or range_[-1] not in _UNITS or not range_[:-1].isdigit():
            raise BadRequest("range must look like 15m, 6h or 7d.", param="range")
        end_s = int(now)
        start_s = end_s - int(range_[:-1]) * _UNITS[range_[-1]]
    else:
        if start is None:
            raise BadRequest("Give range=15m|1h|7d... or start (and optionally end).", param="start")
        start_s = int(start.timestamp())
        end_s = int(end.timestamp()) if end is not None else int(now)
    if end_s - start_s < 60:
        raise BadRequest("The time range must be at least 1 minute.", param="range")
    if end_s - start_s > _MAX_RANGE:
        raise BadRequest("The time range may be at most 60 days.", param="range")
    return start_s, end_s


def _auto_granularity(span: int) -> str:
    return "minute" if span <= 86400 else "hour" if span <= 30 * 86400 else "day"


def percentile(hist: list[int], q: float) -> float | None:
    total = sum(hist)
    if total == 0:
        return None
    target, seen = q * total, 0
    for i, n in enumerate(hist):
        seen += n
        if seen >= target:
            return float(LATENCY_BUCKETS_MS[i]) if i < len(LATENCY_BUCKETS_MS) else float(LATENCY_BUCKETS_MS[-1])
    return float(LATENCY_BUCKETS_MS[-1])


def _summarise(row: dict[str, Any]) -> dict[str, Any]:
    n = row["requests"]
    lat = [row[f"lat_b{i}"] for i in range(_NB)]
    ttft = [row[f"ttft_b{i}"] for i in range(_NB)]
    errors = {e: row[f"err_{e}"] for e in ERROR_TYPES}
    failed = sum(errors.values())
    return {
        "requests": n,
        "successes": row["successes"],
        "errors": failed,
        "success_rate": row["successes"] / n if n else None,
        "error_rate": failed / n if n else None,
        "errors_by_type": errors,
        "latency_avg_ms": row["latency_sum_ms"] / n if n else None,
        "latency_p50_ms": percentile(lat, 0.50),
        "latency_p95_ms": percentile(lat, 0.95),
        "latency_p99_ms": percentile(lat, 0.99),
        "ttft_avg_ms": row["ttft_sum_ms"] / row["ttft_count"] if row["ttft_count"] else None,
        "ttft_p50_ms": percentile(ttft, 0.50),
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "total_tokens": row["input_tokens"] + row["output_tokens"],
        "cost": row["cost"],
    }


async def _sum_into(
    by_bucket: dict[int, dict[str, Any]], session: AsyncSession, when: Any, endpoint_id: int, lo: int, hi: int,
    step: int,
) -> None:  # fmt: skip
    """Add the counters of the rollup rows of ``when``'s table in [lo, hi) into buckets of ``step`` seconds."""
    if lo >= hi:
        return
    table = when.table
    bucket = (when - when % step).label("bucket")
    rows = await session.execute(
        select(bucket, *[func.sum(table.c[c]).label(c) for c in MINUTE_COUNTERS])
        .where(table.c.endpoint_id == endpoint_id, when >= lo, when < hi)
        .group_by(bucket)
    )
    for r in rows:
        # PostgreSQL sums BIGINT columns as NUMERIC (Decimal, which JSON-encodes as a string): plain numbers
        sums = {c: _NUM[c](getattr(r, c) or 0) for c in MINUTE_COUNTERS}
        into = by_bucket.get(int(r.bucket))
        if into is None:
            by_bucket[int(r.bucket)] = sums
        else:
            for c in MINUTE_COUNTERS:
                into[c] += sums[c]


async def endpoint_metrics(
    session: AsyncSession, endpoint_id: int, start_s: int, end_s: int, granularity: str | None = None
) -> dict[str, Any]:
    gran = granularity or _auto_granularity(end_s - start_s)
    if gran not in GRANULARITIES:
        raise BadRequest("granularity must be minute, hour or day.", param="granularity")
    step = GRANULARITIES[gran]
    if (end_s - start_s) // step > 20_000:
        raise BadRequest(f"{gran} granularity gives too many points for this range; choose a coarser one.",
                         param="granularity")  # fmt: skip
    first = start_s - start_s % step
    by_bucket: dict[int, dict[str, Any]] = {}
    if step >= 3600:
        # whole hours from the hourly rollup (60x fewer rows), the hour in progress from the minutes
        split = max(first, end_s - end_s % 3600)
        await _sum_into(by_bucket, session, t.UsageHour.__table__.c.hour, endpoint_id, first, split, step)
        await _sum_into(by_bucket, session, t.UsageMinute.__table__.c.minute, endpoint_id, split, end_s, step)
    else:
        await _sum_into(by_bucket, session, t.UsageMinute.__table__.c.minute, endpoint_id, first, end_s, step)
    zero = dict.fromkeys(MINUTE_COUNTERS, 0)
    total = dict(zero)
    series = []
    for b in range(first, end_s, step):
        row = by_bucket.get(b, zero)
        for c in MINUTE_COUNTERS:
            total[c] += row[c]
        series.append({"t": datetime.fromtimestamp(b, UTC).isoformat(), **_summarise(row)})
    return {
        "start": datetime.fromtimestamp(start_s, UTC).isoformat(),
        "end": datetime.fromtimestamp(end_s, UTC).isoformat(),
        "granularity": gran,
        "overview": _summarise(total),
        "series": series,
    }
