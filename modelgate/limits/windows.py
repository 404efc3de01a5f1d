"""Window and cycle arithmetic shared by every counter store. Key formats here are stable.

Rate limits use a sliding 60-second window kept as 1-second buckets: a request is admitted
when the sum over the last 60 buckets plus its own cost stays within the limit, so no
60-second span (at 1 s resolution) ever holds more than the limit.

Quota cycles are calendar periods in the tenant's time zone: daily (local midnight), weekly
(Monday 00:00) and monthly (the 1st, 00:00).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = ["WINDOW", "cycle_bounds", "cycle_id", "retry_after"]

WINDOW = 60


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def cycle_bounds(cycle: str, tz: str, now: float) -> tuple[datetime, datetime]:
    """Start and end (UTC-aware) of the cycle containing ``now``."""
    zone = _zone(tz)
    local = datetime.fromtimestamp(now, zone)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if cycle == "daily":
        start, end = day, day + timedelta(days=1)
    elif cycle == "weekly":
        start = day - timedelta(days=local.weekday())
        end = start + timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    # re-localise: a DST change between start and end must not shift local midnight
    start = start.replace(tzinfo=None).replace(tzinfo=zone)
    end = end.replace(tzinfo=None).replace(tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


_CYCLE_CACHE: dict[tuple[str, str], tuple[float, float, str]] = {}


def cycle_id(cycle: str, tz: str, now: float) -> tuple[str, float, float]:
    """A stable id of the cycle containing ``now`` (``m2026-12-01``: kind and local start date),
    with its start and end as timestamps.

    Cached per (cycle, zone) until the cycle ends, so the hot path does no calendar maths.
    """
    cached = _CYCLE_CACHE.get((cycle, tz))
    if cached is not None and cached[0] <= now < cached[1]:
        return cached[2], cached[0], cached[1]
    start, end = cycle_bounds(cycle, tz, now)
    local = start.astimezone(_zone(tz))
    ident = f"{cycle[0]}{local:%Y-%m-%d}"
    _CYCLE_CACHE[(cycle, tz)] = (start.timestamp(), end.timestamp(), ident)
    return ident, start.timestamp(), end.timestamp()


def retry_after(buckets: list[tuple[int, int]], used: int, cost: int, limit: int, now_sec: int) -> int:
    """Seconds until enough old buckets leave the window to fit ``cost`` (at least 1)."""
    need = used + cost - limit
    freed = 0
    for sec, amount in sorted(buckets):
        freed += amount
        if freed >= need:
            return min(WINDOW, max(1, sec + WINDOW - now_sec))  # a bucket stamped by a later clock
    return WINDOW
