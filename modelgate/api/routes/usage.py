"""Usage statistics, monthly detail export and endpoint monitoring."""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Query
from starlette.responses import Response, StreamingResponse

from modelgate.api.deps import Context
from modelgate.rbac import Permission
from modelgate.services import endpoint_views as views
from modelgate.services.monitoring import endpoint_metrics, parse_range
from modelgate.services.usage_stats import export_month, month_bounds, stats_csv, usage_stats
from modelgate.storage import tables as t

router = APIRouter(tags=["usage"])


@router.get("/usage", response_model=None)
async def get_usage(
    ctx: Context, dimension: str = "endpoint", range: str = "last_week", start: date | None = None,
    end: date | None = None, format: str = Query(default="json", pattern="^(json|csv)$"),
) -> dict[str, Any] | Response:  # fmt: skip
    async def op(session: Any) -> dict[str, Any]:
        tenant = await session.get(t.Tenant, ctx.tenant_id)
        return await usage_stats(session, ctx.actor, tenant, dimension=dimension, range_=range, start=start, end=end)

    stats = await ctx.read(op)
    if format == "csv":
        name = f"usage-{dimension}-{stats['start']}-{stats['end']}.csv"
        return Response(stats_csv(stats), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": f'attachment; filename="{name}"'})  # fmt: skip
    return stats


@router.get("/usage/export", response_model=None)
async def export(ctx: Context, month: str = Query(pattern=r"^\d{4}-\d{2}$")) -> StreamingResponse:
    ctx.actor.require(Permission.USAGE_EXPORT, what="Only Gateway Admins may download usage details.")
    sessions = ctx.services.sessions
    tenant_id = ctx.tenant_id
    async with sessions() as session:
        tenant = await session.get(t.Tenant, tenant_id)
        month_bounds(tenant, month)  # validate before the response starts

    async def body() -> Any:
        async with sessions() as session:
            tn = await session.get(t.Tenant, tenant_id)
            async for chunk in export_month(session, tn, month):
                yield chunk

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                             headers={"content-disposition": f'attachment; filename="usage-{month}.csv"'})  # fmt: skip


@router.get("/endpoints/{name}/metrics")
async def get_metrics(
    name: str, ctx: Context, range: str | None = None, start: datetime | None = None, end: datetime | None = None,
    granularity: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    async def op(session: Any) -> dict[str, Any]:
        ep, role = await views.visible_endpoint(session, ctx.actor, ctx.tenant_id, name)
        ctx.actor.require(Permission.ENDPOINT_MONITOR, role, what=f"You may not monitor endpoint '{name}'.")
        start_s, end_s = parse_range(range, start, end, time.time())
        return {"endpoint": name, **await endpoint_metrics(session, ep.id, start_s, end_s, granularity)}

    return await ctx.read(op)
