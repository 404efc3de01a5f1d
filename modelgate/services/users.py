"""Users of a tenant: added by a Gateway Admin, unique username within the tenant."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.errors import BadRequest, Conflict, NotFound
from modelgate.rbac import Permission, TenantRole
from modelgate.secrets_box import hash_password
from modelgate.services.audit import write_audit
from modelgate.services.context import Actor, bump_config_version
from modelgate.services.tenants import validate_username
from modelgate.storage import tables as t

__all__ = ["create_user", "delete_user", "get_user", "list_users", "lock_tenant", "update_user", "user_out"]


def user_out(u: t.User, roles: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": u.id,
        "username": u.username,
        "display_name": u.display_name,
        "is_active": u.is_active,
        "tenant_roles": sorted(roles or []),
        "created_at": u.created_at.isoformat(),
    }


def _password(value: Any) -> str:
    if not isinstance(value, str) or not 8 <= len(value) <= 256:
        raise BadRequest("A password is 8-256 characters.", param="password")
    return value


async def lock_tenant(session: AsyncSession, tenant_id: int) -> None:
    """Serialise invariant-guarding writes of one tenant (e.g. "one Gateway Admin remains").

    An UPDATE takes the row lock on PostgreSQL and the write lock on SQLite, so two admins
    removing each other at once run one after the other and the second sees the first's result.
    """
    from sqlalchemy import update

    await session.execute(update(t.Tenant).where(t.Tenant.id == tenant_id).values(name=t.Tenant.name))


async def get_user(session: AsyncSession, tenant_id: int, user_id: int) -> t.User:
    user = await session.get(t.User, user_id)
    if user is None or user.tenant_id != tenant_id:
        raise NotFound(f"User {user_id} does not exist.", code="not_found")
    return user


async def user_by_name(session: AsyncSession, tenant_id: int, username: str, param: str = "username") -> t.User:
    user = (
        await session.execute(select(t.User).where(t.User.tenant_id == tenant_id, t.User.username == username))
    ).scalar_one_or_none()
    if user is None:
        raise BadRequest(f"User '{username}' does not exist in this tenant.", param=param)
    return user


async def roles_of(session: AsyncSession, user_ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {u: [] for u in user_ids}
    if user_ids:
        rows = await session.execute(select(t.TenantRoleRow).where(t.TenantRoleRow.user_id.in_(user_ids)))
        for r in rows.scalars():
            out[r.user_id].append(r.role)
    return out


async def list_users(session: AsyncSession, actor: Actor, tenant_id: int) -> list[dict[str, Any]]:
    actor.require(Permission.USERS_MANAGE, what="Only Gateway Admins may list users.")
    users = list((await session.execute(select(t.User).where(t.User.tenant_id == tenant_id).order_by(t.User.id))).scalars())
    roles = await roles_of(session, [u.id for u in users])
    return [user_out(u, roles[u.id]) for u in users]


async def create_user(
    session: AsyncSession, actor: Actor, tenant_id: int, *, username: str, password: str | None = None,
    display_name: str | None = None,
) -> tuple[t.User, str | None]:  # fmt: skip
    """Returns the user and the generated password (None when the caller chose one)."""
    actor.require(Permission.USERS_MANAGE, what="Only Gateway Admins may add users.")
    validate_username(username)
    generated = None
    if password is None:
        password = generated = secrets.token_urlsafe(15)
    _password(password)
    if display_name is not None and (not isinstance(display_name, str) or len(display_name) > 128):
        raise BadRequest("display_name is at most 128 characters.", param="display_name")
    taken = await session.execute(select(t.User.id).where(t.User.tenant_id == tenant_id, t.User.username == username))
    if taken.first():
        raise Conflict(f"A user named '{username}' already exists in this tenant.", param="username")
    user = t.User(tenant_id=tenant_id, username=username, display_name=display_name,
                  password_hash=hash_password(password))  # fmt: skip
    session.add(user)
    await session.flush()
    session.add(t.TenantRoleRow(tenant_id=tenant_id, user_id=user.id, role=TenantRole.MEMBER, added_by=actor.user_id))
    await write_audit(session, actor, "user.create", "user", tenant_id=tenant_id, target_id=user.id,
                      target_name=username, after={"username": username, "display_name": display_name})  # fmt: skip
    await bump_config_version(session)
    return user, generated


async def update_user(session: AsyncSession, actor: Actor, tenant_id: int, user_id: int,
                      values: dict[str, Any]) -> t.User:  # fmt: skip
    is_self = actor.user_id == user_id
    if not (is_self and set(values) <= {"password", "display_name"}):
        actor.require(Permission.USERS_MANAGE, what="Only Gateway Admins may change other users.")
    user = await get_user(session, tenant_id, user_id)
    unknown = set(values) - {"password", "display_name", "is_active"}
    if unknown:
        raise BadRequest(f"Unknown field(s): {', '.join(sorted(unknown))}.", param=sorted(unknown)[0])
    before = user_out(user)
    if "password" in values:
        user.password_hash = hash_password(_password(values["password"]))
    if "display_name" in values:
        dn = values["display_name"]
        if dn is not None and (not isinstance(dn, str) or len(dn) > 128):
            raise BadRequest("display_name is at most 128 characters.", param="display_name")
        user.display_name = dn
    if "is_active" in values:
        if not isinstance(values["is_active"], bool):
            raise BadRequest("is_active must be true or false.", param="is_active")
        if is_self and not values["is_active"]:
            raise BadRequest("You cannot deactivate yourself.", param="is_active")
        user.is_active = values["is_active"]
    after = user_out(user)
    if "password" in values:
        after["password"] = "changed"
    await write_audit(session, actor, "user.update", "user", tenant_id=tenant_id, target_id=user.id,
                      target_name=user.username, before=before, after=after)  # fmt: skip
    await bump_config_version(session)
    return user


async def delete_user(session: AsyncSession, actor: Actor, tenant_id: int, user_id: int) -> None:
    actor.require(Permission.USERS_MANAGE, what="Only Gateway Admins may delete users.")
    if actor.user_id == user_id:
        raise BadRequest("You cannot delete yourself.", param="user_id")
    await lock_tenant(session, tenant_id)
    user = await get_user(session, tenant_id, user_id)
    admins = await session.execute(
        select(func.count()).select_from(t.TenantRoleRow).where(
            t.TenantRoleRow.tenant_id == tenant_id, t.TenantRoleRow.role == TenantRole.GATEWAY_ADMIN,
            t.TenantRoleRow.user_id != user_id,
        )
    )  # fmt: skip
    is_admin = (await roles_of(session, [user_id]))[user_id]
    if TenantRole.GATEWAY_ADMIN in is_admin and admins.scalar_one() == 0:
        raise Conflict("This user is the last Gateway Admin; at least one must remain.", code="last_gateway_admin")
    await write_audit(session, actor, "user.delete", "user", tenant_id=tenant_id, target_id=user.id,
                      target_name=user.username, before=user_out(user, is_admin))  # fmt: skip
    await session.delete(user)
    await bump_config_version(session)
