"""Sign in, sign out and switch tenant.

Sign-in forms carry a login CSRF token (a double-submit cookie), since there is no session yet.
Switching tenant is a fresh sign-in to the other tenant's account of the same username, with that
account's password (the same username in two tenants may have two passwords); the switcher is
shown only when such an account exists.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from modelgate.console.context import SESSION_COOKIE, PageContext, load_context, page
from modelgate.console.forms import FormState
from modelgate.console.rendering import redirect, render, render_public
from modelgate.errors import BadRequest, GatewayError
from modelgate.services import sessions as svc
from modelgate.services.sessions import SESSION_TTL

__all__ = ["routes"]

LOGIN_CSRF_COOKIE = "mg_login_csrf"


def _safe_next(value: Any) -> str:
    """Only a path inside the console: never an open redirect."""
    if isinstance(value, str) and value.startswith("/console") and not value.startswith("//"):
        return value
    return "/console"


def _set_session(response: Response, request: Request, cookie: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def _login_page(
    request: Request, form: FormState, *, ask_tenant: bool = False, status: int = 200, notice: str | None = None
) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = render_public(
        "login.html",
        title="Sign in",
        form=form,
        login_csrf=token,
        status=status,
        next=_safe_next(form.get("next") or request.query_params.get("next")),
        ask_tenant=ask_tenant or bool(form.get("tenant")),
        notice=notice,
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="strict", path="/console")
    return response


async def login_form(request: Request) -> Response:
    if await load_context(request) is not None:
        return RedirectResponse(_safe_next(request.query_params.get("next")), 303)
    notice = "You have been signed out." if request.query_params.get("signed_out") else None
    return _login_page(request, FormState(), notice=notice)


async def login_submit(request: Request) -> Response:
    form = FormState.of(await request.form())
    sent = (await request.form()).get("csrf_token")
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        form.error = "The sign-in form expired. Please try again."
        return _login_page(request, form, status=403)
    services = request.app.state.services
    address = request.client.host if request.client else "?"
    tenant = (form.get("tenant") or "").strip() or None
    try:
        async with services.sessions() as session, session.begin():
            cookie, _, _ = await svc.login(
                session, form.get("username"), form.get("password"), tenant, services.login_throttle, address
            )
    except BadRequest as exc:
        form.fail(exc, ("username", "password", "tenant"))
        return _login_page(request, form, ask_tenant=exc.param == "tenant", status=400)
    except GatewayError as exc:
        form.fail(exc, ())
        response = _login_page(request, form, status=exc.status)
        response.headers.update(exc.headers)
        return response
    response = RedirectResponse(_safe_next(form.get("next")), 303)
    _set_session(response, request, cookie)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return response


@page
async def logout(ctx: PageContext) -> Response:
    cookie = ctx.request.cookies.get(SESSION_COOKIE, "")
    async with ctx.services.sessions() as session, session.begin():
        await svc.logout(session, cookie)
    response = RedirectResponse("/console/login?signed_out=1", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _switch_page(ctx: PageContext, form: FormState, status: int = 200) -> Response:
    return render(
        ctx,
        "switch_tenant.html",
        title="Switch tenant",
        form=form,
        status=status,
        breadcrumb=[("Home", "/console"), ("Switch tenant", None)],
    )


@page
async def switch_tenant(ctx: PageContext) -> Response:
    if ctx.request.method == "GET":
        return _switch_page(ctx, FormState())
    form = FormState.of(await ctx.form())
    tenant = form.get("tenant")
    if tenant not in ctx.other_tenants:
        form.errors["tenant"] = form.error = "Choose one of the tenants listed."
        return _switch_page(ctx, form, 400)
    address = ctx.request.client.host if ctx.request.client else "?"
    try:
        async with ctx.services.sessions() as session, session.begin():
            cookie, _, _ = await svc.login(
                session, ctx.user.username, form.get("password"), tenant, ctx.services.login_throttle, address
            )
            await svc.logout(session, ctx.request.cookies.get(SESSION_COOKIE, ""))
    except GatewayError as exc:
        form.fail(exc, ("tenant",))
        if exc.code == "invalid_credentials":
            form.errors["password"] = exc.message
        return _switch_page(ctx, form, exc.status)
    response = redirect("/console", f"Signed in to tenant {tenant}.")
    _set_session(response, ctx.request, cookie)
    return response


routes = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login_submit, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/switch-tenant", switch_tenant, methods=["GET", "POST"]),
]
