"""Gateway API keys: issued once, stored as a digest, effective or dead on the very next request."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.errors import BadRequest, NotFound
from modelgate.ids import issue_key
from modelgate.rbac import Permission
from modelgate.services.audit import write_audit
from modelgate.services.context import Actor, bump_config_version
from modelgate.storage import tables as t
from modelgate.storage.tables import utcnow

__all__ = ["create_key", "delete_key", "get_key", "key_out", "list_keys", "rotate_key", "set_key_status"]


def key_out(k: t.ApiKey, owner: str | None = None) -> dict[str, Any]:
    return {
        "id": k.id,
        "public_id": k.public_id,
        "name": k.name,
        "prefix": f"mg-{k.public_id}-…",
        "owner_id": k.owner_id,
        "owner": owner,
        "status": k.status,
        "expires_at": k.expires_at.isoformat() if k.expires_at else None,
        "rpm": k.rpm,
        "tpm": k.tpm,
        "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
        "created_at": k.created_at.isoformat(),
    }


async def _user_in_tenant(session: AsyncSession, tenant_id: int, username: str) -> t.User:
    user = (
        await session.execute(select(t.User).where(t.User.tenant_id == tenant_id, t.User.username == username))
    ).scalar_one_or_none()
    if user is None:
        raise BadRequest(f"User '{username}' does not exist in this tenant.", param="owner")
    return user


def _limit(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"{name} must be a non-negative integer or null.", param=name)
    return value


async def create_key(
    session: AsyncSession, actor: Actor, tenant_id: int, *, owner: str, name: str | None = None,
    expires_at: datetime | None = None, rpm: int | None = None, tpm: int | None = None,
) -> tuple[t.ApiKey, str]:  # fmt: skip
    """Returns the key row and its secret, which exists nowhere else after this call."""
    actor.require(Permission.KEYS_MANAGE, what="Only Gateway Admins may create API keys.")
    user = await _user_in_tenant(session, tenant_id, owner)
    name = (name or f"{owner}-key").strip()
    if not name or len(name) > 128:
        raise BadRequest("A key name is 1-128 characters.", param="name")
    if expires_at is not None and expires_at <= utcnow():
        raise BadRequest("expires_at must be in the future.", param="expires_at")
    issued = issue_key("mg")
    key = t.ApiKey(
        tenant_id=tenant_id, public_id=issued.public_id, name=name, owner_id=user.id, secret_digest=issued.digest,
        expires_at=expires_at, rpm=_limit(rpm, "rpm"), tpm=_limit(tpm, "tpm"), created_by=actor.user_id,
    )  # fmt: skip
    session.add(key)
    await session.flush()
    await write_audit(session, actor, "api_key.create", "api_key", tenant_id=tenant_id, target_id=key.id,
                      target_name=name, after=key_out(key, owner))  # fmt: skip
    await bump_config_version(session)
    return key, issued.secret


async def list_keys(
    session: AsyncSession, actor: Actor, tenant_id: int, *, status: str | None = None, owner: str | None = None
) -> list[tuple[t.ApiKey, str]]:
    stmt = (
        select(t.ApiKey, t.User.username)
        .join(t.User, t.User.id == t.ApiKey.owner_id)
        .where(t.ApiKey.tenant_id == tenant_id)
        .order_by(t.ApiKey.id)
    )
    if not actor.can(Permission.KEYS_MANAGE):
        stmt = stmt.where(t.ApiKey.owner_id == actor.user_id)  # everyone sees their own keys
    if status is not None:
        if status not in ("active", "disabled", "expired"):
            raise BadRequest("status must be active, disabled or expired.", param="status")
        if status == "expired":
            stmt = stmt.where(t.ApiKey.expires_at.is_not(None), t.ApiKey.expires_at <= utcnow())
        else:
            stmt = stmt.where(t.ApiKey.status == status)
    if owner is not None:
        stmt = stmt.where(t.User.username == owner)
    return [(k, u) for k, u in (await session.execute(stmt)).all()]


async def get_key(session: AsyncSession, actor: Actor, tenant_id: int, key_id: int) -> t.ApiKey:
    key = await session.get(t.ApiKey, key_id)
    if key is None or key.tenant_id != tenant_id or (
        not actor.can(Permission.KEYS_MANAGE) and key.owner_id != actor.user_id
    ):
        raise NotFound(f"API key {key_id} does not exist.", code="not_found")
    return key


async def set_key_status(session: AsyncSession, actor: Actor, tenant_id: int, key_id: int, status: str) -> t.ApiKey:
    actor.require(Permission.KEYS_MANAGE, what="Only Gateway Admins may disable or enable API keys.")
    key = await get_key(session, actor, tenant_id, key_id)
    before = key.status
    key.status = status
    await write_audit(session, actor, f"api_key.{'disable' if status == 'disabled' else 'enable'}", "api_key",
                      tenant_id=tenant_id, target_id=key.id, target_name=key.name, before={"status": before},
                      after={"status": status})  # fmt: skip
    await bump_config_version(session)
    return key


async def rotate_key(
    session: AsyncSession, actor: Actor, tenant_id: int, key_id: int, grace_seconds: int = 0
) -> tuple[t.ApiKey, str]:
    """New secret; the old one keeps working for ``grace_seconds`` (0: stops at once)."""
    actor.require(Permission.KEYS_MANAGE, what="Only Gateway Admins may rotate API keys.")
    if isinstance(grace_seconds, bool) or not isinstance(grace_seconds, int) or not 0 <= grace_seconds <= 30 * 86400:
        raise BadRequest("grace must be between 0 and 2592000 seconds (30 days).", param="grace")
    key = await get_key(session, actor, tenant_id, key_id)
    issued = issue_key("mg")
    if grace_seconds > 0:
        key.previous_digest = key.secret_digest
        key.previous_valid_until = utcnow() + timedelta(seconds=grace_seconds)
    else:
        key.previous_digest, key.previous_valid_until = None, None
    # the public id stays: the key keeps its identity, usage history and limits
    key.secret_digest = issued.digest
    secret = f"mg-{key.public_id}-{issued.secret.split('-', 2)[2]}"
    await write_audit(session, actor, "api_key.rotate", "api_key", tenant_id=tenant_id, target_id=key.id,
                      target_name=key.name, after={"grace_seconds": grace_seconds})  # fmt: skip
    await bump_config_version(session)
    return key, secret


async def delete_key(session: AsyncSession, actor: Actor, tenant_id: int, key_id: int) -> None:
    actor.require(Permission.KEYS_MANAGE, what="Only Gateway Admins may delete API keys.")
    key = await get_key(session, actor, tenant_id, key_id)
    await write_audit(session, actor, "api_key.delete", "api_key", tenant_id=tenant_id, target_id=key.id,
                      target_name=key.name, before=key_out(key))  # fmt: skip
    await session.delete(key)
    await bump_config_version(session)
