"""The ONLY reader that builds data-plane state from storage, in one read transaction."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.runtime.snapshot import EndpointEntry, KeyEntry, Snapshot, TenantEntry
from modelgate.secrets_box import SecretBox
from modelgate.settings import Settings
from modelgate.storage import tables as t

__all__ = ["load_snapshot", "read_version"]


async def read_version(session: AsyncSession) -> int:
    return int((await session.execute(select(t.ConfigState.version).where(t.ConfigState.id == 1))).scalar_one())


def _decrypt(box: SecretBox, ciphertext: str | None) -> str | None:
    if ciphertext is None:
        return None
    try:
        return box.decrypt(ciphertext)
    except ValueError:
        return None  # a credential from another master key: the endpoint answers 502 until fixed


async def load_snapshot(session: AsyncSession, box: SecretBox, settings: Settings) -> Snapshot:
    version = await read_version(session)
    tenants = {
        row.id: TenantEntry(row.id, row.name, row.timezone, row.quota_tokens, row.quota_cycle, row.quota_epoch)
        for row in (await session.execute(select(t.Tenant))).scalars()
    }
    active_users = frozenset(
        (await session.execute(select(t.User.id).where(t.User.is_active.is_(True)))).scalars()
    )
    keys = {
        k.public_id: KeyEntry(
            id=k.id,
            tenant_id=k.tenant_id,
            public_id=k.public_id,
            digest=k.secret_digest,
            previous_digest=k.previous_digest,
            previous_valid_until=k.previous_valid_until.timestamp() if k.previous_valid_until else None,
            owner_id=k.owner_id,
            is_active=k.status == "active",
            expires_at=k.expires_at.timestamp() if k.expires_at else None,
            rpm=k.rpm,
            tpm=k.tpm,
        )
        for k in (await session.execute(select(t.ApiKey))).scalars()
    }
    credentials = {
        c.id: c.secret_ciphertext for c in (await session.execute(select(t.VendorCredential))).scalars()
    }
    managed = {m.id: m for m in (await session.execute(select(t.ManagedModel))).scalars()}
    endpoints: dict[int, dict[str, EndpointEntry]] = {tid: {} for tid in tenants}
    rows = await session.execute(
        select(t.Endpoint).where(t.Endpoint.deleted_at.is_(None), t.Endpoint.is_active.is_(True))
    )
    for e in rows.scalars():
        base_url, ciphertext = e.base_url, credentials.get(e.credential_id) if e.credential_id else None
        if e.managed_model_id is not None:
            m = managed.get(e.managed_model_id)
            if m is None or not m.is_active:
                continue
            base_url, ciphertext = m.base_url, m.secret_ciphertext
        secret = _decrypt(box, ciphertext)
        headers = {"Content-Type": "application/json"}
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
        endpoints.setdefault(e.tenant_id, {})[e.name] = EndpointEntry(
            id=e.id,
            tenant_id=e.tenant_id,
            name=e.name,
            category=e.category,
            api_family=e.api_family,
            base_url=(base_url or "").rstrip("/"),
            model_version=e.model_version,
            upstream_secret=secret,
            rpm=e.rpm,
            tpm=e.tpm,
            quota_tokens=e.quota_tokens,
            quota_cycle=e.quota_cycle,
            quota_epoch=e.quota_epoch,
            price_input_per_m=e.price_input_per_m,
            price_output_per_m=e.price_output_per_m,
            connect_timeout=e.connect_timeout or settings.upstream_connect_timeout,
            read_timeout=e.read_timeout or settings.upstream_read_timeout,
            default_output_tokens=e.default_output_tokens or 256,
            created_at=int(e.created_at.timestamp()),
            upstream_headers=headers,
        )
    tenant_roles: dict[int, set[str]] = {}
    for r in (await session.execute(select(t.TenantRoleRow))).scalars():
        tenant_roles.setdefault(r.user_id, set()).add(r.role)
    grants = {(g.user_id, g.endpoint_id): g.role for g in (await session.execute(select(t.Grant))).scalars()}
    return Snapshot(
        version=version,
        keys=keys,
        endpoints=endpoints,
        tenant_roles={u: frozenset(r) for u, r in tenant_roles.items()},
        grants=grants,
        tenants=tenants,
        active_users=active_users,
    )


async def quota_used_since(session: AsyncSession, kind: str, subject_id: int, start: float) -> int:
    """Tokens recorded for a tenant or an endpoint since ``start``: what a rebuilt quota counter holds."""
    from datetime import UTC, datetime

    from sqlalchemy import func

    column = t.UsageEvent.tenant_id if kind == "tenant" else t.UsageEvent.endpoint_id
    total = await session.execute(
        select(func.coalesce(func.sum(t.UsageEvent.input_tokens + t.UsageEvent.output_tokens), 0)).where(
            column == subject_id, t.UsageEvent.ts >= datetime.fromtimestamp(start, UTC)
        )
    )
    return int(total.scalar_one())
