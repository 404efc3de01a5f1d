"""Instance administration: tenants and the managed-model catalog.

These pages are the console face of ``/api/v1/tenants`` and ``/api/v1/managed-models`` and call
the same services (``modelgate.services.tenants`` and ``modelgate.services.managed``), which
check the Instance Admin permissions again and validate every value. Each handler also asks
rbac up front (through ``ctx.can``), so a tenant's users get the 403 page before anything is
read. A new tenant's admin password appears only in the response to the POST that created it.

Tenants cannot be deleted or restored here: the tenant service has no such operation (the
admin API and the CLI have none either), and a console must not invent one.
"""

from __future__ import annotations

from functools import cache
from typing import Any
from zoneinfo import available_timezones

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import Route

from modelgate.console.context import PageContext, page
from modelgate.console.forms import FormState, opt_str
from modelgate.console.rendering import redirect, render
from modelgate.errors import GatewayError, NotFound, PermissionDenied
from modelgate.rbac import Permission
from modelgate.services import managed as msvc
from modelgate.services import tenants as tsvc
from modelgate.services.endpoints import CATEGORIES
from modelgate.storage import tables as t
from modelgate.vendors import VENDORS

__all__ = ["routes"]

P = Permission
HOME = ("Home", "/console")
_TENANTS = HOME, ("Tenants", "/console/tenants")
_MODELS = HOME, ("Managed models", "/console/managed-models")
TENANT_FIELDS = ("name", "timezone", "admin_username")
MODEL_FIELDS = ("name", "vendor", "category", "base_url", "model_version", "secret", "description")
CATEGORY_LABELS = {"llm": "LLM (chat / completions)", "embedding": "Embedding", "image": "Image generation"}


def _require(ctx: PageContext, permission: Permission, message: str) -> None:
    """Refuse early, with the same wording as the service would, for every method of the route."""
    if not ctx.can(permission):
        raise PermissionDenied(message)


def _require_tenants(ctx: PageContext) -> None:
    _require(ctx, P.TENANTS_MANAGE, "Only the Instance Admin manages tenants.")


def _require_models(ctx: PageContext) -> None:
    _require(ctx, P.MANAGED_MODELS_MANAGE, "Only the Instance Admin manages the managed-model catalog.")


@cache
def _timezones() -> tuple[str, ...]:
    """Suggestions for the time-zone field (the service decides what is valid)."""
    return tuple(sorted(available_timezones()))


# -- tenants
@page
async def tenant_list(ctx: PageContext) -> Response:
    _require_tenants(ctx)
    tenants = await ctx.read(lambda s: tsvc.list_tenants(s, ctx.actor))
    return render(
        ctx,
        "instance/tenants.html",
        title="Tenants",
        breadcrumb=[HOME, ("Tenants", None)],
        tenants=[tsvc.tenant_out(tn) for tn in tenants],
    )


@page
async def tenant_new(ctx: PageContext) -> Response:
    _require_tenants(ctx)
    form = FormState({"timezone": "UTC", "admin_username": "admin"})
    if ctx.request.method == "POST":
        form = FormState.of(await ctx.form())

        async def op(session: AsyncSession) -> dict[str, Any]:
            created = await tsvc.create_tenant(
                session,
                ctx.actor,
                form.get("name").strip(),
                form.get("admin_username").strip(),
                timezone=form.get("timezone").strip() or "UTC",
            )
            return {**tsvc.tenant_out(created.tenant), "admin": created.admin.username, "password": created.password}

        try:
            tenant = await ctx.write(op)
            return render(
                ctx,
                "instance/tenant_created.html",
                title="Tenant created",
                breadcrumb=[*_TENANTS, (tenant["name"], None)],
                tenant=tenant,
            )
        except GatewayError as exc:
            form.fail(exc, TENANT_FIELDS)
    return render(
        ctx,
        "instance/tenant_new.html",
        title="New tenant",
        breadcrumb=[*_TENANTS, ("New", None)],
        form=form,
        timezones=_timezones(),
        status=form.status,
    )


# -- managed-model catalog
async def _catalog(ctx: PageContext, session: AsyncSession) -> list[dict[str, Any]]:
    """The catalog, each entry with the tenants that deleted their endpoint of it (restorable).

    The service call comes first: it refuses anyone but the Instance Admin before the second
    (read-only) query looks across tenants.
    """
    models = await msvc.list_managed_models(session, ctx.actor)
    rows = await session.execute(
        select(t.Endpoint.managed_model_id, t.Tenant.name)
        .join(t.Tenant, t.Tenant.id == t.Endpoint.tenant_id)
        .where(t.Endpoint.managed_model_id.is_not(None), t.Endpoint.deleted_at.is_not(None))
        .order_by(t.Tenant.name)
    )
    deleted: dict[int, list[str]] = {}
    for model_id, tenant_name in rows.all():
        deleted.setdefault(model_id, []).append(tenant_name)
    return [{**msvc.managed_out(m), "deleted_in": deleted.get(m.id, [])} for m in models]


