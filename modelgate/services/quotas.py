"""Token quotas: the tenant's and each endpoint's budget per cycle, and their status.

Available to a request = min(tenant remaining, endpoint remaining). Status numbers come from
the usage records of the cycle (what the limiter rebuilds its counters from), with a daily
trend in the tenant's time zone.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.errors import BadRequest
from modelgate.limits.windows import cycle_bounds
from modelgate.rbac import Permission
from modelgate.services.audit import write_audit
from modelgate.services.context import Actor, bump_config_version
from modelgate.storage import tables as t

__all__ = ["CYCLES", "quota_status", "set_tenant_quota"]

CYCLES = ("daily", "weekly", "monthly")
_NO_QUOTA = {True: "No quota has been set for the current tenant.", False: "No quota has been set for this endpoint."}


async def set_tenant_quota(
    session: AsyncSession, actor: Actor, tenant_id: int, tokens: int | None, cycle: str | None = None
) -> t.Tenant:
    actor.require(Permission.TENANT_QUOTA_MANAGE, what="Only Gateway Admins may set the tenant quota.")
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int) or not 0 <= tokens <= 10**15):
        raise BadRequest("tokens must be an integer between 0 and 10^15, or null to remove the quota.", param="tokens")
    if cycle is not None and cycle not in CYCLES:
        raise BadRequest(f"cycle must be one of {', '.join(CYCLES)}.", param="cycle")
    tenant = await session.get(t.Tenant, tenant_id)
    assert tenant is not None
    before = {"quota_tokens": tenant.quota_tokens, "quota_cycle": tenant.quota_cycle}
    tenant.quota_tokens = tokens
    if cycle is not None:
        tenant.quota_cycle = cycle
    tenant.quota_epoch += 1  # limiters start a counter rebuilt from the usage records
    await write_audit(session, actor, "quota.set", "tenant", tenant_id=tenant_id, target_id=tenant_id,
                      target_name=tenant.name, before=before,
                      after={"quota_tokens": tenant.quota_tokens, "quota_cycle": tenant.quota_cycle})  # fmt: skip
    await bump_config_version(session)
    return tenant


async def quota_status(
    session: AsyncSession, tenant: t.Tenant, *, endpoint: t.Endpoint | None = None, now: float | None = None
) -> dict[str, Any]:
    """Total, used, remaining and the daily trend of the current cycle (tenant's, or an endpoint's)."""
    now = time.time() if now is None else now
    total = endpoint.quota_tokens if endpoint is not None else tenant.quota_tokens
    cycle = endpoint.quota_cycle if endpoint is not None else tenant.quota_cycle
    start, end = cycle_bounds(cycle, tenant.timezone, now)
    zone = ZoneInfo(tenant.timezone)
    col = t.UsageEvent.endpoint_id if endpoint is not None else t.UsageEvent.tenant_id
    subject = endpoint.id if endpoint is not None else tenant.id
    daily: list[dict[str, Any]] = []
    used = 0
    day = start.astimezone(zone).date()
    # one indexed range sum per local day: exact for any time zone offset, at most 31 queries
    while True:
        lo = max(datetime.combine(day, datetime.min.time(), zone), start)
        if lo >= end or lo.timestamp() > now:
            break
        hi = min(datetime.combine(day + timedelta(days=1), datetime.min.time(), zone), end)
        tokens = (
            await session.execute(
                select(func.coalesce(func.sum(t.UsageEvent.input_tokens + t.UsageEvent.output_tokens), 0)).where(
                    col == subject, t.UsageEvent.ts >= lo, t.UsageEvent.ts < hi
                )
            )
        ).scalar_one()
        daily.append({"date": day.isoformat(), "tokens": int(tokens)})
        used += int(tokens)
        day += timedelta(days=1)
    return {
        "total": total,
        "used": used,
        "remaining": None if total is None else max(0, total - used),
        "cycle": cycle,
        "cycle_start": start.isoformat(),
        "cycle_end": end.isoformat(),
        "timezone": tenant.timezone,
        "daily": daily,
        "message": None if total is not None else _NO_QUOTA[endpoint is None],
    }
