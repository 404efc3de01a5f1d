"""Fold a batch of usage events into minute, hour and daily rollup rows (pure; no I/O).

A batch becomes one additive row per (endpoint, minute), per (endpoint, hour) and per (local day,
tenant, endpoint, user, key); the flusher upserts them by addition, so writes grow with distinct
keys, not with requests.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from modelgate.storage.tables import ERROR_TYPES, LATENCY_BUCKETS_MS
from modelgate.usage.events import UsageEvent

__all__ = ["DAILY_COUNTERS", "MINUTE_COUNTERS", "Folder", "bucket_of", "by_hour", "error_class"]

_KNOWN = frozenset(ERROR_TYPES)
_ALIASES = {"not_found": "bad_request"}
_NBUCKETS = len(LATENCY_BUCKETS_MS) + 1
MINUTE_COUNTERS = (
    ["requests", "successes", "input_tokens", "output_tokens", "cost", "latency_sum_ms", "ttft_count", "ttft_sum_ms"]
    + [f"err_{e}" for e in ERROR_TYPES]
    + [f"lat_b{i}" for i in range(_NBUCKETS)]
    + [f"ttft_b{i}" for i in range(_NBUCKETS)]
)
DAILY_COUNTERS = ["requests", "successes", "input_tokens", "output_tokens", "cost"]
_LAT = tuple(f"lat_b{i}" for i in range(_NBUCKETS))
_TTFT = tuple(f"ttft_b{i}" for i in range(_NBUCKETS))


def error_class(error_type: str | None) -> str | None:
    """The monitoring label of an event's error (None for a success)."""
    if error_type is None:
        return None
    error_type = _ALIASES.get(error_type, error_type)
    return error_type if error_type in _KNOWN else "other"


def bucket_of(ms: float) -> int:
    """Index of the histogram bucket holding ``ms`` (upper bounds inclusive, last one open)."""
    return bisect_left(LATENCY_BUCKETS_MS, ms)


def _zone_day(zones: dict[str, ZoneInfo], tz: str, ts: float) -> str:
    zone = zones.get(tz)
    if zone is None:
        zone = zones[tz] = ZoneInfo(tz)
    return datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d")


class Folder:
    """Folds events into rollup rows; ``add`` may be called batch slice by batch slice, so the
    flusher can yield to the event loop between slices."""

    def __init__(self, tz_of: Callable[[int], str]) -> None:
        self.tz_of = tz_of
        self.minutes: dict[tuple[int, int, int], dict[str, Any]] = {}
        self.days: dict[tuple[str, int, int, int, int], dict[str, Any]] = {}
        self._zones: dict[str, ZoneInfo] = {}

    def add(self, events: Iterable[UsageEvent]) -> None:
        minutes, days, zones, tz_of = self.minutes, self.days, self._zones, self.tz_of
        for e in events:
            tenant, endpoint = e.tenant_id or 0, e.endpoint_id or 0
            err = error_class(e.error_type)
            ok = 1 if err is None and e.status_code < 400 else 0
            mkey = (endpoint, int(e.ts) // 60 * 60, tenant)
            m = minutes.get(mkey)
            if m is None:
                m = minutes[mkey] = dict.fromkeys(MINUTE_COUNTERS, 0)
                m.update(endpoint_id=endpoint, minute=mkey[1], tenant_id=tenant)
            m["requests"] += 1
            m["successes"] += ok
            m["input_tokens"] += e.input_tokens
            m["output_tokens"] += e.output_tokens
            m["cost"] += e.cost
            m["latency_sum_ms"] += e.latency_ms
            m[_LAT[bucket_of(e.latency_ms)]] += 1
            if e.ttft_ms is not None:
                m["ttft_count"] += 1
                m["ttft_sum_ms"] += e.ttft_ms
                m[_TTFT[bucket_of(e.ttft_ms)]] += 1
            if err is not None:
                m["err_" + err] += 1
            dkey = (_zone_day(zones, tz_of(tenant), e.ts), tenant, endpoint, e.user_id or 0, e.api_key_id or 0)
            d = days.get(dkey)
            if d is None:
                d = days[dkey] = dict.fromkeys(DAILY_COUNTERS, 0)
                d.update(day=dkey[0], tenant_id=tenant, endpoint_id=endpoint, user_id=dkey[3], api_key_id=dkey[4])
            d["requests"] += 1
            d["successes"] += ok
            d["input_tokens"] += e.input_tokens
            d["output_tokens"] += e.output_tokens
            d["cost"] += e.cost


def by_hour(minutes: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The minute rows of a batch summed per (endpoint, hour, tenant): rows of ``usage_hour``."""
    hours: dict[tuple[int, int, int], dict[str, Any]] = {}
    for m in minutes:
        key = (m["endpoint_id"], m["minute"] - m["minute"] % 3600, m["tenant_id"])
        h = hours.get(key)
        if h is None:
            h = hours[key] = dict.fromkeys(MINUTE_COUNTERS, 0)
            h.update(endpoint_id=key[0], hour=key[1], tenant_id=m["tenant_id"])
        for c in MINUTE_COUNTERS:
            h[c] += m[c]
    return list(hours.values())
