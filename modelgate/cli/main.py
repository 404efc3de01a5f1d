"""The ``modelgate`` command: serve, init, migrate and the admin commands for scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from modelgate.cli.commands import admin, db, endpoints, keys, quota, serve, sql, usage
from modelgate.cli.context import CliState

__all__ = ["app", "main"]

app = typer.Typer(
    name="modelgate",
    help="modelgate: a self-hosted AI gateway.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    config: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional here
        typer.Option("--config", envvar="MODELGATE_CONFIG", help="TOML config file; environment variables win."),
    ] = None,
) -> None:
    CliState.config = config


app.command("serve")(serve.serve)
app.command("init")(db.init)
app.command("migrate")(db.migrate)
app.add_typer(endpoints.app, name="endpoints")
app.add_typer(keys.app, name="keys")
app.add_typer(admin.tenants, name="tenants")
app.add_typer(admin.users, name="users")
app.add_typer(admin.grants, name="grants")
app.add_typer(admin.tokens, name="tokens")
app.add_typer(quota.app, name="quota")
app.add_typer(usage.app, name="usage")
app.command("sql")(sql.sql)


def main() -> None:
    app()
