"""Gateway Admins. Invariants: nobody removes themselves; at least one always remains."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from modelgate.errors import BadRequest, Conflict, NotFound
from modelgate.rbac import Permission, TenantRole
from modelgate.services.audit import write_audit
from modelgate.services.context import Actor, bump_config_version
from modelgate.services.users import get_user, lock_tenant
from modelgate.storage import tables as t

__all__ = ["add_gateway_admin", "list_gateway_admins", "remove_gateway_admin"]

GA = TenantRole.GATEWAY_ADMIN


async def list_gateway_admins(session: AsyncSession, actor: Actor, tenant_id: int) -> list[dict[str, Any]]:
    actor.require(Permission.GATEWAY_ADMINS_MANAGE, what="Only Gateway Admins may list Gateway Admins.")
    adder = aliased(t.User)
    rows = await session.execute(
        select(t.TenantRoleRow, t.User.username, adder.username)
        .join(t.User, t.User.id == t.TenantRoleRow.user_id)
        .outerjoin(adder, adder.id == t.TenantRoleRow.added_by)
        .where(t.TenantRoleRow.tenant_id == tenant_id, t.TenantRoleRow.role == GA)
        .order_by(t.TenantRoleRow.created_at)
    )
    return [
        {"user_id": r.user_id, "username": name, "added_at": r.created_at.isoformat(), "added_by": by}
        for r, name, by in rows.all()
    ]


async def add_gateway_admin(session: AsyncSession, actor: Actor, tenant_id: int, user_id: int) -> dict[str, Any]:
    actor.require(Permission.GATEWAY_ADMINS_MANAGE, what="Only Gateway Admins may add Gateway Admins.")
    try:
        user = await get_user(session, tenant_id, user_id)
    except NotFound:
        raise BadRequest(f"User {user_id} does not exist in this tenant.", param="user_id") from None
    exists = await session.execute(
        select(t.TenantRoleRow.id).where(t.TenantRoleRow.user_id == user_id, t.TenantRoleRow.role == GA)
    )
    if exists.first():
        raise Conflict(f"'{user.username}' is already a Gateway Admin.", code="already_gateway_admin")
    row = t.TenantRoleRow(tenant_id=tenant_id, user_id=user_id, role=GA, added_by=actor.user_id)
    session.add(row)
    await session.flush()
    await write_audit(session, actor, "gateway_admin.add", "user", tenant_id=tenant_id, target_id=user_id,
                      target_name=user.username, after={"role": GA})  # fmt: skip
    await bump_config_version(session)
    return {"user_id": user_id, "username": user.username, "added_at": row.created_at.isoformat(),
            "added_by": actor.username}  # fmt: skip


async def remove_gateway_admin(session: AsyncSession, actor: Actor, tenant_id: int, user_id: int) -> None:
    actor.require(Permission.GATEWAY_ADMINS_MANAGE, what="Only Gateway Admins may remove Gateway Admins.")
    if actor.user_id == user_id:
        raise BadRequest("You cannot remove yourself as Gateway Admin; ask another Gateway Admin.",
                         code="cannot_remove_self")  # fmt: skip
    await lock_tenant(session, tenant_id)  # first statement of the write: serialises concurrent removals
    user = await get_user(session, tenant_id, user_id)
    removed = await session.execute(
        delete(t.TenantRoleRow).where(
            t.TenantRoleRow.tenant_id == tenant_id, t.TenantRoleRow.user_id == user_id, t.TenantRoleRow.role == GA
        )
    )
    if removed.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"'{user.username}' is not a Gateway Admin.", code="not_found")
    remaining = await session.execute(
        select(func.count()).select_from(t.TenantRoleRow).where(
            t.TenantRoleRow.tenant_id == tenant_id, t.TenantRoleRow.role == GA
        )
    )  # fmt: skip
    if remaining.scalar_one() == 0:
        raise Conflict("At least one Gateway Admin must remain.", code="last_gateway_admin")
    await write_audit(session, actor, "gateway_admin.remove", "user", tenant_id=tenant_id, target_id=user_id,
                      target_name=user.username, before={"role": GA})  # fmt: skip
    await bump_config_version(session)
