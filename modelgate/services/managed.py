"""The managed-model catalog (Instance Admin) and its provisioning into every tenant.

A managed endpoint's base URL and secret come from the catalog at snapshot time: tenants can
invoke it, limit it and grant it, but never see where it points or with which key.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.errors import BadRequest, Conflict, NotFound
from modelgate.rbac import Permission
from modelgate.secrets_box import SecretBox, mask_secret
from modelgate.services.audit import write_audit
from modelgate.services.context import Actor, bump_config_version
from modelgate.services.endpoints import CATEGORIES, validate_name
from modelgate.settings import Settings
from modelgate.storage import tables as t
from modelgate.upstream_policy import check_base_url

__all__ = ["create_managed_model", "delete_managed_model", "list_managed_models", "managed_out",
           "provision_tenant", "restore_managed_endpoint"]  # fmt: skip


def managed_out(m: t.ManagedModel) -> dict[str, Any]:
    return {"id": m.id, "name": m.name, "vendor": m.vendor, "category": m.category, "base_url": m.base_url,
            "model_version": m.model_version, "secret": m.secret_hint, "description": m.description,
            "created_at": m.created_at.isoformat()}  # fmt: skip


def _endpoint_for(m: t.ManagedModel, tenant_id: int) -> t.Endpoint:
    return t.Endpoint(tenant_id=tenant_id, name=m.name, kind="managed", vendor=m.vendor, category=m.category,
                      model_version=m.model_version, managed_model_id=m.id, description=m.description)  # fmt: skip


async def provision_tenant(session: AsyncSession, tenant_id: int) -> None:
    """Give a (new) tenant an endpoint for every catalog entry whose name it does not already use."""
    taken = set((await session.execute(select(t.Endpoint.name).where(t.Endpoint.tenant_id == tenant_id))).scalars())
    for m in (await session.execute(select(t.ManagedModel).where(t.ManagedModel.is_active.is_(True)))).scalars():
        if m.name not in taken:
            session.add(_endpoint_for(m, tenant_id))


async def list_managed_models(session: AsyncSession, actor: Actor) -> list[t.ManagedModel]:
    actor.require(Permission.MANAGED_MODELS_MANAGE, what="Only the Instance Admin manages the managed-model catalog.")
    return list((await session.execute(select(t.ManagedModel).order_by(t.ManagedModel.id))).scalars())


async def create_managed_model(
    session: AsyncSession, box: SecretBox, settings: Settings, actor: Actor, values: dict[str, Any]
) -> t.ManagedModel:
    actor.require(Permission.MANAGED_MODELS_MANAGE, what="Only the Instance Admin manages the managed-model catalog.")
    name = validate_name(values.get("name"))
    if values.get("category", "llm") not in CATEGORIES:
        raise BadRequest(f"category must be one of {', '.join(CATEGORIES)}.", param="category")
    secret, mv = values.get("secret"), values.get("model_version")
    if not isinstance(secret, str) or not secret.strip():
        raise BadRequest("secret (the vendor API key) is required.", param="secret")
    if not isinstance(mv, str) or not mv.strip() or len(mv) > 256:
        raise BadRequest("model_version is required (at most 256 characters).", param="model_version")
    base_url = check_base_url(values.get("base_url") or "", allow=settings.upstream_allow_hosts,
                              deny=settings.upstream_deny_hosts)  # fmt: skip
    if (await session.execute(select(t.ManagedModel.id).where(t.ManagedModel.name == name))).first():
        raise Conflict(f"A managed model named '{name}' already exists.", param="name")
    m = t.ManagedModel(name=name, vendor=str(values.get("vendor") or "custom")[:64], category=values.get("category", "llm"),
                       base_url=base_url, model_version=mv.strip(), secret_ciphertext=box.encrypt(secret.strip()),
                       secret_hint=mask_secret(secret.strip()), description=values.get("description"))  # fmt: skip
    session.add(m)
    await session.flush()
    for tenant_id in (await session.execute(select(t.Tenant.id))).scalars():
        taken = await session.execute(select(t.Endpoint.id).where(t.Endpoint.tenant_id == tenant_id, t.Endpoint.name == name))
        if not taken.first():
            session.add(_endpoint_for(m, tenant_id))
    await write_audit(session, actor, "managed_model.create", "managed_model", tenant_id=None, target_id=m.id,
                      target_name=name, after=managed_out(m))  # fmt: skip
    await bump_config_version(session)
    return m


async def delete_managed_model(session: AsyncSession, actor: Actor, model_id: int) -> None:
    actor.require(Permission.MANAGED_MODELS_MANAGE, what="Only the Instance Admin manages the managed-model catalog.")
    m = await session.get(t.ManagedModel, model_id)
    if m is None:
        raise NotFound(f"Managed model {model_id} does not exist.", code="not_found")
    await write_audit(session, actor, "managed_model.delete", "managed_model", tenant_id=None, target_id=m.id,
                      target_name=m.name, before=managed_out(m))  # fmt: skip
    await session.execute(delete(t.Endpoint).where(t.Endpoint.managed_model_id == m.id))
    await session.delete(m)
    await bump_config_version(session)


async def restore_managed_endpoint(session: AsyncSession, actor: Actor, model_id: int, tenant_name: str) -> t.Endpoint:
    """Undo a tenant's deletion of a managed endpoint (only the Instance Admin can)."""
    actor.require(Permission.MANAGED_MODELS_MANAGE, what="Only the Instance Admin restores managed endpoints.")
    tenant = (await session.execute(select(t.Tenant).where(t.Tenant.name == tenant_name))).scalar_one_or_none()
    if tenant is None:
        raise BadRequest(f"Tenant '{tenant_name}' does not exist.", param="tenant")
    ep = (
        await session.execute(
            select(t.Endpoint).where(t.Endpoint.tenant_id == tenant.id, t.Endpoint.managed_model_id == model_id)
        )
    ).scalar_one_or_none()
    if ep is None or ep.deleted_at is None:
        raise NotFound("That tenant has no deleted endpoint of this managed model.", code="not_found")
    ep.deleted_at = None
    await write_audit(session, actor, "endpoint.restore", "endpoint", tenant_id=tenant.id, target_id=ep.id,
                      target_name=ep.name, after={"restored": True})  # fmt: skip
    await bump_config_version(session)
    return ep