@page
async def model_list(ctx: PageContext) -> Response:
    _require_models(ctx)
    models = await ctx.read(lambda s: _catalog(ctx, s))
    return render(
        ctx,
        "instance/models.html",
        title="Managed models",
        breadcrumb=[HOME, ("Managed models", None)],
        models=models,
    )


def _vendor_options() -> list[tuple[str, str]]:
    return [*((v.id, v.name) for v in VENDORS.values()), ("custom", "Other (OpenAI-compatible)")]


def _base_url_suggestions() -> list[str]:
    return sorted({url for v in VENDORS.values() for url in v.regions.values()})


@page
async def model_new(ctx: PageContext) -> Response:
    _require_models(ctx)
    form = FormState({"vendor": "custom", "category": "llm"})
    if ctx.request.method == "POST":
        form = FormState.of(await ctx.form())
        values = {
            "name": form.get("name").strip(),
            "vendor": opt_str(form, "vendor") or "custom",
            "category": opt_str(form, "category") or "llm",
            "base_url": form.get("base_url"),
            "model_version": form.get("model_version"),
            "secret": form.get("secret"),
            "description": opt_str(form, "description"),
        }
        svc = ctx.services
        try:
            m = await ctx.write(lambda s: msvc.create_managed_model(s, svc.box, svc.settings, ctx.actor, values))
            return redirect(
                "/console/managed-models",
                f"Managed model {m.name} added: every tenant now has an endpoint named {m.name}.",
            )
        except GatewayError as exc:
            form.fail(exc, MODEL_FIELDS)
    form.values.pop("secret", None)  # a secret is never sent back to the browser
    return render(
        ctx,
        "instance/model_new.html",
        title="Add managed model",
        breadcrumb=[*_MODELS, ("Add", None)],
        form=form,
        vendors=_vendor_options(),
        categories=[(c, CATEGORY_LABELS.get(c, c)) for c in CATEGORIES],
        base_urls=_base_url_suggestions(),
        status=form.status,
    )


async def _model(ctx: PageContext, model_id: int) -> dict[str, Any]:
    models = await ctx.read(lambda s: msvc.list_managed_models(s, ctx.actor))
    found = next((m for m in models if m.id == model_id), None)
    if found is None:
        raise NotFound(f"Managed model {model_id} does not exist.", code="not_found")
    return msvc.managed_out(found)


@page
async def model_delete(ctx: PageContext) -> Response:
    _require_models(ctx)
    model_id = int(ctx.request.path_params["model_id"])
    model = await _model(ctx, model_id)
    if ctx.request.method == "POST":
        await ctx.write(lambda s: msvc.delete_managed_model(s, ctx.actor, model_id))
        return redirect("/console/managed-models", f"Managed model {model['name']} deleted.")
    return render(
        ctx,
        "confirm.html",
        title=f"Delete {model['name']}",
        breadcrumb=[*_MODELS, (model["name"], None), ("Delete", None)],
        action=f"/console/managed-models/{model_id}/delete",
        cancel="/console/managed-models",
        button=f"Delete {model['name']}",
        message=f"Deleting managed model {model['name']} removes the endpoint {model['name']} from every tenant: "
        "their clients are refused from the next request on, and their grants and limits on it are lost.",
    )


@page
async def model_restore(ctx: PageContext) -> Response:
    """Undo a tenant's deletion of its endpoint of a managed model (the service decides if it can)."""
    _require_models(ctx)
    model_id = int(ctx.request.path_params["model_id"])
    tenant = str((await ctx.form()).get("tenant") or "").strip()
    ep = await ctx.write(lambda s: msvc.restore_managed_endpoint(s, ctx.actor, model_id, tenant))
    return redirect("/console/managed-models", f"Endpoint {ep.name} restored in tenant {tenant}.")


routes = [
    Route("/tenants", tenant_list, methods=["GET"]),
    Route("/tenants/new", tenant_new, methods=["GET", "POST"]),
    Route("/managed-models", model_list, methods=["GET"]),
    Route("/managed-models/new", model_new, methods=["GET", "POST"]),
    Route("/managed-models/{model_id:int}/delete", model_delete, methods=["GET", "POST"]),
    Route("/managed-models/{model_id:int}/restore", model_restore, methods=["POST"]),
]
