"""Retention of usage data: details for a year, rollups for 60 days (both configurable).

On PostgreSQL whole monthly partitions older than the horizon are dropped (cheap, no bloat) and
the straddling month is trimmed with a DELETE; on SQLite rows are deleted. Either way exactly the
rows older than the horizon go, and nothing newer. A rollup row goes once its whole period (a UTC
minute or hour, a tenant-local day) lies before the horizon.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.storage import tables as t
from modelgate.storage.partitions import month_add, partition_ddl

__all__ = ["ensure_partitions", "prune"]


async def ensure_partitions(session: AsyncSession, now: datetime, months_ahead: int = 2) -> None:
    if session.bind.dialect.name != "postgresql":
        return
    this_month = now.astimezone(UTC).date().replace(day=1)
    for offset in range(0, months_ahead + 1):
        await session.execute(text(partition_ddl(month_add(this_month, offset))))


async def _drop_old_partitions(session: AsyncSession, horizon: datetime) -> int:
    rows = await session.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'usage_events' "
            "AND c.relname ~ '^usage_events_p[0-9]{6}$'"
        )
    )
    dropped = 0
    for (name,) in rows.all():
        month = date(int(name[-6:-2]), int(name[-2:]), 1)
        upper = datetime.combine(month_add(month, 1), datetime.min.time(), UTC)
        if upper <= horizon:
            await session.execute(text(f'DROP TABLE "{name}"'))
            dropped += 1
    return dropped


async def prune(
    session: AsyncSession, *, detail_days: int, rollup_days: int, now: datetime | None = None
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    detail_horizon = now - timedelta(days=detail_days)
    rollup_horizon = now - timedelta(days=rollup_days)
    result: dict[str, Any] = {"detail_horizon": detail_horizon.isoformat(), "rollup_horizon": rollup_horizon.isoformat()}
    if session.bind.dialect.name == "postgresql":
        result["partitions_dropped"] = await _drop_old_partitions(session, detail_horizon)
    res = await session.execute(delete(t.UsageEvent).where(t.UsageEvent.ts < detail_horizon))
    result["details_deleted"] = res.rowcount  # type: ignore[attr-defined]
    # a rollup row goes once its whole period lies before the horizon; the minute holding it stays
    first_kept = int(rollup_horizon.timestamp()) // 60 * 60
    res = await session.execute(delete(t.UsageMinute).where(t.UsageMinute.minute < first_kept))
    result["minute_rollups_deleted"] = res.rowcount  # type: ignore[attr-defined]
    first_hour = int(rollup_horizon.timestamp()) // 3600 * 3600
    res = await session.execute(delete(t.UsageHour).where(t.UsageHour.hour < first_hour))
    result["hour_rollups_deleted"] = res.rowcount  # type: ignore[attr-defined]
    result["daily_rollups_deleted"] = await _prune_daily(session, rollup_horizon)
    await ensure_partitions(session, now)
    return result


async def _prune_daily(session: AsyncSession, horizon: datetime) -> int:
    """Daily rows hold tenant-local dates: a day goes once it has ended before the horizon in its
    tenant's time zone (requests of no tenant are dated in UTC; for a tenant that no longer
    exists, once it has ended everywhere, i.e. at UTC-12)."""
    d = t.UsageDaily
    zones: dict[str, list[int]] = {"UTC": [0]}
    for tenant_id, tz in (await session.execute(select(t.Tenant.id, t.Tenant.timezone))).all():
        zones.setdefault(tz, []).append(tenant_id)
    deleted = 0
    for tz, ids in zones.items():
        cutoff = horizon.astimezone(ZoneInfo(tz)).date().isoformat()
        res = await session.execute(delete(d).where(d.tenant_id.in_(ids), d.day < cutoff))
        deleted += res.rowcount  # type: ignore[attr-defined]
    known = [i for ids in zones.values() for i in ids]
    cutoff = horizon.astimezone(ZoneInfo("Etc/GMT+12")).date().isoformat()
    res = await session.execute(delete(d).where(d.tenant_id.not_in(known), d.day < cutoff))
    return deleted + res.rowcount  # type: ignore[attr-defined]
