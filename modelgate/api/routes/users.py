"""Users of the tenant and its Gateway Admins."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from modelgate.api.deps import Context
from modelgate.api.schemas import GatewayAdminAdd, UserCreate, UserUpdate
from modelgate.services import admins as asvc
from modelgate.rbac import Permission
from modelgate.services import users as usvc

router = APIRouter(tags=["users"])


@router.get("/users")
async def list_users(ctx: Context) -> list[dict[str, Any]]:
    return await ctx.read(lambda s: usvc.list_users(s, ctx.actor, ctx.tenant_id))


@router.post("/users", status_code=201)
async def create_user(body: UserCreate, ctx: Context) -> dict[str, Any]:
    async def op(session: Any) -> dict[str, Any]:
        user, generated = await usvc.create_user(session, ctx.actor, ctx.tenant_id, username=body.username,
                                                 password=body.password, display_name=body.display_name)  # fmt: skip
        out = usvc.user_out(user, ["MEMBER"])
        if generated:
            out["password"] = generated
        return out

    return await ctx.write(op)


@router.get("/users/{user_id}")
async def get_user(user_id: int, ctx: Context) -> dict[str, Any]:
    async def op(session: Any) -> dict[str, Any]:
        if user_id != ctx.principal.user.id:
            ctx.actor.require(Permission.USERS_MANAGE, what="Only Gateway Admins may see other users.")
        user = await usvc.get_user(session, ctx.tenant_id, user_id)
        return usvc.user_out(user, (await usvc.roles_of(session, [user.id]))[user.id])

    return await ctx.read(op)


@router.patch("/users/{user_id}")
async def update_user(user_id: int, body: UserUpdate, ctx: Context) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=True)
    user = await ctx.write(lambda s: usvc.update_user(s, ctx.actor, ctx.tenant_id, user_id, values))
    return usvc.user_out(user)


@router.delete("/users/{user_id}", status_code=204)
async def delete_user(user_id: int, ctx: Context) -> None:
    await ctx.write(lambda s: usvc.delete_user(s, ctx.actor, ctx.tenant_id, user_id))


@router.get("/gateway-admins")
async def list_admins(ctx: Context) -> list[dict[str, Any]]:
    return await ctx.read(lambda s: asvc.list_gateway_admins(s, ctx.actor, ctx.tenant_id))


@router.post("/gateway-admins", status_code=201)
async def add_admin(body: GatewayAdminAdd, ctx: Context) -> dict[str, Any]:
    return await ctx.write(lambda s: asvc.add_gateway_admin(s, ctx.actor, ctx.tenant_id, body.user_id))


@router.delete("/gateway-admins/{user_id}", status_code=204)
async def remove_admin(user_id: int, ctx: Context) -> None:
    await ctx.write(lambda s: asvc.remove_gateway_admin(s, ctx.actor, ctx.tenant_id, user_id))
