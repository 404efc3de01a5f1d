"""Instance Admin: tenants and the managed-model catalog."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from modelgate.api.deps import Context
from modelgate.api.schemas import ManagedModelCreate, RestoreIn, TenantCreate
from modelgate.services import managed as msvc
from modelgate.services import tenants as tsvc
from modelgate.services.endpoints import endpoint_out

router = APIRouter(tags=["instance"])


@router.get("/tenants")
async def list_tenants(ctx: Context) -> list[dict[str, Any]]:
    return [tsvc.tenant_out(tn) for tn in await ctx.read(lambda s: tsvc.list_tenants(s, ctx.actor))]


@router.post("/tenants", status_code=201)
async def create_tenant(body: TenantCreate, ctx: Context) -> dict[str, Any]:
    async def op(session: Any) -> dict[str, Any]:
        created = await tsvc.create_tenant(session, ctx.actor, body.name, body.admin_username, timezone=body.timezone)
        return {**tsvc.tenant_out(created.tenant), "admin": {"id": created.admin.id,
                "username": created.admin.username, "password": created.password}}  # fmt: skip

    return await ctx.write(op)


@router.get("/managed-models")
async def list_managed(ctx: Context) -> list[dict[str, Any]]:
    return [msvc.managed_out(m) for m in await ctx.read(lambda s: msvc.list_managed_models(s, ctx.actor))]


@router.post("/managed-models", status_code=201)
async def create_managed(body: ManagedModelCreate, ctx: Context) -> dict[str, Any]:
    svc = ctx.services
    m = await ctx.write(lambda s: msvc.create_managed_model(s, svc.box, svc.settings, ctx.actor, body.model_dump()))
    return msvc.managed_out(m)


@router.delete("/managed-models/{model_id}", status_code=204)
async def delete_managed(model_id: int, ctx: Context) -> None:
    await ctx.write(lambda s: msvc.delete_managed_model(s, ctx.actor, model_id))


@router.post("/managed-models/{model_id}/restore")
async def restore_managed(model_id: int, body: RestoreIn, ctx: Context) -> dict[str, Any]:
    ep = await ctx.write(lambda s: msvc.restore_managed_endpoint(s, ctx.actor, model_id, body.tenant))
    return endpoint_out(ep)
