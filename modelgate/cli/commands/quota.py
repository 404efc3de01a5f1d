"""``modelgate quota set|show``: the tenant's token quota."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.cli.context import console, print_json, run_tx
from modelgate.secrets_box import SecretBox
from modelgate.services.context import Actor
from modelgate.services.quotas import quota_status, set_tenant_quota
from modelgate.services.tenants import get_tenant
from modelgate.settings import Settings

__all__ = ["app"]

app = typer.Typer(help="The tenant's token quota.", no_args_is_help=True)
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="Tenant name (default: the first tenant).")]


@app.command("set")
def set_(
    tokens: Annotated[int, typer.Option("--tokens", help="Tokens per cycle.", min=0)],
    cycle: Annotated[str | None, typer.Option("--cycle", help="daily | weekly | monthly")] = None,
    tenant: TenantOpt = None,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Set the tenant's token quota (takes effect on the next request)."""

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> dict[str, Any]:
        tn = await get_tenant(session, tenant)
        tn = await set_tenant_quota(session, Actor.system(tn.id), tn.id, tokens, cycle)
        await session.flush()
        return await quota_status(session, tn)

    out = run_tx(op)
    if json:
        print_json(out)
    else:
        per = {"daily": "day", "weekly": "week", "monthly": "month"}[out["cycle"]]
        console.print(f"Quota set: {out['total']} tokens per {per}.", highlight=False)


@app.command("show")
def show(tenant: TenantOpt = None, json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show total, used and remaining tokens of the current cycle, with the daily trend."""

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> dict[str, Any]:
        return await quota_status(session, await get_tenant(session, tenant))

    out = run_tx(op)
    if json:
        print_json(out)
        return
    if out["total"] is None:
        console.print(out["message"])
    table = Table("cycle", "start", "end", "total", "used", "remaining")
    table.add_row(out["cycle"], out["cycle_start"], out["cycle_end"], str(out["total"] or "-"), str(out["used"]),
                  str(out["remaining"] if out["remaining"] is not None else "-"))  # fmt: skip
    console.print(table)
    trend = Table("date", "tokens")
    for d in out["daily"]:
        trend.add_row(d["date"], str(d["tokens"]))
    console.print(trend)
