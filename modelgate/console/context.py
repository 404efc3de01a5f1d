"""The request context of a console page: who is signed in, what they may do, and the two ways
to touch data (a read session, or one write transaction followed by the snapshot reload).

What must stay true: every POST is checked against the login session's CSRF token before the
handler runs; permissions are asked of ``modelgate.rbac`` through the actor (``can``/``can_any``),
never inferred from role names; the services check again on every write.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from modelgate.errors import GatewayError, PermissionDenied
from modelgate.rbac import Permission
from modelgate.services.context import Actor
from modelgate.services.sessions import actor_for, resolve_session
from modelgate.storage import tables as t

__all__ = ["SESSION_COOKIE", "PageContext", "load_context", "page"]

T = TypeVar("T")
SESSION_COOKIE = "mg_session"  # shared with the admin API (modelgate/api/deps.py)


class PageContext:
    """One signed-in request: the user, the actor, their endpoint roles and the services."""

    def __init__(
        self,
        request: Request,
        user: t.User,
        login: t.LoginSession,
        actor: Actor,
        tenant: t.Tenant,
        grant_roles: frozenset[str],
        other_tenants: list[str],
    ) -> None:
        self.request = request
        self.services = request.app.state.services
        self.user = user
        self.login = login
        self.actor = actor
        self.tenant = tenant
        self.grant_roles = grant_roles
        self.other_tenants = other_tenants
        self._form: FormData | None = None

    @property
    def tenant_id(self) -> int:
        return self.tenant.id

    @property
    def csrf_token(self) -> str:
        return self.login.csrf_token

    # -- permissions, always through rbac
    def can(self, permission: Permission | str, endpoint_role: str | None = None) -> bool:
        return self.actor.can(Permission(permission), endpoint_role)

    def can_any(self, permission: Permission | str) -> bool:
        """Held tenant-wide, or through at least one of the user's endpoint grants."""
        p = Permission(permission)
        return self.actor.can(p) or any(self.actor.can(p, role) for role in self.grant_roles)

    # -- data
    async def read(self, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        return await self.services.read(fn)  # type: ignore[no-any-return]

    async def write(self, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        return await self.services.write(fn)  # type: ignore[no-any-return]

    # -- input
    async def form(self) -> FormData:
        if self._form is None:
            self._form = await self.request.form()
        return self._form

    async def check_csrf(self) -> None:
        sent = (await self.form()).get("csrf_token")
        if sent is None:
            sent = self.request.headers.get("x-csrf-token")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, self.login.csrf_token):
            raise PermissionDenied(
                "The form's security token is missing or out of date. Reload the page and try again.",
                code="csrf_failed",
            )


async def load_context(request: Request) -> PageContext | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    services = request.app.state.services
    async with services.sessions() as session:
        found = await resolve_session(session, cookie)
        if found is None:
            return None
        user, login = found
        if user.tenant_id is None:
            return None
        actor = await actor_for(session, user)
        tenant = await session.get(t.Tenant, user.tenant_id)
        roles = await session.execute(select(t.Grant.role).where(t.Grant.user_id == user.id).distinct())
        # tenants where a user of the same name exists: the tenant switcher (a password re-check switches)
        others = await session.execute(
            select(t.Tenant.name)
            .join(t.User, t.User.tenant_id == t.Tenant.id)
            .where(t.User.username == user.username, t.User.is_active.is_(True), t.User.tenant_id != user.tenant_id)
            .order_by(t.Tenant.name)
        )
        assert tenant is not None
        return PageContext(request, user, login, actor, tenant, frozenset(roles.scalars()), list(others.scalars()))


Handler = Callable[[PageContext], Awaitable[Response]]


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A console page: signed-in users only (others go to the login page), CSRF on every POST,
    and a service's refusal rendered as an error page with its exact message."""
    from modelgate.console.rendering import error_page

    async def endpoint(request: Request) -> Response:
        ctx = await load_context(request)
        if ctx is None:
            if request.method != "GET":
                return RedirectResponse("/console/login", 303)
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/console/login?next={quote(target, safe='')}", 303)
        try:
            if request.method == "POST":
                await ctx.check_csrf()
            return await handler(ctx)
        except GatewayError as exc:
            return error_page(ctx, exc)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def path_param(ctx: PageContext, name: str) -> Any:
    return ctx.request.path_params[name]
