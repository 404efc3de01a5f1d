"""Monitoring of one endpoint: KPI panel, trend charts, error breakdown, time range picker.

Ranges run from 1 minute to 60 days (``monitoring.parse_range``); the charts read their data
from JSON embedded in the page, so the page needs no second request.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import Route

from modelgate.console.context import PageContext, page
from modelgate.console.forms import FormState
from modelgate.console.rendering import render
from modelgate.errors import BadRequest, GatewayError
from modelgate.rbac import Permission
from modelgate.services import endpoint_views as views
from modelgate.services.monitoring import endpoint_metrics, parse_range

__all__ = ["RANGES", "routes"]

RANGES = (
    ("1m", "Last minute"),
    ("5m", "5 minutes"),
    ("15m", "15 minutes"),
    ("1h", "1 hour"),
    ("6h", "6 hours"),
    ("1d", "24 hours"),
    ("7d", "7 days"),
    ("30d", "30 days"),
    ("60d", "60 days"),
    ("custom", "Custom…"),
)


def _label(iso: str, granularity: str) -> str:
    ts = datetime.fromisoformat(iso)
    return ts.strftime("%H:%M" if granularity == "minute" else "%m-%d %H:00" if granularity == "hour" else "%Y-%m-%d")


def charts(metrics: dict[str, Any]) -> dict[str, Any]:
    """Chart specs (labels + datasets) for the four trend charts."""
    series, gran = metrics["series"], metrics["granularity"]
    labels = [_label(p["t"], gran) for p in series]

    def col(key: str) -> list[Any]:
        return [p[key] for p in series]

    return {
        "requests": {
            "type": "bar",
            "labels": labels,
            "stacked": True,
            "datasets": [
                {"label": "Successes", "data": col("successes"), "color": "#12b886"},
                {"label": "Errors", "data": col("errors"), "color": "#e8590c"},
            ],
        },
        "success": {
            "type": "line",
            "labels": labels,
            "percent": True,
            "datasets": [{"label": "Success rate", "data": col("success_rate"), "fill": True}],
        },
        "latency": {
            "type": "line",
            "labels": labels,
            "datasets": [
                {"label": "Average (ms)", "data": col("latency_avg_ms")},
                {"label": "p95 (ms)", "data": col("latency_p95_ms"), "color": "#f59f00"},
            ],
        },
        "tokens": {
            "type": "bar",
            "labels": labels,
            "stacked": True,
            "datasets": [
                {"label": "Input tokens", "data": col("input_tokens")},
                {"label": "Output tokens", "data": col("output_tokens"), "color": "#ae3ec9"},
            ],
        },
    }


def _when(form: FormState, key: str) -> datetime | None:
    raw = (form.get(key) or "").strip()
    if not raw:
        return None
    try:
        from datetime import UTC

        value = datetime.fromisoformat(raw)
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest(f"{key} must be a date and time like 2030-01-31T18:00.", param=key) from None


@page
async def monitoring(ctx: PageContext) -> Response:
    q = ctx.request.query_params
    form = FormState({k: q.get(k, "") for k in ("endpoint", "range", "start", "end")})
    if not form.get("range"):
        form.values["range"] = "custom" if form.get("start") else "1h"

    async def op(session: AsyncSession) -> dict[str, Any]:
        visible = await views.visible_endpoints(session, ctx.actor, ctx.tenant_id)
        names = [e["name"] for e in visible if ctx.can(Permission.ENDPOINT_MONITOR, e["my_role"])]
        out: dict[str, Any] = {"names": names, "metrics": None}
        name = form.get("endpoint") or (names[0] if names else "")
        form.values["endpoint"] = name
        if not name:
            return out
        ep, role = await views.visible_endpoint(session, ctx.actor, ctx.tenant_id, name)
        ctx.actor.require(Permission.ENDPOINT_MONITOR, role, what=f"You may not monitor endpoint '{name}'.")
        try:
            if form.get("range") == "custom":
                start_s, end_s = parse_range(None, _when(form, "start"), _when(form, "end"), time.time())
            else:
                start_s, end_s = parse_range(form.get("range"), None, None, time.time())
        except GatewayError as exc:
            form.fail(exc, ("range", "start", "end"))
            start_s, end_s = parse_range("1h", None, None, time.time())
        out["metrics"] = await endpoint_metrics(session, ep.id, start_s, end_s)
        return out

    data = await ctx.read(op)
    metrics = data["metrics"]
    crumbs: list[tuple[str, str | None]] = [("Home", "/console"), ("Monitoring", "/console/monitoring")]
    if form.get("endpoint"):
        crumbs.append((form.get("endpoint"), None))
    errors = []
    if metrics:
        by_type = metrics["overview"]["errors_by_type"]
        total = sum(by_type.values())
        errors = [(k, v, v / total if total else 0) for k, v in sorted(by_type.items(), key=lambda kv: -kv[1]) if v]
    return render(
        ctx,
        "monitoring.html",
        title="Monitoring",
        breadcrumb=crumbs,
        form=form,
        names=data["names"],
        metrics=metrics,
        charts=charts(metrics) if metrics else None,
        ranges=RANGES,
        errors=errors,
        status=form.status,
    )


routes = [Route("/monitoring", monitoring, methods=["GET"])]
