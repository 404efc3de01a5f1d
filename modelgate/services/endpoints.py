"""Endpoints: create, read, edit, copy, delete; every field validated here, once, for API, console and CLI."""

from __future__ import annotations

import math
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.errors import BadRequest, Conflict, NotFound, PermissionDenied
from modelgate.rbac import Permission
from modelgate.services.audit import write_audit
from modelgate.services.context import Actor, bump_config_version
from modelgate.settings import Settings
from modelgate.storage import tables as t
from modelgate.storage.tables import utcnow
from modelgate.upstream_policy import check_base_url

__all__ = [
    "CATEGORIES",
    "EDITABLE",
    "NAME_RULE",
    "copy_endpoint",
    "create_endpoint",
    "delete_endpoint",
    "endpoint_out",
    "get_endpoint",
    "list_endpoints",
    "quota_warning",
    "update_endpoint",
    "validate_name",
]

NAME_RULE = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_NAME = re.compile(NAME_RULE)
CATEGORIES = ("llm", "embedding", "image")
CYCLES = ("daily", "weekly", "monthly")
EDITABLE = (
    "vendor", "category", "base_url", "model_version", "credential_id", "rpm", "tpm", "quota_tokens", "quota_cycle",
    "price_input_per_m", "price_output_per_m", "connect_timeout", "read_timeout", "default_output_tokens",
    "description",
)  # fmt: skip
_QUOTA_FIELDS = ("quota_tokens", "quota_cycle")


def validate_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadRequest(
            f"Invalid endpoint name {name!r}: it must match {NAME_RULE} (1-64 characters: ASCII letters, digits, "
            "'.', '_' or '-', starting with a letter or digit; no spaces or CJK characters).",
            param="name",
        )
    return name


def _int_field(values: dict[str, Any], key: str, *, minimum: int = 0, maximum: int = 10**15) -> None:
    v = values.get(key)
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int) or not minimum <= v <= maximum:
        raise BadRequest(f"{key} must be an integer between {minimum} and {maximum}, or null.", param=key)


def _float_field(values: dict[str, Any], key: str, *, minimum: float, maximum: float, allow_zero: bool = True) -> None:
    v = values.get(key)
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not minimum <= v <= maximum:
        raise BadRequest(f"{key} must be a number between {minimum} and {maximum}, or null.", param=key)
    if not allow_zero and v == 0:
        raise BadRequest(f"{key} must be greater than 0.", param=key)


async def _validate(
    session: AsyncSession, settings: Settings, tenant_id: int, values: dict[str, Any], *, managed: bool
) -> None:
    if "category" in values and values["category"] not in CATEGORIES:
        raise BadRequest(f"category must be one of {', '.join(CATEGORIES)}.", param="category")
    if "quota_cycle" in values and values["quota_cycle"] not in CYCLES:
        raise BadRequest(f"quota_cycle must be one of {', '.join(CYCLES)}.", param="quota_cycle")
    if "model_version" in values:
        mv = values["model_version"]
        if not isinstance(mv, str) or not mv.strip() or len(mv) > 256:
            raise BadRequest("model_version must be a non-empty string of at most 256 characters.",
                             param="model_version")  # fmt: skip
        values["model_version"] = mv.strip()
    for key in ("vendor",):
        if key in values and (not isinstance(values[key], str) or not 0 < len(values[key]) <= 64):
            raise BadRequest(f"{key} must be a string of 1-64 characters.", param=key)
    if "description" in values and values["description"] is not None:
        d = values["description"]
        if not isinstance(d, str) or len(d) > 2000:
            raise BadRequest("description must be a string of at most 2000 characters.", param="description")
    _int_field(values, "rpm", maximum=10**9)
    _int_field(values, "tpm")
    _int_field(values, "quota_tokens")
    _int_field(values, "default_output_tokens", minimum=1, maximum=10**7)
    _float_field(values, "price_input_per_m", minimum=0, maximum=1e6)
    _float_field(values, "price_output_per_m", minimum=0, maximum=1e6)
    _float_field(values, "connect_timeout", minimum=0, maximum=3600, allow_zero=False)
    _float_field(values, "read_timeout", minimum=0, maximum=3600, allow_zero=False)
    if not managed and "base_url" in values:
        values["base_url"] = check_base_url(
            values["base_url"], allow=settings.upstream_allow_hosts, deny=settings.upstream_deny_hosts
        )
    if values.get("credential_id") is not None:
        cid = values["credential_id"]
        cred = await session.get(t.VendorCredential, cid) if isinstance(cid, int) and not isinstance(cid, bool) else None
        if cred is None or cred.tenant_id != tenant_id:
            raise BadRequest(f"Credential {cid!r} does not exist in this tenant.", param="credential_id")


