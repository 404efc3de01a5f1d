"""Window and cycle arithmetic (modelgate.limits.windows): retry-after of the sliding window, and
calendar quota cycles in the tenant's time zone at day, week and month boundaries, across DST."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from modelgate.limits.windows import WINDOW, cycle_bounds, cycle_id, retry_after


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def utc(iso: str) -> datetime:
    return datetime.fromisoformat(iso).astimezone(UTC)


# --------------------------------------------------------------------------- retry-after


def test_window_is_sixty_seconds() -> None:
    assert WINDOW == 60


@pytest.mark.parametrize(
    ("buckets", "used", "cost", "limit", "now", "expected"),
    [
        # one request over an RPM of 5 made of buckets at 100 (3) and 110 (2): the bucket at 100
        # leaves the window (sec <= now - 60) at 160
        ([(100, 3), (110, 2)], 5, 1, 5, 120, 40),
        # buckets given out of order: the oldest still frees first
        ([(110, 2), (100, 3)], 5, 1, 5, 120, 40),
        # needing 4 freed: the bucket at 100 frees 3, the one at 110 the rest -> 170
        ([(100, 3), (110, 2)], 5, 4, 5, 120, 50),
        # all in the current second: the full window
        ([(120, 5)], 5, 1, 5, 120, 60),
        # the bucket is about to leave: never less than 1 second
        ([(60, 5)], 5, 1, 5, 119, 1),
        # a cost larger than the limit never fits: the whole window
        ([(100, 1)], 1, 10, 5, 120, 60),
        # TPM: 900 of 1000 used, 300 more wanted -> 200 must leave; 150 at 101 is not enough
        ([(101, 150), (105, 600), (119, 150)], 900, 300, 1000, 120, 45),
    ],
)
def test_retry_after(buckets: list[tuple[int, int]], used: int, cost: int, limit: int, now: int, expected: int) -> None:
    assert retry_after(buckets, used, cost, limit, now) == expected


# --------------------------------------------------------------------------- cycles: fixed cases

CASES = [
    # (cycle, zone, now, start, end (all UTC), id)
    # UTC: plain calendar boundaries
    ("daily", "UTC", "2026-12-31 23:59:59", "2026-12-31 00:00:00", "2027-01-01 00:00:00", "d2026-12-31"),
    ("daily", "UTC", "2027-01-01 00:00:00", "2027-01-01 00:00:00", "2027-01-02 00:00:00", "d2027-01-01"),
    ("weekly", "UTC", "2026-12-31 12:00:00", "2026-12-28 00:00:00", "2027-01-04 00:00:00", "w2026-12-28"),
    ("weekly", "UTC", "2026-12-28 00:00:00", "2026-12-28 00:00:00", "2027-01-04 00:00:00", "w2026-12-28"),
    ("weekly", "UTC", "2026-12-27 23:59:59", "2026-12-21 00:00:00", "2026-12-28 00:00:00", "w2026-12-21"),
    ("monthly", "UTC", "2026-12-31 23:59:59", "2026-12-01 00:00:00", "2027-01-01 00:00:00", "m2026-12-01"),
    ("monthly", "UTC", "2028-02-29 12:00:00", "2028-02-01 00:00:00", "2028-03-01 00:00:00", "m2028-02-01"),
    ("monthly", "UTC", "2027-02-28 23:59:59", "2027-02-01 00:00:00", "2027-03-01 00:00:00", "m2027-02-01"),
    # Asia/Shanghai (UTC+8, no DST): local midnight is 16:00 UTC the day before
    ("daily", "Asia/Shanghai", "2026-12-01 15:59:59", "2026-11-30 16:00:00", "2026-12-01 16:00:00", "d2026-12-01"),
    ("daily", "Asia/Shanghai", "2026-12-01 16:00:00", "2026-12-01 16:00:00", "2026-12-02 16:00:00", "d2026-12-02"),
    # 2027-01-03 is a Sunday: Monday 00:00 local is Sunday 16:00 UTC
    ("weekly", "Asia/Shanghai", "2027-01-03 15:59:59", "2026-12-27 16:00:00", "2027-01-03 16:00:00", "w2026-12-28"),
    ("weekly", "Asia/Shanghai", "2027-01-03 16:00:00", "2027-01-03 16:00:00", "2027-01-10 16:00:00", "w2027-01-04"),
    # the new month (and year) starts in Shanghai while it is still December 31st in UTC
    ("monthly", "Asia/Shanghai", "2026-12-31 15:59:59", "2026-11-30 16:00:00", "2026-12-31 16:00:00", "m2026-12-01"),
    ("monthly", "Asia/Shanghai", "2026-12-31 16:00:00", "2026-12-31 16:00:00", "2027-01-31 16:00:00", "m2027-01-01"),
    # America/New_York: DST starts 2026-03-08 02:00 (EST -5 -> EDT -4): a 23-hour day
    ("daily", "America/New_York", "2026-03-08 12:00:00", "2026-03-08 05:00:00", "2026-03-09 04:00:00", "d2026-03-08"),
    ("daily", "America/New_York", "2026-03-09 03:59:59", "2026-03-08 05:00:00", "2026-03-09 04:00:00", "d2026-03-08"),
    ("daily", "America/New_York", "2026-03-09 04:00:00", "2026-03-09 04:00:00", "2026-03-10 04:00:00", "d2026-03-09"),
    # DST ends 2026-11-01 02:00 (EDT -> EST): a 25-hour day; 01:30 happens twice, both in that day
    ("daily", "America/New_York", "2026-11-01 05:30:00", "2026-11-01 04:00:00", "2026-11-02 05:00:00", "d2026-11-01"),
    ("daily", "America/New_York", "2026-11-01 06:30:00", "2026-11-01 04:00:00", "2026-11-02 05:00:00", "d2026-11-01"),
    # a week and a month that contain the DST change start and end at local midnight
    ("weekly", "America/New_York", "2026-03-08 12:00:00", "2026-03-02 05:00:00", "2026-03-09 04:00:00", "w2026-03-02"),
    ("monthly", "America/New_York", "2026-03-31 12:00:00", "2026-03-01 05:00:00", "2026-04-01 04:00:00", "m2026-03-01"),
    ("monthly", "America/New_York", "2026-11-30 12:00:00", "2026-11-01 04:00:00", "2026-12-01 05:00:00", "m2026-11-01"),
    # the month still runs in New York when it has ended in UTC
    ("monthly", "America/New_York", "2027-01-01 04:59:59", "2026-12-01 05:00:00", "2027-01-01 05:00:00", "m2026-12-01"),
    # America/Santiago: DST starts at midnight (2026-09-06 00:00 does not exist): the day starts at 01:00
    ("daily", "America/Santiago", "2026-09-06 12:00:00", "2026-09-06 04:00:00", "2026-09-07 03:00:00", "d2026-09-06"),
]  # fmt: skip


@pytest.mark.parametrize(("cycle", "zone", "now", "start", "end", "ident"), CASES)
def test_cycle_bounds_and_id(cycle: str, zone: str, now: str, start: str, end: str, ident: str) -> None:
    now, start, end = (f"{v.replace(' ', 'T')}+00:00" for v in (now, start, end))
    got_start, got_end = cycle_bounds(cycle, zone, ts(now))
    assert (got_start, got_end) == (utc(start), utc(end))
    assert got_start.tzinfo is not None and got_end.tzinfo is not None
    assert cycle_id(cycle, zone, ts(now)) == (ident, ts(start), ts(end))


def test_dst_days_have_their_real_length() -> None:
    ny = "America/New_York"
    spring = cycle_bounds("daily", ny, ts("2026-03-08T12:00:00+00:00"))
    autumn = cycle_bounds("daily", ny, ts("2026-11-01T12:00:00+00:00"))
    assert spring[1] - spring[0] == timedelta(hours=23)
    assert autumn[1] - autumn[0] == timedelta(hours=25)
    week = cycle_bounds("weekly", ny, ts("2026-03-08T12:00:00+00:00"))
    assert week[1] - week[0] == timedelta(days=7, hours=-1)


# --------------------------------------------------------------------------- cycles: properties

ZONES = ("UTC", "Asia/Shanghai", "America/New_York", "Europe/London", "Australia/Lord_Howe", "America/Santiago")


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("cycle", ["daily", "weekly", "monthly"])
def test_cycles_tile_the_calendar(cycle: str, zone: str) -> None:
    """Every instant lies in exactly one cycle; cycles start at local midnight on the right day and
    follow each other without gap or overlap, across 2026-2028 (DST changes and a leap day)."""
    tz = ZoneInfo(zone)
    t = ts("2026-01-01T00:00:00+00:00")
    stop = ts("2028-12-31T00:00:00+00:00")
    seen = set()
    prev_end: datetime | None = None
    while t < stop:
        start, end = cycle_bounds(cycle, zone, t)
        assert start.timestamp() <= t < end.timestamp()
        if prev_end is not None:
            assert start == prev_end  # tiling
        local = start.astimezone(tz)
        # the first instant of a local day: local midnight (01:00 where midnight does not exist)
        assert (start - timedelta(microseconds=1)).astimezone(tz).date() < local.date()
        assert (local.minute, local.second, local.microsecond) == (0, 0, 0) and local.hour in (0, 1)
        if cycle == "weekly":
            assert local.weekday() == 0
        if cycle == "monthly":
            assert local.day == 1
        ident = cycle_id(cycle, zone, t)
        assert ident == (f"{cycle[0]}{local:%Y-%m-%d}", start.timestamp(), end.timestamp())
        assert ident[0] not in seen
        seen.add(ident[0])
        # the last second of the cycle still belongs to it
        assert cycle_id(cycle, zone, end.timestamp() - 0.001)[0] == ident[0]
        prev_end = end
        t = end.timestamp()
    assert len(seen) > {"daily": 1000, "weekly": 150, "monthly": 30}[cycle]


def test_cycle_id_cache_follows_time_in_any_order() -> None:
    """The hot-path cache (per cycle kind and zone) never answers for the wrong cycle, whatever
    order the timestamps come in and however zones and kinds interleave."""
    rng = random.Random(4)
    lo, hi = ts("2026-01-01T00:00:00+00:00"), ts("2027-12-31T00:00:00+00:00")
    for _ in range(3000):
        now = rng.uniform(lo, hi)
        cycle = rng.choice(["daily", "weekly", "monthly"])
        zone = rng.choice(ZONES)
        start, end = cycle_bounds(cycle, zone, now)
        expected = f"{cycle[0]}{start.astimezone(ZoneInfo(zone)):%Y-%m-%d}"
        assert cycle_id(cycle, zone, now) == (expected, start.timestamp(), end.timestamp())
