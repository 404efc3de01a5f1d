"""``modelgate tenants|users|grants|tokens ...``: the control plane for scripts."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.cli.context import console, print_json, run_tx
from modelgate.secrets_box import SecretBox
from modelgate.services import grants as gsvc
from modelgate.services import sessions as ssvc
from modelgate.services import tenants as tsvc
from modelgate.services import users as usvc
from modelgate.services.context import Actor
from modelgate.settings import Settings

__all__ = ["grants", "tenants", "tokens", "users"]

TenantOpt = Annotated[str | None, typer.Option("--tenant", help="Tenant name (default: the first tenant).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")]

tenants = typer.Typer(help="Tenants (instance administration).", no_args_is_help=True)
users = typer.Typer(help="Users of a tenant.", no_args_is_help=True)
grants = typer.Typer(help="Endpoint role grants.", no_args_is_help=True)
tokens = typer.Typer(help="Personal access tokens for the admin API.", no_args_is_help=True)


@tenants.command("create")
def tenants_create(
    name: Annotated[str, typer.Argument(help="Tenant name.")],
    admin: Annotated[str, typer.Option("--admin", help="Username of the tenant's Account Admin.")],
    timezone: Annotated[str, typer.Option("--timezone", help="IANA time zone for quota cycles.")] = "UTC",
    json: JsonOpt = False,
) -> None:
    """Create a tenant and its Account Admin (who is its first Gateway Admin); prints the password once."""

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> dict[str, Any]:
        created = await tsvc.create_tenant(session, Actor.system(), name, admin, timezone=timezone)
        return {**tsvc.tenant_out(created.tenant), "admin": {"id": created.admin.id,
                "username": created.admin.username, "password": created.password}}  # fmt: skip

    out = run_tx(op)
    if json:
        print_json(out)
    else:
        console.print(f"Created tenant [bold]{name}[/] (id {out['id']}); admin [bold]{admin}[/] password: "
                      f"[bold]{out['admin']['password']}[/] [yellow](shown only this once)[/]", highlight=False)  # fmt: skip


@tenants.command("list")
def tenants_list(json: JsonOpt = False) -> None:
    """List tenants."""

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> list[dict[str, Any]]:
        return [tsvc.tenant_out(tn) for tn in await tsvc.list_tenants(session, Actor.system())]

    rows = run_tx(op)
    if json:
        print_json(rows)
        return
    table = Table("id", "name", "timezone", "quota", "created")
    for r in rows:
        table.add_row(str(r["id"]), r["name"], r["timezone"], str(r["quota_tokens"] or "-"), r["created_at"])
    console.print(table)


@users.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="Username, unique within the tenant.")],
    password: Annotated[str | None, typer.Option("--password", help="Password (default: generated).")] = None,
    tenant: TenantOpt = None,
    json: JsonOpt = False,
) -> None:
    """Add a user to a tenant (a plain member until granted roles)."""

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> dict[str, Any]:
        tn = await tsvc.get_tenant(session, tenant)
        user, generated = await usvc.create_user(session, Actor.system(tn.id), tn.id, username=username,
                                                 password=password)  # fmt: skip
        out = usvc.user_out(user, ["MEMBER"])
        if generated:
            out["password"] = generated
        return out

    out = run_tx(op)
    if json:
        print_json(out)
    else:
        extra = f"; password: [bold]{out['password']}[/] [yellow](shown only this once)[/]" if "password" in out else ""
        console.print(f"Created user [bold]{username}[/] (id {out['id']}){extra}", highlight=False)


@users.command("list")
def users_list(tenant: TenantOpt = None, json: JsonOpt = False) -> None:
    """List the users of a tenant with their tenant roles."""

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> list[dict[str, Any]]:
        tn = await tsvc.get_tenant(session, tenant)
        return await usvc.list_users(session, Actor.system(tn.id), tn.id)

    rows = run_tx(op)
    if json:
        print_json(rows)
        return
    table = Table("id", "username", "roles", "active")
    for r in rows:
        table.add_row(str(r["id"]), r["username"], ", ".join(r["tenant_roles"]), "yes" if r["is_active"] else "no")
    console.print(table)


@grants.command("create")
def grants_create(
    user: Annotated[str, typer.Option("--user", help="Username.")],
    role: Annotated[str, typer.Option("--role", help="ENDPOINT_ADMIN|ENDPOINT_OPERATOR|ENDPOINT_USER|ENDPOINT_VIEWER")],
    endpoint: Annotated[list[str], typer.Option("--endpoint", help="Endpoint name; repeat for several.")],
    tenant: TenantOpt = None,
    json: JsonOpt = False,
) -> None:
    """Grant a user one role on one or more endpoints."""

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> list[dict[str, Any]]:
        tn = await tsvc.get_tenant(session, tenant)
        return await gsvc.grant_roles(session, Actor.system(tn.id), tn.id, username=user, role=role, endpoints=endpoint)

    out = run_tx(op)
    if json:
        print_json(out)
    else:
        console.print(f"Granted {role} to [bold]{user}[/] on {', '.join(endpoint)}.", highlight=False)


@grants.command("revoke")
def grants_revoke(
    user: Annotated[str, typer.Option("--user", help="Username.")],
    endpoint: Annotated[str, typer.Option("--endpoint", help="Endpoint name.")],
    tenant: TenantOpt = None,
) -> None:
    """Revoke a user's role on an endpoint."""

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> None:
        tn = await tsvc.get_tenant(session, tenant)
        await gsvc.revoke_user_endpoint(session, Actor.system(tn.id), tn.id, user, endpoint)

    run_tx(op)
    console.print(f"Revoked [bold]{user}[/]'s role on {endpoint}.", highlight=False)


@grants.command("list")
def grants_list(
    user: Annotated[str | None, typer.Option("--user")] = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint")] = None,
    tenant: TenantOpt = None,
    json: JsonOpt = False,
) -> None:
    """List grants, by user or by endpoint."""

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> list[dict[str, Any]]:
        tn = await tsvc.get_tenant(session, tenant)
        return await gsvc.list_grants(session, Actor.system(tn.id), tn.id, username=user, endpoint=endpoint)

    rows = run_tx(op)
    if json:
        print_json(rows)
        return
    table = Table("id", "user", "endpoint", "role")
    for r in rows:
        table.add_row(str(r["id"]), r["username"], r["endpoint"], r["role"])
    console.print(table)


@tokens.command("create")
def tokens_create(
    user: Annotated[str, typer.Option("--user", help="Username the token acts as.")],
    name: Annotated[str | None, typer.Option("--name", help="A label.")] = None,
    tenant: TenantOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a personal access token (for /api/v1 scripts); the secret is printed once."""

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> dict[str, Any]:
        tn = await tsvc.get_tenant(session, tenant)
        target = await usvc.user_by_name(session, tn.id, user, param="user")
        tok, secret = await ssvc.create_token(session, Actor.system(tn.id), target, name, None)
        return {"id": tok.id, "name": tok.name, "user": user, "secret": secret}

    out = run_tx(op)
    if json:
        print_json(out)
    else:
        console.print(f"Token for [bold]{user}[/]: [bold]{out['secret']}[/] [yellow](shown only this once)[/]",
                      highlight=False)  # fmt: skip
