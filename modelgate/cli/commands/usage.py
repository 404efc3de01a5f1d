"""``modelgate usage``: the statistics table, CSV exports and retention."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.cli.context import console, print_json, run_tx
from modelgate.secrets_box import SecretBox
from modelgate.services.context import Actor
from modelgate.services.tenants import get_tenant
from modelgate.services.usage_stats import export_month, month_bounds, stats_csv, usage_stats
from modelgate.settings import Settings
from modelgate.usage.retention import prune as prune_usage

__all__ = ["app"]

app = typer.Typer(help="Usage statistics, exports and retention.", invoke_without_command=True)
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="Tenant name (default: the first tenant).")]


@app.callback()
def show(
    ctx: typer.Context,
    dimension: Annotated[str, typer.Option("--dimension", help="endpoint | user | api_key | tenant")] = "endpoint",
    range_: Annotated[str, typer.Option("--range", help="last_week | last_month | custom")] = "last_week",
    start: Annotated[str | None, typer.Option("--start", help="YYYY-MM-DD (custom range)")] = None,
    end: Annotated[str | None, typer.Option("--end", help="YYYY-MM-DD (custom range)")] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Write the rows as CSV to this file ('-' for stdout).")] = None,
    json: Annotated[bool, typer.Option("--json")] = False,
    tenant: TenantOpt = None,
) -> None:
    """Show usage statistics per day (and export them as CSV)."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        d_start = date.fromisoformat(start) if start else None
        d_end = date.fromisoformat(end) if end else None
    except ValueError:
        from modelgate.cli.context import fail

        fail("--start and --end are dates: YYYY-MM-DD.")

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> dict[str, Any]:
        tn = await get_tenant(session, tenant)
        return await usage_stats(session, Actor.system(tn.id), tn, dimension=dimension, range_=range_,
                                 start=d_start, end=d_end)  # fmt: skip

    stats = run_tx(op)
    if csv_file is not None:
        text = stats_csv(stats)
        if str(csv_file) == "-":
            sys.stdout.write(text)
        else:
            csv_file.write_text(text)
            console.print(f"Wrote {len(stats['rows'])} rows to {csv_file}.")
        return
    if json:
        print_json(stats)
        return
    table = Table(dimension, "date", "calls", "input", "output", "total", "cost",
                  title=f"Usage by {dimension}, {stats['start']} to {stats['end']} ({stats['timezone']})")  # fmt: skip
    for r in stats["rows"]:
        table.add_row(r["name"], r["date"], str(r["calls"]), str(r["input_tokens"]), str(r["output_tokens"]),
                      str(r["total_tokens"]), f"{r['cost']:.4f}")  # fmt: skip
    tot = stats["totals"]
    table.add_row("[bold]total[/]", "", str(tot["calls"]), str(tot["input_tokens"]), str(tot["output_tokens"]),
                  str(tot["total_tokens"]), f"{tot['cost']:.4f}")  # fmt: skip
    console.print(table)


@app.command("export")
def export(
    month: Annotated[str, typer.Option("--month", help="YYYY-MM (one of the last 12 months).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV file to write ('-' for stdout).")],
    tenant: TenantOpt = None,
) -> None:
    """Export every request of a month as CSV (streamed, any size)."""

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> int:
        tn = await get_tenant(session, tenant)
        month_bounds(tn, month)  # refuse a bad or too old month before creating the file
        out = sys.stdout if str(output) == "-" else output.open("w", newline="")
        lines = 0
        try:
            async for chunk in export_month(session, tn, month):
                out.write(chunk)
                lines += chunk.count("\n")
        finally:
            if out is not sys.stdout:
                out.close()
        return lines - 1

    n = run_tx(op)
    if str(output) != "-":
        console.print(f"Wrote {n} requests to {output}.")


@app.command("prune")
def prune(
    detail_days: Annotated[int | None, typer.Option("--detail-days", min=1, help="Keep per-request rows this long.")] = None,
    rollup_days: Annotated[int | None, typer.Option("--rollup-days", min=1, help="Keep rollups this long.")] = None,
) -> None:
    """Remove usage data older than the retention horizons (the server also does this hourly)."""

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> dict[str, Any]:
        return await prune_usage(session, detail_days=detail_days or settings.usage_detail_retention_days,
                                 rollup_days=rollup_days or settings.usage_rollup_retention_days)  # fmt: skip

    result = run_tx(op)
    console.print(
        f"Removed {result['details_deleted']} request rows (before {result['detail_horizon']}), "
        f"{result['minute_rollups_deleted']} minute and {result['daily_rollups_deleted']} daily rollups "
        f"(before {result['rollup_horizon']}).", highlight=False,
    )
