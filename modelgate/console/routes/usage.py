"""Usage: the tenant quota (set, edit; total, used, remaining, daily trend), usage statistics
by dimension and range (list or chart view, CSV), and the monthly detail download.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from modelgate.console.context import PageContext, page
from modelgate.console.forms import FormState, opt_int, opt_str
from modelgate.console.rendering import redirect, render
from modelgate.errors import BadRequest, GatewayError
from modelgate.rbac import Permission
from modelgate.services.quotas import CYCLES, quota_status, set_tenant_quota
from modelgate.services.usage_stats import DIMENSIONS, export_month, month_bounds, stats_csv, usage_stats
from modelgate.storage import tables as t

__all__ = ["routes"]

P = Permission
RANGES = (("last_week", "Last 7 days"), ("last_month", "Last 30 days"), ("custom", "Custom dates"))
_CHART_SERIES = 8


def _date(form: FormState, key: str) -> date | None:
    raw = opt_str(form, key)
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{key} must be a date like 2030-01-31.", param=key) from None


def _months(today: date) -> list[tuple[str, str]]:
    out, y, m = [], today.year, today.month
    for _ in range(12):
        out.append((f"{y:04d}-{m:02d}", date(y, m, 1).strftime("%B %Y")))
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out


def summarise(stats: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows per name (summed over days), and a stacked-bar chart of total tokens per day."""
    by_name: dict[str, dict[str, Any]] = {}
    days: dict[str, None] = {}
    for r in stats["rows"]:
        days[r["date"]] = None
        agg = by_name.setdefault(
            r["name"],
            {
                "name": r["name"],
                "calls": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "total_tokens": 0,
                "cost": 0.0,
                "daily": {},
            },
        )
        for k in ("calls", "input_tokens", "output_tokens", "total_tokens", "cost"):
            agg[k] += r[k]
        agg["daily"][r["date"]] = agg["daily"].get(r["date"], 0) + r["total_tokens"]
    rows = sorted(by_name.values(), key=lambda a: -a["total_tokens"])
    first, last = date.fromisoformat(stats["start"]), date.fromisoformat(stats["end"])
    labels = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)] or sorted(days)
    datasets = [{"label": a["name"], "data": [a["daily"].get(d, 0) for d in labels]} for a in rows[:_CHART_SERIES]]
    rest = rows[_CHART_SERIES:]
    if rest:
        datasets.append(
            {"label": "others", "data": [sum(a["daily"].get(d, 0) for a in rest) for d in labels], "color": "#adb5bd"}
        )
    return rows, {"type": "bar", "stacked": True, "labels": labels, "datasets": datasets}


async def _usage_page(ctx: PageContext, quota_form: FormState | None = None) -> Response:
    q = ctx.request.query_params
    form = FormState(
        {
            "dimension": q.get("dimension", "endpoint"),
            "range": q.get("range", "last_week"),
            "start": q.get("start", ""),
            "end": q.get("end", ""),
            "view": q.get("view", "list"),
        }
    )
    view = "chart" if form.get("view") == "chart" else "list"

    async def op(session: AsyncSession) -> dict[str, Any]:
        tenant = await session.get(t.Tenant, ctx.tenant_id)
        out: dict[str, Any] = {"quota": None, "stats": None, "tenant": tenant}
        if ctx.can(P.TENANT_QUOTA_MANAGE):
            out["quota"] = await quota_status(session, tenant)
        try:
            out["stats"] = await usage_stats(
                session,
                ctx.actor,
                tenant,
                dimension=form.get("dimension"),
                range_=form.get("range"),
                start=_date(form, "start"),
                end=_date(form, "end"),
            )
        except GatewayError as exc:
            form.fail(exc, ("dimension", "range", "start", "end"))
        return out

    data = await ctx.read(op)
    quota = data["quota"]
    if quota_form is None:
        quota_form = FormState(
            {
                "tokens": "" if not quota or quota["total"] is None else quota["total"],
                "cycle": quota["cycle"] if quota else "monthly",
            }
        )
    rows, chart = summarise(data["stats"]) if data["stats"] else ([], None)
    trend = None
    if quota:
        trend = {
            "type": "bar",
            "labels": [d["date"] for d in quota["daily"]],
            "datasets": [{"label": "Tokens", "data": [d["tokens"] for d in quota["daily"]]}],
        }
    query = {k: form.get(k) for k in ("dimension", "range", "start", "end") if form.get(k)}
    return render(
        ctx,
        "usage.html",
        title="Usage",
        breadcrumb=[("Home", "/console"), ("Usage", None)],
        form=form,
        view=view,
        stats=data["stats"],
        rows=rows,
        chart=chart,
        quota=quota,
        trend=trend,
        quota_form=quota_form,
        cycles=CYCLES,
        dimensions=list(DIMENSIONS),
        ranges=RANGES,
        query=query,
        months=_months(date.today()),
        status=max(form.status, quota_form.status),
    )


@page
async def usage(ctx: PageContext) -> Response:
    return await _usage_page(ctx)


@page
async def set_quota(ctx: PageContext) -> Response:
    form = FormState.of(await ctx.form())
    try:
        tokens = opt_int(form, "tokens", "Quota")
        await ctx.write(lambda s: set_tenant_quota(s, ctx.actor, ctx.tenant_id, tokens, opt_str(form, "cycle")))
    except GatewayError as exc:
        if exc.status == 403:
            raise  # the page has no quota form for this user: show the refusal itself
        return await _usage_page(ctx, form.fail(exc, ("tokens", "cycle")))
    done = "Tenant quota removed." if tokens is None else f"Tenant quota set to {tokens:,} tokens per cycle."
    return redirect("/console/usage", done)


@page
async def usage_csv(ctx: PageContext) -> Response:
    q = ctx.request.query_params
    form = FormState({k: q.get(k, "") for k in ("dimension", "range", "start", "end")})

    async def op(session: AsyncSession) -> dict[str, Any]:
        tenant = await session.get(t.Tenant, ctx.tenant_id)
        return await usage_stats(
            session,
            ctx.actor,
            tenant,
            dimension=form.get("dimension") or "endpoint",
            range_=form.get("range") or "last_week",
            start=_date(form, "start"),
            end=_date(form, "end"),
        )

    stats = await ctx.read(op)
    name = f"usage-{stats['dimension']}-{stats['start']}-{stats['end']}.csv"
    return Response(
        stats_csv(stats),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


@page
async def usage_export(ctx: PageContext) -> Response:
    ctx.actor.require(P.USAGE_EXPORT, what="Only Gateway Admins may download usage details.")
    month = ctx.request.query_params.get("month", "")
    sessions, tenant_id = ctx.services.sessions, ctx.tenant_id
    async with sessions() as session:
        month_bounds(await session.get(t.Tenant, tenant_id), month)  # refuse a bad month before streaming

    async def body() -> Any:
        async with sessions() as session:
            async for chunk in export_month(session, await session.get(t.Tenant, tenant_id), month):
                yield chunk

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="usage-{month}.csv"'},
    )


routes = [
    Route("/usage", usage, methods=["GET"]),
    Route("/usage/quota", set_quota, methods=["POST"]),
    Route("/usage.csv", usage_csv, methods=["GET"]),
    Route("/usage/export", usage_export, methods=["GET"]),
]
