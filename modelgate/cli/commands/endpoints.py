"""``modelgate endpoints ...``: the forms scripts rely on are kept exactly."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.cli.context import console, print_json, run_tx
from modelgate.secrets_box import SecretBox
from modelgate.services import credentials as creds
from modelgate.services import endpoints as svc
from modelgate.services.context import Actor
from modelgate.services.tenants import get_tenant
from modelgate.settings import Settings
from modelgate.storage import tables as t

__all__ = ["app"]

app = typer.Typer(help="Create, list and change model endpoints.", no_args_is_help=True)

TenantOpt = Annotated[str | None, typer.Option("--tenant", help="Tenant name (default: the first tenant).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")]


async def _free_credential_name(session: AsyncSession, tenant_id: int, base: str) -> str:
    taken = set(
        (await session.execute(select(t.VendorCredential.name).where(t.VendorCredential.tenant_id == tenant_id)))
        .scalars()
        .all()
    )
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Endpoint name, e.g. lis_aliyun_qwen_max.")],
    base_url: Annotated[str, typer.Option("--base-url", help="The vendor's OpenAI-compatible base URL.")],
    model_version: Annotated[str, typer.Option("--model-version", help="Upstream model id, e.g. qwen-max.")],
    api_key: Annotated[str | None, typer.Option("--api-key", help="The vendor secret (stored encrypted).")] = None,
    category: Annotated[str, typer.Option("--category", help="llm | embedding | image")] = "llm",
    vendor: Annotated[str, typer.Option("--vendor", help="Vendor id (see GET /api/v1/vendors).")] = "custom",
    tenant: TenantOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create an external endpoint; --api-key becomes an encrypted vendor credential."""

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> dict[str, Any]:
        tn = await get_tenant(session, tenant)
        actor = Actor.system(tn.id)
        svc.validate_name(name)
        values: dict[str, Any] = {"name": name, "base_url": base_url, "model_version": model_version,
                                  "category": category, "vendor": vendor, "kind": "custom"}  # fmt: skip
        if api_key is not None:
            cname = await _free_credential_name(session, tn.id, f"{name}-key")
            cred = await creds.create_credential(session, box, actor, tn.id, name=cname, secret=api_key, vendor=vendor)
            values["credential_id"] = cred.id
        ep = await svc.create_endpoint(session, settings, actor, tn.id, values)
        return svc.endpoint_out(ep)

    out = run_tx(op)
    if json:
        print_json(out)
    else:
        console.print(f"Created endpoint [bold]{out['name']}[/] (id {out['id']}, {out['category']}).", highlight=False)


@app.command("list")
def list_(tenant: TenantOpt = None, json: JsonOpt = False) -> None:
    """List the tenant's endpoints."""

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> list[dict[str, Any]]:
        tn = await get_tenant(session, tenant)
        return [svc.endpoint_out(e) for e in await svc.list_endpoints(session, tn.id)]

    rows = run_tx(op)
    if json:
        print_json(rows)
        return
    table = Table("id", "name", "category", "vendor", "model version", "base url", "rpm", "tpm", "quota")
    for r in rows:
        table.add_row(str(r["id"]), r["name"], r["category"], r["vendor"], r["model_version"], r["base_url"] or "(managed)",
                      _n(r["rpm"]), _n(r["tpm"]), _n(r["quota_tokens"]))  # fmt: skip
    console.print(table)


def _n(v: int | None) -> str:
    return "-" if v is None else str(v)


@app.command("update")
def update(
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    rpm: Annotated[int | None, typer.Option("--rpm", help="Requests per minute (0 blocks).", min=0)] = None,
    tpm: Annotated[int | None, typer.Option("--tpm", help="Tokens per minute.", min=0)] = None,
    quota: Annotated[int | None, typer.Option("--quota", help="Token quota per cycle.", min=0)] = None,
    quota_cycle: Annotated[str | None, typer.Option("--quota-cycle", help="daily | weekly | monthly")] = None,
    model_version: Annotated[str | None, typer.Option("--model-version", help="Upstream model id.")] = None,
    tenant: TenantOpt = None,
    json: JsonOpt = False,
) -> None:
    """Change an endpoint's limits, quota or model version."""
    values: dict[str, Any] = {k: v for k, v in {"rpm": rpm, "tpm": tpm, "quota_tokens": quota,
                              "quota_cycle": quota_cycle, "model_version": model_version}.items() if v is not None}  # fmt: skip
    if not values:
        from modelgate.cli.context import fail

        fail("Nothing to change: give at least one of --rpm, --tpm, --quota, --quota-cycle, --model-version.")

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> dict[str, Any]:
        tn = await get_tenant(session, tenant)
        ep = await svc.get_endpoint(session, tn.id, name)
        ep = await svc.update_endpoint(session, settings, Actor.system(tn.id), ep, values)
        out = svc.endpoint_out(ep)
        warning = await svc.quota_warning(session, ep)
        if warning:
            out["warnings"] = [warning]
        return out

    out = run_tx(op)
    if json:
        print_json(out)
    else:
        console.print(f"Updated endpoint [bold]{name}[/].", highlight=False)
        for w in out.get("warnings", []):
            console.print(f"[yellow]warning:[/] {w}", highlight=False)
