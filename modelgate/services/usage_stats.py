"""Usage statistics by endpoint, user, API key or tenant, per local day, from the daily rollups;
and the monthly per-request detail export, streamed.

Scoping: Gateway Admins see everything of their tenant; everyone else sees only their own
usage (their user id) on endpoints they may monitor.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.errors import BadRequest
from modelgate.rbac import Permission
from modelgate.services.context import Actor
from modelgate.storage import tables as t

__all__ = ["DIMENSIONS", "export_month", "stats_csv", "usage_stats"]

DIMENSIONS = {"endpoint": "endpoint_id", "user": "user_id", "api_key": "api_key_id", "tenant": "tenant_id"}
_RANGES = {"last_week": 7, "last_month": 30}
STAT_COLUMNS = ["dimension", "id", "name", "date", "calls", "input_tokens", "output_tokens", "total_tokens", "cost"]


def _today(tenant: t.Tenant) -> date:
    return datetime.now(ZoneInfo(tenant.timezone)).date()


def resolve_days(tenant: t.Tenant, range_: str, start: date | None, end: date | None) -> tuple[date, date]:
    if range_ in _RANGES:
        last = _today(tenant)
        return last - timedelta(days=_RANGES[range_] - 1), last
    if range_ != "custom":
        raise BadRequest("range must be last_week, last_month or custom.", param="range")
    if start is None or end is None:
        raise BadRequest("A custom range needs start and end dates (YYYY-MM-DD).", param="start")
    if end < start:
        raise BadRequest("end must not be before start.", param="end")
    if (end - start).days > 366:
        raise BadRequest("A custom range may span at most 366 days.", param="end")
    return start, end


async def _names(session: AsyncSession, dimension: str, tenant_id: int) -> dict[int, str]:
    if dimension == "endpoint":
        rows = await session.execute(select(t.Endpoint.id, t.Endpoint.name).where(t.Endpoint.tenant_id == tenant_id))
    elif dimension == "user":
        rows = await session.execute(select(t.User.id, t.User.username).where(t.User.tenant_id == tenant_id))
    elif dimension == "api_key":
        rows = await session.execute(select(t.ApiKey.id, t.ApiKey.name).where(t.ApiKey.tenant_id == tenant_id))
    else:
        rows = await session.execute(select(t.Tenant.id, t.Tenant.name).where(t.Tenant.id == tenant_id))
    return {i: n for i, n in rows.all()}


async def monitorable_endpoints(session: AsyncSession, actor: Actor) -> list[int]:
    rows = await session.execute(select(t.Grant.endpoint_id, t.Grant.role).where(t.Grant.user_id == actor.user_id))
    return [eid for eid, role in rows.all() if actor.can(Permission.ENDPOINT_MONITOR, role)]


async def usage_stats(
    session: AsyncSession, actor: Actor, tenant: t.Tenant, *, dimension: str, range_: str = "last_week",
    start: date | None = None, end: date | None = None,
) -> dict[str, Any]:  # fmt: skip
    if dimension not in DIMENSIONS:
        raise BadRequest(f"dimension must be one of {', '.join(DIMENSIONS)}.", param="dimension")
    first, last = resolve_days(tenant, range_, start, end)
    d = t.UsageDaily
    col = getattr(d, DIMENSIONS[dimension])
    stmt = (
        select(col.label("dim"), d.day, func.sum(d.requests), func.sum(d.input_tokens), func.sum(d.output_tokens),
               func.sum(d.cost))  # fmt: skip
        .where(d.tenant_id == tenant.id, d.day >= first.isoformat(), d.day <= last.isoformat())
        .group_by(col, d.day)
        .order_by(col, d.day)
    )
    scoped = not actor.can(Permission.USAGE_ALL)
    if scoped:
        stmt = stmt.where(d.user_id == actor.user_id, d.endpoint_id.in_(await monitorable_endpoints(session, actor)))
    names = await _names(session, dimension, tenant.id)
    rows = []
    totals = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "cost": 0.0}
    for dim, day, calls, tin, tout, cost in (await session.execute(stmt)).all():
        row = {"dimension": dimension, "id": int(dim), "name": names.get(int(dim), "(none)" if not dim else f"#{dim}"),
               "date": day, "calls": int(calls), "input_tokens": int(tin), "output_tokens": int(tout),
               "total_tokens": int(tin) + int(tout), "cost": round(float(cost), 6)}  # fmt: skip
        rows.append(row)
        for k in totals:
            totals[k] += row[k] if k != "cost" else float(cost)  # sum unrounded costs: no rounding drift
    totals["cost"] = round(totals["cost"], 6)
    return {"dimension": dimension, "start": first.isoformat(), "end": last.isoformat(), "timezone": tenant.timezone,
            "scoped_to_self": scoped, "rows": rows, "totals": totals}  # fmt: skip


def stats_csv(stats: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=STAT_COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(stats["rows"])
    return buf.getvalue()


EXPORT_COLUMNS = [
    "timestamp", "request_id", "endpoint", "user", "api_key", "channel", "route", "stream", "status_code",
    "error_type", "input_tokens", "output_tokens", "total_tokens", "cached_tokens", "reasoning_tokens", "estimated",
    "latency_ms", "ttft_ms", "cost",
]  # fmt: skip


def month_bounds(tenant: t.Tenant, month: str, today: date | None = None) -> tuple[datetime, datetime]:
    """The tenant-local calendar month as UTC bounds; only the last 12 months may be exported."""
    try:
        y, m = (int(p) for p in month.split("-"))
        first = date(y, m, 1)
    except ValueError:
        raise BadRequest("month must be YYYY-MM.", param="month") from None
    today = today or _today(tenant)
    this = today.replace(day=1)
    months_back = (this.year - first.year) * 12 + this.month - first.month
    if not 0 <= months_back <= 11:
        raise BadRequest("Only the last 12 months (this one included) can be exported.", param="month")
    nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    zone = ZoneInfo(tenant.timezone)
    return (datetime.combine(first, datetime.min.time(), zone).astimezone(UTC),
            datetime.combine(nxt, datetime.min.time(), zone).astimezone(UTC))  # fmt: skip


async def export_month(session: AsyncSession, tenant: t.Tenant, month: str) -> AsyncIterator[str]:
    """CSV lines of every request of the month, streamed from a server-side cursor."""
    start, end = month_bounds(tenant, month)
    endpoints = await _names(session, "endpoint", tenant.id)
    users = await _names(session, "user", tenant.id)
    keys = await _names(session, "api_key", tenant.id)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(EXPORT_COLUMNS)
    yield buf.getvalue()
    e = t.UsageEvent
    result = await session.stream(
        select(e).where(e.tenant_id == tenant.id, e.ts >= start, e.ts < end).order_by(e.ts, e.id)
        .execution_options(yield_per=2000)
    )
    async for chunk in result.scalars().partitions(2000):
        buf.seek(0)
        buf.truncate()
        for ev in chunk:
            w.writerow([
                ev.ts.isoformat(), ev.request_id, endpoints.get(ev.endpoint_id or 0, ev.endpoint_id or ""),
                users.get(ev.user_id or 0, ev.user_id or ""), keys.get(ev.api_key_id or 0, ev.api_key_id or ""),
                ev.channel, ev.route, int(ev.is_stream), ev.status_code, ev.error_type or "", ev.input_tokens,
                ev.output_tokens, ev.input_tokens + ev.output_tokens, ev.cached_tokens, ev.reasoning_tokens,
                int(ev.is_estimated), round(ev.latency_ms, 3), "" if ev.ttft_ms is None else round(ev.ttft_ms, 3),
                round(ev.cost, 8),
            ])  # fmt: skip
        yield buf.getvalue()
