"""Request context of the admin API: the caller (session cookie or personal access token),
one transaction per write, and the snapshot reload that makes a change visible to the very
next data-plane request of this process.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.errors import AuthenticationFailed, PermissionDenied
from modelgate.services.context import Actor
from modelgate.services.sessions import actor_for, resolve_session, resolve_token
from modelgate.storage import tables as t

__all__ = ["SESSION_COOKIE", "Context", "Ctx", "Principal", "PublicContext"]

T = TypeVar("T")
SESSION_COOKIE = "mg_session"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class Principal:
    actor: Actor
    user: t.User
    via: str  # "session" | "token"
    csrf_token: str | None = None

    @property
    def tenant_id(self) -> int:
        if self.user.tenant_id is None:
            raise PermissionDenied("This account belongs to no tenant.")
        return self.user.tenant_id


class Ctx:
    """What a route needs: the principal and the process's services."""

    def __init__(self, request: Request, principal: Principal | None) -> None:
        self.request = request
        self.services = request.app.state.services
        self._principal = principal

    @property
    def principal(self) -> Principal:
        if self._principal is None:
            raise AuthenticationFailed("Sign in (POST /api/v1/auth/login) or send a personal access token.",
                                       code="not_authenticated")  # fmt: skip
        return self._principal

    @property
    def actor(self) -> Actor:
        return self.principal.actor

    @property
    def tenant_id(self) -> int:
        return self.principal.tenant_id

    async def read(self, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        return await self.services.read(fn)  # type: ignore[no-any-return]

    async def write(self, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        return await self.services.write(fn)  # type: ignore[no-any-return]


async def _principal(request: Request) -> Principal | None:
    services = request.app.state.services
    auth = request.headers.get("authorization", "")
    async with services.sessions() as session:
        if auth.lower().startswith("bearer "):
            user = await resolve_token(session, auth[7:].strip())
            if user is None:
                raise AuthenticationFailed("The personal access token is invalid, expired or revoked.",
                                           code="invalid_token")  # fmt: skip
            return Principal(await actor_for(session, user), user, "token")
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        found = await resolve_session(session, cookie)
        if found is None:
            return None
        user, row = found
        principal = Principal(await actor_for(session, user), user, "session", row.csrf_token)
    if request.method in _UNSAFE:
        sent = request.headers.get("x-csrf-token")
        if sent is None:
            form_type = request.headers.get("content-type", "")
            if form_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
                sent = (await request.form()).get("csrf_token")  # type: ignore[assignment]
        if not isinstance(sent, str) or not hmac.compare_digest(sent, principal.csrf_token or ""):
            raise PermissionDenied("Missing or wrong CSRF token (send the X-CSRF-Token header).", code="csrf_failed")
    return principal


async def _public_context(request: Request) -> Ctx:
    return Ctx(request, await _principal(request))


async def _context(request: Request) -> Ctx:
    """Signed-in callers only: resolved before the body is validated, so anonymous calls get 401, not 400."""
    ctx = Ctx(request, await _principal(request))
    _ = ctx.principal
    return ctx


Context = Annotated[Ctx, Depends(_context)]
PublicContext = Annotated[Ctx, Depends(_public_context)]  # routes open to anonymous callers (login)
