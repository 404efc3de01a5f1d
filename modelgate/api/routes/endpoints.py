"""Endpoints: the models of the tenant, by name."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from modelgate.api.deps import Context
from modelgate.api.schemas import EndpointCopy, EndpointCreate, EndpointUpdate
from modelgate.errors import BadRequest, PermissionDenied
from modelgate.rbac import Permission
from modelgate.services import endpoint_views as views
from modelgate.services import endpoints as svc
from modelgate.storage import tables as t
from modelgate.vendors import VENDORS, vendor_base_url

router = APIRouter(tags=["endpoints"])


@router.get("/vendors")
async def vendors(ctx: Context) -> list[dict[str, Any]]:
    _ = ctx.principal
    return [v.as_json() for v in VENDORS.values()]


@router.get("/endpoints")
async def list_endpoints(
    ctx: Context, category: str | None = None, vendor: str | None = None, status: str | None = None,
    q: str | None = Query(default=None, max_length=64),
) -> list[dict[str, Any]]:  # fmt: skip
    return await ctx.read(lambda s: views.visible_endpoints(s, ctx.actor, ctx.tenant_id, category=category,
                                                            vendor=vendor, status=status, q=q))  # fmt: skip


async def _create_values(session: Any, body: EndpointCreate) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=True, exclude={"region", "managed_model"})
    values.setdefault("kind", "custom")
    if body.kind == "preset":
        vendor = VENDORS.get(body.vendor or "")
        if vendor is None:
            raise BadRequest(f"Unknown vendor {body.vendor!r}; see GET /api/v1/vendors.", param="vendor")
        category = body.category or "llm"
        if category not in vendor.categories:
            raise BadRequest(f"{vendor.name} does not offer '{category}' models here "
                             f"(it offers {', '.join(vendor.categories)}).", param="category")  # fmt: skip
        if body.base_url is None:
            url = vendor_base_url(vendor.id, body.region)
            if url is None:
                raise BadRequest(f"Unknown region {body.region!r} for {vendor.name}; choose one of "
                                 f"{', '.join(vendor.regions)}.", param="region")  # fmt: skip
            values["base_url"] = url
        values["api_family"] = vendor.api_family
    elif body.kind == "managed":
        m = (
            await session.execute(select(t.ManagedModel).where(t.ManagedModel.name == (body.managed_model or "")))
        ).scalar_one_or_none()
        if m is None:
            raise BadRequest(f"Unknown managed model {body.managed_model!r}.", param="managed_model")
        if {"base_url", "credential_id"} & set(values):
            raise BadRequest("A managed endpoint takes its base URL and credential from the catalog.",
                             param="base_url")  # fmt: skip
        values.update(managed_model_id=m.id, vendor=m.vendor, category=m.category, model_version=m.model_version)
    values.pop("api_family", None)
    return values


async def _with_warnings(session: Any, ep: t.Endpoint) -> dict[str, Any]:
    out = svc.endpoint_out(ep)
    warning = await svc.quota_warning(session, ep)
    if warning:
        out["warnings"] = [warning]
    return out


@router.post("/endpoints", status_code=201)
async def create_endpoint(body: EndpointCreate, ctx: Context) -> dict[str, Any]:
    async def op(session: Any) -> dict[str, Any]:
        values = await _create_values(session, body)
        ep = await svc.create_endpoint(session, ctx.services.settings, ctx.actor, ctx.tenant_id, values)
        return await _with_warnings(session, ep)

    return await ctx.write(op)


@router.get("/endpoints/{name}")
async def get_endpoint(name: str, ctx: Context) -> dict[str, Any]:
    async def op(session: Any) -> dict[str, Any]:
        ep, role = await views.visible_endpoint(session, ctx.actor, ctx.tenant_id, name)
        return await views.endpoint_details(session, ctx.actor, ep, role)

    return await ctx.read(op)


@router.patch("/endpoints/{name}")
async def update_endpoint(name: str, body: EndpointUpdate, ctx: Context) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=True)

    async def op(session: Any) -> dict[str, Any]:
        ep, role = await views.visible_endpoint(session, ctx.actor, ctx.tenant_id, name)
        ep = await svc.update_endpoint(session, ctx.services.settings, ctx.actor, ep, values, role)
        return await _with_warnings(session, ep)

    return await ctx.write(op)


@router.delete("/endpoints/{name}", status_code=204)
async def delete_endpoint(name: str, ctx: Context, confirm: bool = False) -> None:
    async def op(session: Any) -> None:
        ep, role = await views.visible_endpoint(session, ctx.actor, ctx.tenant_id, name)
        await svc.delete_endpoint(session, ctx.actor, ep, confirm=confirm, endpoint_role=role)

    await ctx.write(op)


@router.post("/endpoints/{name}/copy", status_code=201)
async def copy_endpoint(name: str, body: EndpointCopy, ctx: Context) -> dict[str, Any]:
    async def op(session: Any) -> dict[str, Any]:
        ep, _ = await views.visible_endpoint(session, ctx.actor, ctx.tenant_id, name)
        return svc.endpoint_out(await svc.copy_endpoint(session, ctx.services.settings, ctx.actor, ep, body.name))

    return await ctx.write(op)


@router.post("/endpoints/{name}/test")
async def test_endpoint(name: str, ctx: Context) -> dict[str, Any]:
    ep, role = await ctx.read(lambda s: views.visible_endpoint(s, ctx.actor, ctx.tenant_id, name))
    if not ctx.actor.can(Permission.ENDPOINT_INVOKE, role):
        raise PermissionDenied(f"You may not invoke endpoint '{name}'.")
    return await ctx.services.gateway.test_connection(ctx.tenant_id, ctx.principal.user.id, ep.name)


@router.get("/endpoints/{name}/history")
async def endpoint_history(name: str, ctx: Context) -> list[dict[str, Any]]:
    async def op(session: Any) -> list[dict[str, Any]]:
        ep, _ = await views.visible_endpoint(session, ctx.actor, ctx.tenant_id, name)
        return await views.endpoint_history(session, ep)

    return await ctx.read(op)


@router.get("/endpoints/{name}/examples")
async def endpoint_examples(name: str, ctx: Context) -> dict[str, str]:
    ep, _ = await ctx.read(lambda s: views.visible_endpoint(s, ctx.actor, ctx.tenant_id, name))
    return views.examples(ctx.services.settings.base_url, ep)
