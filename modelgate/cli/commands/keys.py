"""``modelgate keys ...``: gateway API keys for scripts."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.cli.context import console, print_json, run_tx
from modelgate.secrets_box import SecretBox
from modelgate.services import keys as svc
from modelgate.services.context import Actor
from modelgate.services.tenants import get_tenant
from modelgate.settings import Settings

__all__ = ["app"]

app = typer.Typer(help="Create, list, disable, rotate and delete gateway API keys.", no_args_is_help=True)

TenantOpt = Annotated[str | None, typer.Option("--tenant", help="Tenant name (default: the first tenant).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")]


@app.command("create")
def create(
    owner: Annotated[str, typer.Option("--owner", help="Username of the key's owner.")],
    name: Annotated[str | None, typer.Option("--name", help="A label for the key.")] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", help="Requests per minute for this key.", min=0)] = None,
    tpm: Annotated[int | None, typer.Option("--tpm", help="Tokens per minute for this key.", min=0)] = None,
    tenant: TenantOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a key; its secret is printed this once."""

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> dict[str, Any]:
        tn = await get_tenant(session, tenant)
        key, secret = await svc.create_key(session, Actor.system(tn.id), tn.id, owner=owner, name=name, rpm=rpm,
                                           tpm=tpm)  # fmt: skip
        return {**svc.key_out(key, owner), "secret": secret}

    out = run_tx(op)
    if json:
        print_json(out)
    else:
        console.print(f"Created key [bold]{out['name']}[/] (id {out['id']}) for {owner}.\n"
                      f"secret: [bold]{out['secret']}[/]\n[yellow]Shown only this once; store it now.[/]",
                      highlight=False)  # fmt: skip


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option("--status", help="active | disabled | expired")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Only this user's keys.")] = None,
    tenant: TenantOpt = None,
    json: JsonOpt = False,
) -> None:
    """List keys (never their secrets)."""

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> list[dict[str, Any]]:
        tn = await get_tenant(session, tenant)
        rows = await svc.list_keys(session, Actor.system(tn.id), tn.id, status=status, owner=owner)
        return [svc.key_out(k, u) for k, u in rows]

    rows = run_tx(op)
    if json:
        print_json(rows)
        return
    table = Table("id", "name", "prefix", "owner", "status", "expires", "last used")
    for r in rows:
        table.add_row(str(r["id"]), r["name"], r["prefix"], r["owner"], r["status"], r["expires_at"] or "-",
                      r["last_used_at"] or "-")  # fmt: skip
    console.print(table)


async def _key_tenant(session: AsyncSession, key_id: int) -> int:
    from modelgate.errors import NotFound
    from modelgate.storage import tables as t

    key = await session.get(t.ApiKey, key_id)
    if key is None:
        raise NotFound(f"API key {key_id} does not exist.")
    return key.tenant_id


def _set_status(key_id: int, status: str) -> None:
    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> None:
        tid = await _key_tenant(session, key_id)
        await svc.set_key_status(session, Actor.system(tid), tid, key_id, status)

    run_tx(op)
    console.print(f"Key {key_id} is now {status}.")


@app.command("disable")
def disable(key_id: Annotated[int, typer.Argument(help="Key id.")]) -> None:
    """Disable a key: refused from the next request on, in every gateway process."""
    _set_status(key_id, "disabled")


@app.command("enable")
def enable(key_id: Annotated[int, typer.Argument(help="Key id.")]) -> None:
    """Enable a disabled key."""
    _set_status(key_id, "active")


@app.command("delete")
def delete(
    key_id: Annotated[int, typer.Argument(help="Key id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a key (irreversible)."""
    if not yes and not typer.confirm(f"Delete API key {key_id}? This cannot be undone.", default=False):
        console.print("Nothing deleted.")
        raise typer.Exit(1)

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> None:
        tid = await _key_tenant(session, key_id)
        await svc.delete_key(session, Actor.system(tid), tid, key_id)

    run_tx(op)
    console.print(f"Deleted key {key_id}.")


@app.command("rotate")
def rotate(
    key_id: Annotated[int, typer.Argument(help="Key id.")],
    grace: Annotated[int, typer.Option("--grace", help="Seconds the old secret keeps working.", min=0)] = 0,
    json: JsonOpt = False,
) -> None:
    """Issue a new secret for a key; the old one stops now or after --grace seconds."""

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> dict[str, Any]:
        tid = await _key_tenant(session, key_id)
        key, secret = await svc.rotate_key(session, Actor.system(tid), tid, key_id, grace)
        return {**svc.key_out(key), "secret": secret, "grace_seconds": grace}

    out = run_tx(op)
    if json:
        print_json(out)
    else:
        console.print(f"New secret: [bold]{out['secret']}[/] [yellow](shown only this once)[/]", highlight=False)