def endpoint_out(e: t.Endpoint, *, managed: bool | None = None) -> dict[str, Any]:
    """The endpoint as shown to tenant users: a managed endpoint hides its base URL and secret."""
    is_managed = e.managed_model_id is not None if managed is None else managed
    return {
        "id": e.id,
        "name": e.name,
        "kind": e.kind,
        "vendor": e.vendor,
        "category": e.category,
        "base_url": None if is_managed else e.base_url,
        "model_version": e.model_version,
        "credential_id": None if is_managed else e.credential_id,
        "rpm": e.rpm,
        "tpm": e.tpm,
        "quota_tokens": e.quota_tokens,
        "quota_cycle": e.quota_cycle,
        "price_input_per_m": e.price_input_per_m,
        "price_output_per_m": e.price_output_per_m,
        "connect_timeout": e.connect_timeout,
        "read_timeout": e.read_timeout,
        "default_output_tokens": e.default_output_tokens,
        "description": e.description,
        "created_at": e.created_at.isoformat(),
        "updated_at": e.updated_at.isoformat(),
    }


async def get_endpoint(session: AsyncSession, tenant_id: int, name: str) -> t.Endpoint:
    row = (
        await session.execute(
            select(t.Endpoint).where(
                t.Endpoint.tenant_id == tenant_id, t.Endpoint.name == name, t.Endpoint.deleted_at.is_(None)
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"Endpoint '{name}' does not exist.", code="endpoint_not_found")
    return row


async def list_endpoints(session: AsyncSession, tenant_id: int) -> list[t.Endpoint]:
    rows = await session.execute(
        select(t.Endpoint)
        .where(t.Endpoint.tenant_id == tenant_id, t.Endpoint.deleted_at.is_(None))
        .order_by(t.Endpoint.name)
    )
    return list(rows.scalars())


async def create_endpoint(
    session: AsyncSession, settings: Settings, actor: Actor, tenant_id: int, values: dict[str, Any]
) -> t.Endpoint:
    actor.require(Permission.ENDPOINT_CREATE, what="Only Gateway Admins may create endpoints.")
    values = dict(values)
    name = validate_name(values.pop("name", None))
    unknown = set(values) - set(EDITABLE) - {"kind", "managed_model_id"}
    if unknown:
        raise BadRequest(f"Unknown field(s): {', '.join(sorted(unknown))}.", param=sorted(unknown)[0])
    managed = values.get("managed_model_id") is not None
    if not managed:
        for required in ("base_url", "model_version"):
            if not values.get(required):
                raise BadRequest(f"{required} is required.", param=required)
    await _validate(session, settings, tenant_id, values, managed=managed)
    taken = await session.execute(
        select(t.Endpoint.id).where(t.Endpoint.tenant_id == tenant_id, t.Endpoint.name == name)
    )
    if taken.first():
        raise Conflict(f"An endpoint named '{name}' already exists in this tenant.", param="name")
    ep = t.Endpoint(tenant_id=tenant_id, name=name, created_by=actor.user_id, **values)
    session.add(ep)
    await session.flush()
    await write_audit(session, actor, "endpoint.create", "endpoint", tenant_id=tenant_id, target_id=ep.id,
                      target_name=name, after=endpoint_out(ep))  # fmt: skip
    await bump_config_version(session)
    return ep


async def update_endpoint(
    session: AsyncSession, settings: Settings, actor: Actor, ep: t.Endpoint, values: dict[str, Any],
    endpoint_role: str | None = None,
) -> t.Endpoint:  # fmt: skip
    actor.require(Permission.ENDPOINT_EDIT, endpoint_role, what=f"You may not edit endpoint '{ep.name}'.")
    unknown = set(values) - set(EDITABLE)
    if unknown:
        raise BadRequest(f"Unknown or read-only field(s): {', '.join(sorted(unknown))}.", param=sorted(unknown)[0])
    if any(k in values for k in _QUOTA_FIELDS) and not actor.can(Permission.ENDPOINT_EDIT_QUOTA, endpoint_role):
        raise PermissionDenied(f"You may not change the quota of endpoint '{ep.name}'.")
    managed = ep.managed_model_id is not None
    if managed and {"base_url", "credential_id"} & set(values):
        raise BadRequest("A managed endpoint's base URL and credential are set by the instance.", param="base_url")
    values = dict(values)
    await _validate(session, settings, ep.tenant_id, values, managed=managed)
    before = endpoint_out(ep)
    for k, v in values.items():
        setattr(ep, k, v)
    if any(k in values for k in _QUOTA_FIELDS):
        ep.quota_epoch += 1  # limiters start a counter rebuilt from the usage records
    ep.updated_at = utcnow()
    await session.flush()
    after = endpoint_out(ep)
    changed_before = {k: before[k] for k in after if before[k] != after[k] and k != "updated_at"}
    changed_after = {k: after[k] for k in changed_before}
    await write_audit(session, actor, "endpoint.update", "endpoint", tenant_id=ep.tenant_id, target_id=ep.id,
                      target_name=ep.name, before=changed_before, after=changed_after)  # fmt: skip
    await bump_config_version(session)
    return ep


async def copy_endpoint(
    session: AsyncSession, settings: Settings, actor: Actor, source: t.Endpoint, new_name: str
) -> t.Endpoint:
    """Same configuration under a new name (grants and history are not copied)."""
    values = {k: getattr(source, k) for k in EDITABLE}
    values.update(name=new_name, kind=source.kind)
    if source.managed_model_id is not None:
        values["managed_model_id"] = source.managed_model_id
        values.pop("base_url", None)
        values.pop("credential_id", None)
    return await create_endpoint(session, settings, actor, source.tenant_id, values)


async def delete_endpoint(
    session: AsyncSession, actor: Actor, ep: t.Endpoint, *, confirm: bool, endpoint_role: str | None = None
) -> None:
    """Irreversible. A managed endpoint is only hidden from the tenant (the Instance Admin can restore it)."""
    actor.require(Permission.ENDPOINT_DELETE, endpoint_role, what=f"You may not delete endpoint '{ep.name}'.")
    if not confirm:
        raise BadRequest(f"Deleting endpoint '{ep.name}' is irreversible: its grants go with it and clients "
                         "calling it will fail. Repeat the request with confirm=true.",
                         code="confirmation_required", param="confirm")  # fmt: skip
    await write_audit(session, actor, "endpoint.delete", "endpoint", tenant_id=ep.tenant_id, target_id=ep.id,
                      target_name=ep.name, before=endpoint_out(ep))  # fmt: skip
    if ep.managed_model_id is not None:
        ep.deleted_at = utcnow()
        await session.execute(t.Grant.__table__.delete().where(t.Grant.endpoint_id == ep.id))
    else:
        await session.delete(ep)
    await bump_config_version(session)


async def quota_warning(session: AsyncSession, ep: t.Endpoint) -> str | None:
    """An endpoint quota above the tenant's is allowed, but the tenant's is what binds."""
    tenant = await session.get(t.Tenant, ep.tenant_id)
    if ep.quota_tokens is not None and tenant is not None and tenant.quota_tokens is not None:
        if ep.quota_tokens > tenant.quota_tokens:
            return (f"The endpoint quota ({ep.quota_tokens}) is above the tenant quota ({tenant.quota_tokens}); "
                    "the effective limit is the tenant's.")  # fmt: skip
    return None
