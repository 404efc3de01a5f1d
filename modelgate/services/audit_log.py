"""Querying the audit trail: filters, paging, and scoping by role."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.errors import PermissionDenied
from modelgate.rbac import Permission
from modelgate.services.context import Actor
from modelgate.storage import tables as t

__all__ = ["query_audit"]


def audit_out(r: t.AuditRecord) -> dict[str, Any]:
    return {"id": r.id, "ts": r.ts.isoformat(), "actor": r.actor_name, "actor_id": r.actor_id, "action": r.action,
            "target_type": r.target_type, "target_id": r.target_id, "target_name": r.target_name,
            "before": r.before, "after": r.after}  # fmt: skip


async def query_audit(
    session: AsyncSession, actor: Actor, tenant_id: int, *, actor_name: str | None = None, action: str | None = None,
    target_type: str | None = None, target: str | None = None, since: datetime | None = None,
    until: datetime | None = None, page: int = 1, page_size: int = 50,
) -> dict[str, Any]:  # fmt: skip
    """Gateway Admins see the tenant's whole trail; Endpoint Admins the records of their endpoints;
    the Instance Admin also the instance-level records (managed-model catalog), which belong to no tenant."""
    scope = t.AuditRecord.tenant_id == tenant_id
    instance = actor.can(Permission.TENANTS_MANAGE) or actor.can(Permission.MANAGED_MODELS_MANAGE)
    if not actor.can(Permission.AUDIT_ALL):
        rows = await session.execute(select(t.Grant.endpoint_id, t.Grant.role).where(t.Grant.user_id == actor.user_id))
        own = [str(eid) for eid, role in rows.all() if actor.can(Permission.ENDPOINT_AUDIT, role)]
        if not own and not instance:
            raise PermissionDenied("Only Gateway Admins and Endpoint Admins may read the audit log.")
        scope = scope & (t.AuditRecord.target_type == "endpoint") & t.AuditRecord.target_id.in_(own)
    if instance:
        scope = scope | t.AuditRecord.tenant_id.is_(None)
    stmt = select(t.AuditRecord).where(scope)
    if actor_name:
        stmt = stmt.where(t.AuditRecord.actor_name == actor_name)
    if action:
        stmt = stmt.where(t.AuditRecord.action.startswith(action, autoescape=True))
    if target_type:
        stmt = stmt.where(t.AuditRecord.target_type == target_type)
    if target:
        stmt = stmt.where((t.AuditRecord.target_name == target) | (t.AuditRecord.target_id == target))
    if since:
        stmt = stmt.where(t.AuditRecord.ts >= since)
    if until:
        stmt = stmt.where(t.AuditRecord.ts < until)
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = await session.execute(
        stmt.order_by(t.AuditRecord.id.desc()).offset((page - 1) * page_size).limit(page_size)
    )
    return {"items": [audit_out(r) for r in rows.scalars()], "total": total, "page": page, "page_size": page_size}
