"""Endpoint role grants: (user, endpoint, role), one role per user and endpoint."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.errors import BadRequest, NotFound, PermissionDenied
from modelgate.rbac import ENDPOINT_ROLES, Permission
from modelgate.services.audit import write_audit
from modelgate.services.context import Actor, bump_config_version
from modelgate.services.endpoints import get_endpoint
from modelgate.services.users import user_by_name
from modelgate.storage import tables as t

__all__ = ["endpoint_role", "grant_out", "grant_roles", "list_grants", "revoke_grant", "revoke_user_endpoint"]


async def endpoint_role(session: AsyncSession, actor: Actor, endpoint_id: int) -> str | None:
    """The actor's own grant on an endpoint, for endpoint-scoped permission checks."""
    if actor.user_id is None:
        return None
    return (
        await session.execute(
            select(t.Grant.role).where(t.Grant.user_id == actor.user_id, t.Grant.endpoint_id == endpoint_id)
        )
    ).scalar_one_or_none()


def grant_out(g: t.Grant, username: str, endpoint: str) -> dict[str, Any]:
    return {"id": g.id, "user_id": g.user_id, "username": username, "endpoint_id": g.endpoint_id,
            "endpoint": endpoint, "role": g.role, "created_at": g.created_at.isoformat()}  # fmt: skip


async def grant_roles(
    session: AsyncSession, actor: Actor, tenant_id: int, *, username: str, role: str, endpoints: list[str]
) -> list[dict[str, Any]]:
    """Grant one user one role on several endpoints at once (all or nothing)."""
    if role not in ENDPOINT_ROLES:
        raise BadRequest(f"role must be one of {', '.join(sorted(ENDPOINT_ROLES))}.", param="role")
    if not endpoints or not all(isinstance(e, str) for e in endpoints):
        raise BadRequest("endpoints must be a non-empty list of endpoint names.", param="endpoints")
    user = await user_by_name(session, tenant_id, username, param="username")
    out = []
    for name in dict.fromkeys(endpoints):
        missing = BadRequest(f"Endpoint '{name}' does not exist.", param="endpoints")
        try:
            ep = await get_endpoint(session, tenant_id, name)
        except NotFound:
            raise missing from None
        own_role = await endpoint_role(session, actor, ep.id)
        if not actor.can(Permission.ENDPOINT_VIEW, own_role):
            raise missing  # an endpoint one may not see answers as if it did not exist
        if not actor.can(Permission.ENDPOINT_GRANT, own_role):
            raise PermissionDenied(f"You may not grant roles on endpoint '{name}'.")
        grant = (
            await session.execute(select(t.Grant).where(t.Grant.user_id == user.id, t.Grant.endpoint_id == ep.id))
        ).scalar_one_or_none()
        before = {"role": grant.role} if grant else None
        if grant is None:
            grant = t.Grant(tenant_id=tenant_id, user_id=user.id, endpoint_id=ep.id, role=role, created_by=actor.user_id)
            session.add(grant)
        else:
            grant.role = role
        await session.flush()
        await write_audit(session, actor, "grant.create", "endpoint", tenant_id=tenant_id, target_id=ep.id,
                          target_name=ep.name, before=before, after={"user": username, "role": role})  # fmt: skip
        out.append(grant_out(grant, username, ep.name))
    await bump_config_version(session)
    return out


async def list_grants(
    session: AsyncSession, actor: Actor, tenant_id: int, *, username: str | None = None, endpoint: str | None = None
) -> list[dict[str, Any]]:
    stmt = (
        select(t.Grant, t.User.username, t.Endpoint.name)
        .join(t.User, t.User.id == t.Grant.user_id)
        .join(t.Endpoint, t.Endpoint.id == t.Grant.endpoint_id)
        .where(t.Grant.tenant_id == tenant_id)
        .order_by(t.Grant.id)
    )
    if username is not None:
        stmt = stmt.where(t.User.username == username)
    if endpoint is not None:
        stmt = stmt.where(t.Endpoint.name == endpoint)
    rows = (await session.execute(stmt)).all()
    if not actor.can(Permission.ENDPOINT_GRANT):
        # endpoint admins see the grants of their endpoints; everyone sees their own
        own = {g.endpoint_id for g, _, _ in rows if g.user_id == actor.user_id and actor.can(Permission.ENDPOINT_GRANT, g.role)}
        rows = [r for r in rows if r[0].endpoint_id in own or r[0].user_id == actor.user_id]
    return [grant_out(g, u, e) for g, u, e in rows]


async def revoke_grant(session: AsyncSession, actor: Actor, tenant_id: int, grant_id: int) -> None:
    grant = await session.get(t.Grant, grant_id)
    own_role = None if grant is None else await endpoint_role(session, actor, grant.endpoint_id)
    if grant is None or grant.tenant_id != tenant_id or not actor.can(Permission.ENDPOINT_VIEW, own_role):
        # a grant on an endpoint one may not see answers as if it did not exist
        raise NotFound(f"Grant {grant_id} does not exist.", code="not_found")
    if not actor.can(Permission.ENDPOINT_GRANT, own_role):
        raise PermissionDenied("You may not revoke roles on this endpoint.")
    user = await session.get(t.User, grant.user_id)
    ep = await session.get(t.Endpoint, grant.endpoint_id)
    await write_audit(session, actor, "grant.revoke", "endpoint", tenant_id=tenant_id, target_id=grant.endpoint_id,
                      target_name=ep.name if ep else None,
                      before={"user": user.username if user else grant.user_id, "role": grant.role})  # fmt: skip
    await session.delete(grant)
    await bump_config_version(session)


async def revoke_user_endpoint(session: AsyncSession, actor: Actor, tenant_id: int, username: str, endpoint: str) -> None:
    user = await user_by_name(session, tenant_id, username, param="user")
    ep = await get_endpoint(session, tenant_id, endpoint)
    grant = (
        await session.execute(select(t.Grant).where(t.Grant.user_id == user.id, t.Grant.endpoint_id == ep.id))
    ).scalar_one_or_none()
    if grant is None:
        raise NotFound(f"'{username}' has no role on endpoint '{endpoint}'.", code="not_found")
    await revoke_grant(session, actor, tenant_id, grant.id)
