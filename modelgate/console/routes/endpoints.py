"""Endpoints: the list with filters, details, test connection, copy and delete.

(Creating and editing live in ``endpoint_forms``.) Every control is shown only when the
user's tenant role or grant on that endpoint carries the permission; the services refuse the
rest anyway.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from modelgate.console.context import PageContext, page
from modelgate.console.forms import FormState
from modelgate.console.rendering import redirect, render, templates
from modelgate.errors import GatewayError, PermissionDenied
from modelgate.rbac import Permission
from modelgate.services import endpoint_views as views
from modelgate.services import endpoints as svc
from modelgate.services.endpoints import CATEGORIES
from modelgate.vendors import VENDORS

__all__ = ["routes"]

P = Permission


def _crumbs(*more: tuple[str, str | None]) -> list[tuple[str, str | None]]:
    return [("Home", "/console"), ("Endpoints", "/console/endpoints"), *more]


@page
async def endpoint_list(ctx: PageContext) -> Response:
    q = ctx.request.query_params
    filters = {k: (q.get(k) or "").strip()[:64] for k in ("category", "vendor", "status", "q")}
    rows = await ctx.read(
        lambda s: views.visible_endpoints(
            s,
            ctx.actor,
            ctx.tenant_id,
            category=filters["category"] or None,
            vendor=filters["vendor"] or None,
            status=filters["status"] or None,
            q=filters["q"] or None,
        )
    )
    vendors = sorted({*VENDORS, *(r["vendor"] for r in rows)})
    top = max((r["invocations"] for r in rows), default=0)
    return render(
        ctx,
        "endpoints/list.html",
        title="Endpoints",
        breadcrumb=[("Home", "/console"), ("Endpoints", None)],
        rows=rows,
        filters=FormState(filters),
        top=top,
        categories=CATEGORIES,
        vendors=vendors,
        filtered=any(filters.values()),
    )


async def _details(ctx: PageContext, name: str) -> dict[str, Any]:
    async def op(session: Any) -> dict[str, Any]:
        ep, role = await views.visible_endpoint(session, ctx.actor, ctx.tenant_id, name)
        details = await views.endpoint_details(session, ctx.actor, ep, role)
        details["examples"] = views.examples(ctx.services.settings.base_url, ep)
        details["warning"] = await svc.quota_warning(session, ep)
        details["is_managed"] = ep.managed_model_id is not None
        return details

    return await ctx.read(op)


def _detail_page(ctx: PageContext, ep: dict[str, Any], test: dict[str, Any] | None = None) -> Response:
    return render(
        ctx,
        "endpoints/detail.html",
        title=ep["name"],
        breadcrumb=_crumbs((ep["name"], None)),
        ep=ep,
        test=test,
        role=ep["my_role"],
    )


@page
async def endpoint_detail(ctx: PageContext) -> Response:
    return _detail_page(ctx, await _details(ctx, ctx.request.path_params["name"]))


@page
async def endpoint_test(ctx: PageContext) -> Response:
    """Test Connection: one minimal real call; the result is shown inline (htmx) or on the details page."""
    name = ctx.request.path_params["name"]
    ep, role = await ctx.read(lambda s: views.visible_endpoint(s, ctx.actor, ctx.tenant_id, name))
    if not ctx.can(P.ENDPOINT_INVOKE, role):
        raise PermissionDenied(f"You may not invoke endpoint '{name}'.")
    try:
        result = await ctx.services.gateway.test_connection(ctx.tenant_id, ctx.user.id, ep.name)
    except GatewayError as exc:
        result = {
            "success": False,
            "latency_ms": None,
            "upstream_status": None,
            "error": exc.message,
            "request_id": None,
        }
    if ctx.request.headers.get("hx-request"):
        return HTMLResponse(templates.get_template("endpoints/_test_result.html").render(test=result))
    return _detail_page(ctx, await _details(ctx, name), test=result)


@page
async def endpoint_copy(ctx: PageContext) -> Response:
    name = ctx.request.path_params["name"]
    ep, _ = await ctx.read(lambda s: views.visible_endpoint(s, ctx.actor, ctx.tenant_id, name))
    form = FormState({"name": f"{name}-copy"})
    if ctx.request.method == "POST":
        form = FormState.of(await ctx.form())

        async def op(session: Any) -> str:
            source, _ = await views.visible_endpoint(session, ctx.actor, ctx.tenant_id, name)
            copy = await svc.copy_endpoint(session, ctx.services.settings, ctx.actor, source, form.get("name").strip())
            return copy.name

        try:
            new = await ctx.write(op)
            return redirect(f"/console/endpoints/{new}", f"Endpoint {new} created as a copy of {name}.")
        except GatewayError as exc:
            form.fail(exc, ("name",))
    return render(
        ctx,
        "endpoints/copy.html",
        title=f"Copy {name}",
        status=form.status,
        breadcrumb=_crumbs((name, f"/console/endpoints/{name}"), ("Copy", None)),
        form=form,
        ep=ep,
    )


@page
async def endpoint_delete(ctx: PageContext) -> Response:
    name = ctx.request.path_params["name"]
    ep, role = await ctx.read(lambda s: views.visible_endpoint(s, ctx.actor, ctx.tenant_id, name))
    if ctx.request.method == "POST":

        async def op(session: Any) -> None:
            target, own = await views.visible_endpoint(session, ctx.actor, ctx.tenant_id, name)
            await svc.delete_endpoint(session, ctx.actor, target, confirm=True, endpoint_role=own)

        await ctx.write(op)
        return redirect("/console/endpoints", f"Endpoint {name} was deleted.")
    if not ctx.can(P.ENDPOINT_DELETE, role):
        raise PermissionDenied(f"You may not delete endpoint '{name}'.")
    return render(
        ctx,
        "endpoints/delete.html",
        title=f"Delete {name}",
        ep=ep,
        breadcrumb=_crumbs((name, f"/console/endpoints/{name}"), ("Delete", None)),
    )


routes = [
    Route("/endpoints", endpoint_list, methods=["GET"]),
    Route("/endpoints/{name}", endpoint_detail, methods=["GET"]),
    Route("/endpoints/{name}/test", endpoint_test, methods=["POST"]),
    Route("/endpoints/{name}/copy", endpoint_copy, methods=["GET", "POST"]),
    Route("/endpoints/{name}/delete", endpoint_delete, methods=["GET", "POST"]),
]
