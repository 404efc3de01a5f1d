"""Who may do what: users of the tenant, Gateway Admins, endpoint role grants.

The Gateway Admin rules of DESIGN.md §2 (nobody removes themselves; one always remains) are
enforced by the services; this page states them up front and shows their exact refusal.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import Route

from modelgate.console.context import PageContext, page
from modelgate.console.forms import FormState, opt_str
from modelgate.console.rendering import redirect, render
from modelgate.errors import GatewayError, PermissionDenied
from modelgate.rbac import EndpointRole, Permission
from modelgate.services import admins as asvc
from modelgate.services import endpoint_views as views
from modelgate.services import grants as gsvc
from modelgate.services import users as usvc

__all__ = ["routes"]

P = Permission
HOME = ("Home", "/console")
ROLE_HELP = {
    EndpointRole.ENDPOINT_ADMIN: "edit, delete, grant, monitor, audit, invoke",
    EndpointRole.ENDPOINT_OPERATOR: "edit (not quota), monitor, invoke",
    EndpointRole.ENDPOINT_USER: "invoke and monitor",
    EndpointRole.ENDPOINT_VIEWER: "see and monitor only",
}


# -- users
@page
async def user_list(ctx: PageContext) -> Response:
    users = await ctx.read(lambda s: usvc.list_users(s, ctx.actor, ctx.tenant_id))
    return render(ctx, "access/users.html", title="Users", breadcrumb=[HOME, ("Users", None)], users=users)


@page
async def user_new(ctx: PageContext) -> Response:
    if not ctx.can(P.USERS_MANAGE):
        raise PermissionDenied("Only Gateway Admins may add users.")
    form = FormState()
    if ctx.request.method == "POST":
        form = FormState.of(await ctx.form())
        try:
            user, generated = await ctx.write(
                lambda s: usvc.create_user(
                    s,
                    ctx.actor,
                    ctx.tenant_id,
                    username=form.get("username").strip(),
                    password=opt_str(form, "password"),
                    display_name=opt_str(form, "display_name"),
                )
            )
            if generated is None:
                return redirect("/console/users", f"User {user.username} added.")
            return render(
                ctx,
                "access/user_created.html",
                title="User added",
                user=user,
                password=generated,
                breadcrumb=[HOME, ("Users", "/console/users"), (user.username, None)],
            )
        except GatewayError as exc:
            form.fail(exc, ("username", "password", "display_name"))
    form.values.pop("password", None)
    return render(
        ctx,
        "access/user_new.html",
        title="Add user",
        form=form,
        status=form.status,
        breadcrumb=[HOME, ("Users", "/console/users"), ("Add", None)],
    )


@page
async def user_active(ctx: PageContext) -> Response:
    user_id = int(ctx.request.path_params["user_id"])
    active = ctx.request.url.path.endswith("/activate")
    user = await ctx.write(lambda s: usvc.update_user(s, ctx.actor, ctx.tenant_id, user_id, {"is_active": active}))
    return redirect("/console/users", f"User {user.username} {'activated' if active else 'deactivated'}.")


# -- gateway admins
async def _admins_page(ctx: PageContext, form: FormState | None = None) -> Response:
    async def op(session: AsyncSession) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return await asvc.list_gateway_admins(session, ctx.actor, ctx.tenant_id), await usvc.list_users(
            session, ctx.actor, ctx.tenant_id
        )

    admins, users = await ctx.read(op)
    ids = {a["user_id"] for a in admins}
    candidates = [(u["id"], u["username"]) for u in users if u["id"] not in ids and u["is_active"]]
    form = form or FormState()
    return render(
        ctx,
        "access/admins.html",
        title="Gateway Admins",
        breadcrumb=[HOME, ("Gateway Admins", None)],
        admins=admins,
        candidates=candidates,
        form=form,
        status=form.status,
    )


@page
async def admin_list(ctx: PageContext) -> Response:
    if ctx.request.method == "GET":
        return await _admins_page(ctx)
    form = FormState.of(await ctx.form())
    try:
        raw = (form.get("user_id") or "").strip()
        user_id = int(raw) if raw.isdigit() else -1
        added = await ctx.write(lambda s: asvc.add_gateway_admin(s, ctx.actor, ctx.tenant_id, user_id))
    except GatewayError as exc:
        return await _admins_page(ctx, form.fail(exc, ("user_id",)))
    return redirect("/console/admins", f"{added['username']} is now a Gateway Admin.")


@page
async def admin_remove(ctx: PageContext) -> Response:
    user_id = int(ctx.request.path_params["user_id"])
    if ctx.request.method == "POST":
        try:
            await ctx.write(lambda s: asvc.remove_gateway_admin(s, ctx.actor, ctx.tenant_id, user_id))
        except GatewayError as exc:
            return await _admins_page(ctx, FormState().fail(exc))
        return redirect("/console/admins", "Gateway Admin removed.")
    admins = await ctx.read(lambda s: asvc.list_gateway_admins(s, ctx.actor, ctx.tenant_id))
    name = next((a["username"] for a in admins if a["user_id"] == user_id), f"user {user_id}")
    return render(
        ctx,
        "confirm.html",
        title=f"Remove {name}",
        action=f"/console/admins/{user_id}/remove",
        breadcrumb=[HOME, ("Gateway Admins", "/console/admins"), (name, None), ("Remove", None)],
        cancel="/console/admins",
        button=f"Remove {name} as Gateway Admin",
        message=f"{name} loses Gateway Admin rights on the very next request (their endpoint grants stay).",
    )


# -- endpoint grants
@page
async def grant_list(ctx: PageContext) -> Response:
    q = ctx.request.query_params
    filters = FormState({"user": q.get("user", "").strip()[:128], "endpoint": q.get("endpoint", "").strip()[:64]})

    async def op(session: AsyncSession) -> tuple[list[dict[str, Any]], dict[str, str | None]]:
        grants = await gsvc.list_grants(
            session,
            ctx.actor,
            ctx.tenant_id,
            username=filters.get("user") or None,
            endpoint=filters.get("endpoint") or None,
        )
        mine = {e["name"]: e["my_role"] for e in await views.visible_endpoints(session, ctx.actor, ctx.tenant_id)}
        return grants, mine

    grants, my_roles = await ctx.read(op)
    for g in grants:  # a revoke button only where the user's own role allows granting
        g["can_revoke"] = ctx.can(P.ENDPOINT_GRANT, my_roles.get(g["endpoint"]))
    return render(
        ctx,
        "access/grants.html",
        title="Endpoint permissions",
        breadcrumb=[HOME, ("Endpoint permissions", None)],
        grants=grants,
        filters=filters,
        role_help=ROLE_HELP,
        can_grant=ctx.can_any(P.ENDPOINT_GRANT),
    )


@page
async def grant_new(ctx: PageContext) -> Response:
    if not ctx.can_any(P.ENDPOINT_GRANT):
        raise PermissionDenied("You may not grant roles on any endpoint.")

    async def options(session: AsyncSession) -> tuple[list[str], list[tuple[str, str]]]:
        visible = await views.visible_endpoints(session, ctx.actor, ctx.tenant_id)
        grantable = [e["name"] for e in visible if ctx.can(P.ENDPOINT_GRANT, e["my_role"])]
        users = []
        if ctx.can(P.USERS_MANAGE):
            users = [(u["username"], u["username"]) for u in await usvc.list_users(session, ctx.actor, ctx.tenant_id)]
        return grantable, users

    grantable, users = await ctx.read(options)
    endpoint = ctx.request.query_params.get("endpoint")
    form = FormState({"role": EndpointRole.ENDPOINT_USER, "endpoints": [endpoint] if endpoint else []})
    if ctx.request.method == "POST":
        form = FormState.of(await ctx.form())
        chosen = form.values.get("endpoints") or []
        chosen = [chosen] if isinstance(chosen, str) else chosen
        form.values["endpoints"] = chosen
        try:
            done = await ctx.write(
                lambda s: gsvc.grant_roles(
                    s,
                    ctx.actor,
                    ctx.tenant_id,
                    username=form.get("username").strip(),
                    role=form.get("role"),
                    endpoints=chosen,
                )
            )
            names = ", ".join(g["endpoint"] for g in done)
            return redirect("/console/grants", f"{form.get('username')} is now {form.get('role')} on {names}.")
        except GatewayError as exc:
            form.fail(exc, ("username", "role", "endpoints"))
    roles = [(r.value, f"{r.value} — {ROLE_HELP[r]}") for r in EndpointRole]
    return render(
        ctx,
        "access/grant_new.html",
        title="Grant endpoint access",
        form=form,
        roles=roles,
        users=users,
        grantable=grantable,
        status=form.status,
        breadcrumb=[HOME, ("Endpoint permissions", "/console/grants"), ("Grant", None)],
    )


@page
async def grant_revoke(ctx: PageContext) -> Response:
    grant_id = int(ctx.request.path_params["grant_id"])
    await ctx.write(lambda s: gsvc.revoke_grant(s, ctx.actor, ctx.tenant_id, grant_id))
    target = (await ctx.form()).get("next")
    back = target if isinstance(target, str) and target.startswith("/console/") else "/console/grants"
    return redirect(back, "Role revoked; it stops working from the next request on.")


routes = [
    Route("/users", user_list, methods=["GET"]),
    Route("/users/new", user_new, methods=["GET", "POST"]),
    Route("/users/{user_id:int}/activate", user_active, methods=["POST"]),
    Route("/users/{user_id:int}/deactivate", user_active, methods=["POST"]),
    Route("/admins", admin_list, methods=["GET", "POST"]),
    Route("/admins/{user_id:int}/remove", admin_remove, methods=["GET", "POST"]),
    Route("/grants", grant_list, methods=["GET"]),
    Route("/grants/new", grant_new, methods=["GET", "POST"]),
    Route("/grants/{grant_id:int}/revoke", grant_revoke, methods=["POST"]),
]
