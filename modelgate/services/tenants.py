"""Tenants and the bootstrap of an empty instance."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.errors import BadRequest, Conflict, NotFound
from modelgate.rbac import TenantRole
from modelgate.secrets_box import hash_password
from modelgate.services.audit import write_audit
from modelgate.services.context import Actor, bump_config_version
from modelgate.storage import tables as t

__all__ = [
    "CreatedTenant", "bootstrap", "create_tenant", "get_tenant", "is_initialised", "list_tenants", "tenant_out",
    "validate_username",
]  # fmt: skip

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_TENANT = "default"


@dataclass(frozen=True)
class CreatedTenant:
    tenant: t.Tenant
    admin: t.User
    password: str


def validate_username(username: str, param: str = "username") -> str:
    if not isinstance(username, str) or not _NAME.match(username):
        raise BadRequest("A username is 1-64 characters of letters, digits, '.', '_' or '-', starting with a "
                         "letter or digit.", param=param)  # fmt: skip
    return username


async def is_initialised(session: AsyncSession) -> bool:
    return bool((await session.execute(select(func.count()).select_from(t.Tenant))).scalar_one())


async def get_tenant(session: AsyncSession, name: str | None) -> t.Tenant:
    """A tenant by name, or the first tenant (the one ``init`` created) when no name is given."""
    stmt = select(t.Tenant).order_by(t.Tenant.id).limit(1)
    if name is not None:
        stmt = select(t.Tenant).where(t.Tenant.name == name)
    tenant = (await session.execute(stmt)).scalar_one_or_none()
    if tenant is None:
        raise NotFound(f"Tenant '{name}' does not exist." if name else "No tenant exists yet: run 'modelgate init'.",
                       code="tenant_not_found")  # fmt: skip
    return tenant


async def create_tenant(
    session: AsyncSession, actor: Actor, name: str, admin_username: str, *, timezone: str = "UTC",
    instance_admin: bool = False,
) -> CreatedTenant:
    """A tenant with its Account Admin, who is also its first Gateway Admin."""
    from modelgate.rbac import Permission
    from modelgate.services.managed import provision_tenant

    actor.require(Permission.TENANTS_MANAGE, what="Only the Instance Admin creates tenants.")
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadRequest("A tenant name is 1-64 characters of letters, digits, '.', '_' or '-'.", param="name")
    validate_username(admin_username, param="admin_username")
    _check_timezone(timezone)
    if (await session.execute(select(t.Tenant.id).where(t.Tenant.name == name))).first():
        raise Conflict(f"A tenant named '{name}' already exists.", param="name")
    tenant = t.Tenant(name=name, timezone=timezone)
    session.add(tenant)
    await session.flush()
    password = secrets.token_urlsafe(18)
    admin = t.User(tenant_id=tenant.id, username=admin_username, password_hash=hash_password(password),
                   is_instance_admin=instance_admin)
    session.add(admin)
    await session.flush()
    for role in (TenantRole.ACCOUNT_ADMIN, TenantRole.GATEWAY_ADMIN):
        session.add(t.TenantRoleRow(tenant_id=tenant.id, user_id=admin.id, role=role, added_by=actor.user_id))
    await provision_tenant(session, tenant.id)
    await write_audit(session, actor, "tenant.create", "tenant", tenant_id=tenant.id, target_id=tenant.id,
                      target_name=name, after={"name": name, "admin": admin_username, "timezone": timezone})  # fmt: skip
    await bump_config_version(session)
    return CreatedTenant(tenant, admin, password)


def _check_timezone(tz: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"Unknown time zone '{tz}'; use an IANA name such as 'Asia/Shanghai'.",
                         param="timezone") from None  # fmt: skip


async def bootstrap(session: AsyncSession, admin_username: str = "admin") -> CreatedTenant | None:
    """First start: a first tenant and its admin, who is also the Instance Admin.

    Returns None when already initialised.
    """
    if await is_initialised(session):
        return None
    return await create_tenant(session, Actor.system(), DEFAULT_TENANT, admin_username, instance_admin=True)


async def list_tenants(session: AsyncSession, actor: Actor) -> list[t.Tenant]:
    from modelgate.rbac import Permission

    actor.require(Permission.TENANTS_MANAGE, what="Only the Instance Admin lists tenants.")
    return list((await session.execute(select(t.Tenant).order_by(t.Tenant.id))).scalars())


def tenant_out(tn: t.Tenant) -> dict[str, object]:
    return {"id": tn.id, "name": tn.name, "timezone": tn.timezone, "quota_tokens": tn.quota_tokens,
            "quota_cycle": tn.quota_cycle, "created_at": tn.created_at.isoformat()}  # fmt: skip
