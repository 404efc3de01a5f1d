"""The audit log with filters (actor, action, target, time) and paging; scoped by the service."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response
from starlette.routing import Route

from modelgate.console.context import PageContext, page
from modelgate.console.forms import FormState, opt_datetime
from modelgate.console.rendering import render
from modelgate.errors import GatewayError
from modelgate.services.audit_log import query_audit

__all__ = ["routes"]

FILTERS = ("actor", "action", "target_type", "target", "since", "until")
TARGET_TYPES = ("endpoint", "api_key", "credential", "user", "tenant", "managed_model")
PAGE_SIZE = 50


@page
async def audit_log(ctx: PageContext) -> Response:
    q = ctx.request.query_params
    form = FormState({k: q.get(k, "").strip()[:128] for k in FILTERS})
    page_no = int(q["page"]) if q.get("page", "").isdigit() and int(q["page"]) > 0 else 1
    result: dict[str, Any] = {"items": [], "total": 0}
    try:
        since, until = opt_datetime(form, "since", "From"), opt_datetime(form, "until", "To")
        result = await ctx.read(
            lambda s: query_audit(
                s,
                ctx.actor,
                ctx.tenant_id,
                actor_name=form.get("actor") or None,
                action=form.get("action") or None,
                target_type=form.get("target_type") or None,
                target=form.get("target") or None,
                since=since,
                until=until,
                page=min(page_no, 100_000),
                page_size=PAGE_SIZE,
            )
        )
    except GatewayError as exc:
        if exc.status == 403:
            raise
        form.fail(exc, FILTERS)
    pages = max(1, -(-result["total"] // PAGE_SIZE))
    base = urlencode({k: v for k, v in form.values.items() if v})
    return render(
        ctx,
        "audit.html",
        title="Audit log",
        breadcrumb=[("Home", "/console"), ("Audit log", None)],
        form=form,
        items=result["items"],
        total=result["total"],
        page=page_no,
        pages=pages,
        base=base,
        target_types=TARGET_TYPES,
        status=form.status,
    )


routes = [Route("/audit", audit_log, methods=["GET"])]
