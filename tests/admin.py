"""Configuration changes for end-to-end tests, made the way an operator makes them: through the
``modelgate`` CLI of a running gateway's data directory, then waiting until that gateway's
snapshot has caught up (its configuration-version poll is part of what is under test).

The one change the CLI does not offer (per-endpoint timeouts) is written to SQLite directly,
with the ``config_state.version`` bump in the same transaction, as any other process would.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from tests.harness import GatewayProcess

__all__ = ["create_tenant", "create_user", "grant", "set_endpoint_timeouts", "set_key_status", "tenant_id"]


def _cli(gw: GatewayProcess, *args: str) -> Any:
    out = gw.cli(*args)
    gw.wait_synced()
    return out


def _tenant_args(tenant: str | None) -> list[str]:
    return ["--tenant", tenant] if tenant else []


def tenant_id(gw: GatewayProcess, name: str | None = None) -> int:
    """The id of a tenant by name, or of the first tenant (the one ``init`` created)."""
    if name is None:
        return int(gw.query("SELECT id FROM tenants ORDER BY id LIMIT 1")[0][0])
    return int(gw.query("SELECT id FROM tenants WHERE name = ?", name)[0][0])


def create_tenant(gw: GatewayProcess, name: str, admin: str) -> dict[str, Any]:
    """A tenant with its Account Admin (``out["admin"]["id"]``)."""
    return dict(_cli(gw, "tenants", "create", name, "--admin", admin, "--json"))


def create_user(gw: GatewayProcess, username: str, tenant: str | None = None) -> int:
    """A plain member: no permission on any endpoint until granted one."""
    return int(_cli(gw, "users", "create", username, *_tenant_args(tenant), "--json")["id"])


def grant(gw: GatewayProcess, username: str, endpoint: str, role: str, tenant: str | None = None) -> None:
    _cli(
        gw,
        "grants",
        "create",
        "--user",
        username,
        "--role",
        role,
        "--endpoint",
        endpoint,
        *_tenant_args(tenant),
        "--json",
    )


def set_key_status(gw: GatewayProcess, key_id: int, status: str) -> None:
    _cli(gw, "keys", "disable" if status == "disabled" else "enable", str(key_id))


def set_endpoint_timeouts(
    gw: GatewayProcess, endpoint_id: int, connect: float | None, read: float | None
) -> None:
    """No CLI for this: write the row and bump the configuration version in one transaction."""
    assert not (gw.database_url or "").startswith("postgresql"), "SQLite only"
    conn = sqlite3.connect(gw.data_dir / "modelgate.db", timeout=30)
    try:
        with conn:
            conn.execute(
                "UPDATE endpoints SET connect_timeout = ?, read_timeout = ? WHERE id = ?",
                (connect, read, endpoint_id),
            )
            conn.execute("UPDATE config_state SET version = version + 1 WHERE id = 1")
    finally:
        conn.close()
    gw.wait_synced()
