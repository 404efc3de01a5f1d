"""Overview: the signed-in user's landing page (what they can reach, at a glance)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import Route

from modelgate.console.context import PageContext, page
from modelgate.console.rendering import render
from modelgate.rbac import Permission
from modelgate.services import endpoint_views as views
from modelgate.services import keys as ksvc
from modelgate.services.quotas import quota_status
from modelgate.storage import tables as t

__all__ = ["routes"]


@page
async def overview(ctx: PageContext) -> Response:
    async def op(session: AsyncSession) -> dict[str, Any]:
        endpoints = await views.visible_endpoints(session, ctx.actor, ctx.tenant_id)
        keys = await ksvc.list_keys(session, ctx.actor, ctx.tenant_id)
        quota = None
        if ctx.can(Permission.TENANT_QUOTA_MANAGE):
            tenant = await session.get(t.Tenant, ctx.tenant_id)
            quota = await quota_status(session, tenant)
        return {"endpoints": endpoints, "keys": keys, "quota": quota}

    data = await ctx.read(op)
    top = sorted(data["endpoints"], key=lambda e: -e["invocations"])[:8]
    return render(
        ctx,
        "overview.html",
        title="Overview",
        breadcrumb=[("Home", "/console"), ("Overview", None)],
        top=top,
        endpoint_count=len(data["endpoints"]),
        invocations=sum(e["invocations"] for e in data["endpoints"]),
        active_keys=sum(1 for k, _ in data["keys"] if k.status == "active"),
        quota=data["quota"],
    )


routes = [Route("/", overview, methods=["GET"])]
