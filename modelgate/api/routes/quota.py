"""Tenant quota status and edits; endpoint quota status."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import Field

from modelgate.api.deps import Context
from modelgate.api.schemas import _In
from modelgate.rbac import Permission
from modelgate.services import endpoint_views as views
from modelgate.services.quotas import quota_status, set_tenant_quota
from modelgate.storage import tables as t

router = APIRouter(tags=["quota"])


class QuotaSet(_In):
    tokens: Annotated[int, Field(ge=0, le=10**15)] | None
    cycle: Literal["daily", "weekly", "monthly"] | None = None


@router.get("/quota")
async def get_quota(ctx: Context) -> dict[str, Any]:
    ctx.actor.require(Permission.TENANT_QUOTA_MANAGE, what="Only Gateway Admins may see the tenant quota.")

    async def op(session: Any) -> dict[str, Any]:
        tenant = await session.get(t.Tenant, ctx.tenant_id)
        return await quota_status(session, tenant)

    return await ctx.read(op)


@router.put("/quota")
async def put_quota(body: QuotaSet, ctx: Context) -> dict[str, Any]:
    async def op(session: Any) -> dict[str, Any]:
        tenant = await set_tenant_quota(session, ctx.actor, ctx.tenant_id, body.tokens, body.cycle)
        await session.flush()
        return await quota_status(session, tenant)

    return await ctx.write(op)


@router.get("/endpoints/{name}/quota")
async def endpoint_quota(name: str, ctx: Context) -> dict[str, Any]:
    async def op(session: Any) -> dict[str, Any]:
        ep, role = await views.visible_endpoint(session, ctx.actor, ctx.tenant_id, name)
        ctx.actor.require(Permission.ENDPOINT_MONITOR, role, what=f"You may not see the usage of endpoint '{name}'.")
        tenant = await session.get(t.Tenant, ctx.tenant_id)
        status = await quota_status(session, tenant, endpoint=ep)
        tenant_status = await quota_status(session, tenant)
        if tenant_status["remaining"] is not None and (
            status["remaining"] is None or tenant_status["remaining"] < status["remaining"]
        ):
            status["effective_remaining"] = tenant_status["remaining"]
        else:
            status["effective_remaining"] = status["remaining"]
        return status

    return await ctx.read(op)
