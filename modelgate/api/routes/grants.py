"""Endpoint role grants and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query

from modelgate.api.deps import Context
from modelgate.api.schemas import GrantCreate
from modelgate.services import grants as gsvc
from modelgate.services.audit_log import query_audit

router = APIRouter(tags=["grants", "audit"])


@router.get("/grants")
async def list_grants(ctx: Context, user: str | None = None, endpoint: str | None = None) -> list[dict[str, Any]]:
    return await ctx.read(lambda s: gsvc.list_grants(s, ctx.actor, ctx.tenant_id, username=user, endpoint=endpoint))


@router.post("/grants", status_code=201)
async def create_grants(body: GrantCreate, ctx: Context) -> list[dict[str, Any]]:
    return await ctx.write(lambda s: gsvc.grant_roles(s, ctx.actor, ctx.tenant_id, username=body.username,
                                                      role=body.role, endpoints=body.endpoints))  # fmt: skip


@router.delete("/grants/{grant_id}", status_code=204)
async def revoke_grant(grant_id: int, ctx: Context) -> None:
    await ctx.write(lambda s: gsvc.revoke_grant(s, ctx.actor, ctx.tenant_id, grant_id))


@router.get("/audit-log")
async def audit_log(
    ctx: Context, actor: str | None = None, action: str | None = None, target_type: str | None = None,
    target: str | None = None, since: datetime | None = None, until: datetime | None = None,
    page: int = Query(default=1, ge=1, le=100_000), page_size: int = Query(default=50, ge=1, le=500),
) -> dict[str, Any]:  # fmt: skip
    return await ctx.read(lambda s: query_audit(s, ctx.actor, ctx.tenant_id, actor_name=actor, action=action,
                                                target_type=target_type, target=target, since=since, until=until,
                                                page=page, page_size=page_size))  # fmt: skip
