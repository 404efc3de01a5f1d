"""Read models of endpoints: who may see which, details, change history, invocation examples."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.errors import NotFound
from modelgate.rbac import Permission
from modelgate.services.context import Actor
from modelgate.services.endpoints import endpoint_out, get_endpoint
from modelgate.storage import tables as t

__all__ = ["endpoint_details", "endpoint_history", "examples", "visible_endpoint", "visible_endpoints"]


async def _grants_of(session: AsyncSession, actor: Actor) -> dict[int, str]:
    if actor.user_id is None:
        return {}
    rows = await session.execute(select(t.Grant.endpoint_id, t.Grant.role).where(t.Grant.user_id == actor.user_id))
    return {eid: role for eid, role in rows.all()}


def _since_created(ts: Any, ep: t.Endpoint | None = None) -> Any:
    """Records of an endpoint are those since its creation: SQLite may hand a deleted endpoint's id
    to the next endpoint created, whose history and counts must not inherit the old records."""
    return ts >= (ep.created_at if ep is not None else t.Endpoint.created_at)


async def visible_endpoints(
    session: AsyncSession, actor: Actor, tenant_id: int, *, category: str | None = None, vendor: str | None = None,
    status: str | None = None, q: str | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Endpoints the actor may see, each with its invocation volume and the actor's role."""
    stmt = select(t.Endpoint).where(t.Endpoint.tenant_id == tenant_id, t.Endpoint.deleted_at.is_(None))
    if category:
        stmt = stmt.where(t.Endpoint.category == category)
    if vendor:
        stmt = stmt.where(t.Endpoint.vendor == vendor)
    if status in ("active", "disabled"):
        stmt = stmt.where(t.Endpoint.is_active.is_(status == "active"))
    if q:
        stmt = stmt.where(t.Endpoint.name.contains(q, autoescape=True))
    endpoints = list((await session.execute(stmt.order_by(t.Endpoint.name))).scalars())
    grants = await _grants_of(session, actor)
    if not actor.can(Permission.ENDPOINT_VIEW):
        endpoints = [e for e in endpoints if actor.can(Permission.ENDPOINT_VIEW, grants.get(e.id))]
    counts: dict[int, int] = {}
    if endpoints:
        rows = await session.execute(
            select(t.UsageEvent.endpoint_id, func.count())
            .join(t.Endpoint, t.Endpoint.id == t.UsageEvent.endpoint_id)
            .where(t.UsageEvent.endpoint_id.in_([e.id for e in endpoints]), _since_created(t.UsageEvent.ts))
            .group_by(t.UsageEvent.endpoint_id)
        )
        counts = {eid: n for eid, n in rows.all()}
    return [
        {**endpoint_out(e), "invocations": counts.get(e.id, 0), "my_role": grants.get(e.id)} for e in endpoints
    ]


async def visible_endpoint(
    session: AsyncSession, actor: Actor, tenant_id: int, name: str
) -> tuple[t.Endpoint, str | None]:
    """The endpoint and the actor's grant on it; 404 (not 403) when the actor may not see it."""
    ep = await get_endpoint(session, tenant_id, name)
    role = (await _grants_of(session, actor)).get(ep.id)
    if not actor.can(Permission.ENDPOINT_VIEW, role):
        raise NotFound(f"Endpoint '{name}' does not exist.", code="endpoint_not_found")
    return ep, role


async def endpoint_history(session: AsyncSession, ep: t.Endpoint, limit: int = 200) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(t.AuditRecord)
        .where(t.AuditRecord.target_type == "endpoint", t.AuditRecord.target_id == str(ep.id),
               t.AuditRecord.tenant_id == ep.tenant_id, _since_created(t.AuditRecord.ts, ep))  # fmt: skip
        .order_by(t.AuditRecord.id.desc())
        .limit(limit)
    )
    return [
        {"id": r.id, "ts": r.ts.isoformat(), "actor": r.actor_name, "action": r.action, "before": r.before,
         "after": r.after}  # fmt: skip
        for r in rows.scalars()
    ]


async def endpoint_details(session: AsyncSession, actor: Actor, ep: t.Endpoint, role: str | None) -> dict[str, Any]:
    invocations = (
        await session.execute(select(func.count()).select_from(t.UsageEvent).where(
            t.UsageEvent.endpoint_id == ep.id, _since_created(t.UsageEvent.ts, ep)))
    ).scalar_one()
    users = await session.execute(
        select(t.Grant, t.User.username).join(t.User, t.User.id == t.Grant.user_id).where(t.Grant.endpoint_id == ep.id)
    )
    from modelgate.services.quotas import quota_status

    tenant = await session.get(t.Tenant, ep.tenant_id)
    assert tenant is not None
    return {
        **endpoint_out(ep),
        "quota": await quota_status(session, tenant, endpoint=ep),
        "invocations": invocations,
        "my_role": role,
        "authorized_users": [
            {"grant_id": g.id, "user_id": g.user_id, "username": u, "role": g.role} for g, u in users.all()
        ],
        "history": await endpoint_history(session, ep, limit=50),
    }


_PATHS = {"llm": "chat/completions", "embedding": "embeddings", "image": "images/generations"}


def examples(base_url: str, ep: t.Endpoint) -> dict[str, str]:
    """Ready-to-run snippets with this gateway's public base URL and the endpoint's name."""
    v1 = base_url.rstrip("/") + "/v1"
    if ep.category == "embedding":
        py_call = f'resp = client.embeddings.create(model="{ep.name}", input="hello")\nprint(resp.data[0].embedding[:8])'
        body = f'{{"model": "{ep.name}", "input": "hello"}}'
    elif ep.category == "image":
        py_call = f'resp = client.images.generate(model="{ep.name}", prompt="a lighthouse at dawn")\nprint(resp.data[0])'
        body = f'{{"model": "{ep.name}", "prompt": "a lighthouse at dawn"}}'
    else:
        py_call = (
            f'resp = client.chat.completions.create(\n    model="{ep.name}",\n'
            '    messages=[{"role": "user", "content": "Hello!"}],\n)\nprint(resp.choices[0].message.content)'
        )
        body = f'{{"model": "{ep.name}", "messages": [{{"role": "user", "content": "Hello!"}}]}}'
    python = (
        "import os\nfrom openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{v1}", api_key=os.environ["MODELGATE_API_KEY"])\n{py_call}\n'
    )
    curl = (
        f"curl {v1}/{_PATHS[ep.category]} \\\n  -H \"Authorization: Bearer $MODELGATE_API_KEY\" \\\n"
        f"  -H 'Content-Type: application/json' \\\n  -d '{body}'\n"
    )
    return {"openai_python": python, "curl": curl}
