"""``modelgate init`` and ``modelgate migrate``."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.cli.context import CliState, console, fail, print_json, run_tx
from modelgate.secrets_box import SecretBox
from modelgate.services.tenants import CreatedTenant, bootstrap, validate_username
from modelgate.settings import Settings

__all__ = ["announce_bootstrap", "init", "migrate"]


def announce_bootstrap(created: CreatedTenant) -> None:
    console.print(
        f"[bold green]Initialised.[/] Tenant [bold]{created.tenant.name}[/] with its admin "
        f"(Account Admin + Gateway Admin):\n"
        f"  username: [bold]{created.admin.username}[/]\n"
        f"  password: [bold]{created.password}[/]\n"
        "[yellow]The password is shown only this once; store it now.[/]",
        highlight=False,
    )


def init(
    admin: Annotated[str, typer.Option("--admin", help="Username of the bootstrap admin.")] = "admin",
    json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Migrate the database and create the first tenant and its admin (once)."""
    try:
        validate_username(admin)
    except Exception as exc:
        fail(str(exc))

    async def op(session: AsyncSession, box: SecretBox, settings: Settings) -> CreatedTenant | None:
        return await bootstrap(session, admin)

    created = run_tx(op)
    if created is None:
        if json:
            print_json({"initialised": False, "message": "already initialised; nothing changed"})
        else:
            console.print("Already initialised; nothing changed.")
        return
    if json:
        print_json({"initialised": True, "tenant": {"id": created.tenant.id, "name": created.tenant.name},
                    "admin": {"id": created.admin.id, "username": created.admin.username,
                              "password": created.password}})  # fmt: skip
    else:
        announce_bootstrap(created)


def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations (up to head by default)."""
    from modelgate.storage.migrate import upgrade

    settings = CliState.settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        upgrade(settings.effective_database_url, revision)
    except Exception as exc:
        fail(f"migration failed: {exc}")
    console.print(f"Database is at revision {revision}.")
