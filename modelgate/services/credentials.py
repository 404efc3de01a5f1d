"""Vendor credentials: encrypted at rest, shown masked, never returned in clear after creation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.errors import BadRequest, Conflict, NotFound
from modelgate.rbac import Permission
from modelgate.secrets_box import SecretBox, mask_secret
from modelgate.services.audit import write_audit
from modelgate.services.context import Actor, bump_config_version
from modelgate.storage import tables as t

__all__ = ["create_credential", "credential_out", "delete_credential", "list_credentials"]


def credential_out(c: t.VendorCredential) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "vendor": c.vendor,
        "secret": c.secret_hint,
        "created_at": c.created_at.isoformat(),
    }


async def create_credential(
    session: AsyncSession, box: SecretBox, actor: Actor, tenant_id: int, *, name: str, secret: str,
    vendor: str | None = None,
) -> t.VendorCredential:  # fmt: skip
    actor.require(Permission.CREDENTIALS_MANAGE)
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise BadRequest("A credential name is 1-128 characters.", param="name")
    if not isinstance(secret, str) or not secret.strip() or len(secret) > 4096:
        raise BadRequest("The vendor secret must be a non-empty string of at most 4096 characters.",
                         param="secret")  # fmt: skip
    dup = await session.execute(
        select(t.VendorCredential.id).where(t.VendorCredential.tenant_id == tenant_id, t.VendorCredential.name == name)
    )
    if dup.first():
        raise Conflict(f"A credential named '{name}' already exists.", param="name")
    cred = t.VendorCredential(
        tenant_id=tenant_id, name=name.strip(), vendor=vendor, secret_ciphertext=box.encrypt(secret.strip()),
        secret_hint=mask_secret(secret.strip()), created_by=actor.user_id,
    )  # fmt: skip
    session.add(cred)
    await session.flush()
    await write_audit(session, actor, "credential.create", "credential", tenant_id=tenant_id, target_id=cred.id,
                      target_name=cred.name, after={"name": cred.name, "vendor": vendor, "secret": secret})  # fmt: skip
    await bump_config_version(session)
    return cred


async def list_credentials(session: AsyncSession, actor: Actor, tenant_id: int) -> list[t.VendorCredential]:
    actor.require(Permission.CREDENTIALS_MANAGE)
    rows = await session.execute(
        select(t.VendorCredential).where(t.VendorCredential.tenant_id == tenant_id).order_by(t.VendorCredential.id)
    )
    return list(rows.scalars())


async def delete_credential(session: AsyncSession, actor: Actor, tenant_id: int, credential_id: int) -> None:
    actor.require(Permission.CREDENTIALS_MANAGE)
    cred = await session.get(t.VendorCredential, credential_id)
    if cred is None or cred.tenant_id != tenant_id:
        raise NotFound(f"Credential {credential_id} does not exist.", code="not_found")
    users = (
        await session.execute(
            select(t.Endpoint.name).where(t.Endpoint.credential_id == credential_id, t.Endpoint.deleted_at.is_(None))
        )
    ).scalars().all()
    if users:
        raise Conflict(f"Credential '{cred.name}' is used by endpoint(s) {', '.join(sorted(users))}; "
                       "change or delete them first.", code="credential_in_use")  # fmt: skip
    await write_audit(session, actor, "credential.delete", "credential", tenant_id=tenant_id, target_id=cred.id,
                      target_name=cred.name, before=credential_out(cred))  # fmt: skip
    await session.delete(cred)
    await bump_config_version(session)
