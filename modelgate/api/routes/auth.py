"""Session: login, logout, who am I, personal access tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from modelgate.api.deps import SESSION_COOKIE, Context, PublicContext
from modelgate.api.schemas import LoginIn, TokenCreate
from modelgate.services import sessions as svc
from modelgate.services.sessions import SESSION_TTL

router = APIRouter(tags=["session"])


@router.post("/auth/login")
async def login(body: LoginIn, request: Request, response: Response, ctx: PublicContext) -> dict[str, Any]:
    throttle = ctx.services.login_throttle
    address = request.client.host if request.client else "?"

    async def op(session: Any) -> Any:
        return await svc.login(session, body.username, body.password, body.tenant, throttle, address)

    async with ctx.services.sessions() as session, session.begin():
        cookie, row, user = await op(session)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=int(SESSION_TTL.total_seconds()), httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")  # fmt: skip
    return {"user_id": user.id, "username": user.username, "tenant_id": user.tenant_id, "csrf_token": row.csrf_token}


@router.post("/auth/logout", status_code=204)
async def logout(request: Request, response: Response, ctx: Context) -> Response:
    _ = ctx.principal  # only a signed-in caller (with its CSRF token) may log out
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        async with ctx.services.sessions() as session, session.begin():
            await svc.logout(session, cookie)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me")
async def me(ctx: Context) -> dict[str, Any]:
    p = ctx.principal
    return {"user_id": p.user.id, "username": p.user.username, "tenant_id": p.user.tenant_id,
            "tenant_roles": sorted(p.actor.tenant_roles), "is_instance_admin": p.actor.is_instance_admin,
            "authenticated_via": p.via, "csrf_token": p.csrf_token}  # fmt: skip


@router.post("/me/tokens", status_code=201)
async def create_token(body: TokenCreate, ctx: Context) -> dict[str, Any]:
    p = ctx.principal

    async def op(session: Any) -> dict[str, Any]:
        tok, secret = await svc.create_token(session, p.actor, p.user, body.name, body.expires_at)
        return {"id": tok.id, "name": tok.name, "expires_at": tok.expires_at.isoformat() if tok.expires_at else None,
                "secret": secret}  # fmt: skip

    return await ctx.write(op)
