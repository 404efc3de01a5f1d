"""A real gateway process for end-to-end tests: ``modelgate serve`` on a free port, its own
data directory and database, driven through its CLI and HTTP API exactly as a user would.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

REPO = Path(__file__).resolve().parents[1]
MODELGATE = [sys.executable, "-m", "modelgate"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    def __init__(self, data_dir: Path, database_url: str | None = None, extra_env: dict[str, str] | None = None):
        self.data_dir = data_dir
        self.database_url = database_url
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "MODELGATE_DATA_DIR": str(data_dir),
            "MODELGATE_USAGE_FLUSH_INTERVAL": "0.05",
            "MODELGATE_SNAPSHOT_POLL_INTERVAL": "0.05",
            "MODELGATE_UPSTREAM_READ_TIMEOUT": "5",
            "MODELGATE_MAX_BODY_BYTES": str(256 * 1024),
            **(extra_env or {}),
        }
        if database_url:
            self.env["MODELGATE_DATABASE_URL"] = database_url
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "server.log"
        self.admin_password: str | None = None

    # -- lifecycle
    def start(self) -> GatewayProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = self.cli("init", "--json")
        self.admin_password = out["admin"]["password"] if out.get("initialised") else None
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*MODELGATE, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
            )  # fmt: skip
        # generous: on a loaded 2-core machine a cold interpreter plus migrations can take a while
        deadline = time.monotonic() + float(os.environ.get("MODELGATE_TEST_START_TIMEOUT", "120"))
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()  # never leak a half-started server into the next test
        raise RuntimeError(f"gateway did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- CLI
    def cli_raw(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*MODELGATE, *args], env=self.env, capture_output=True, text=True, input=input,
                              cwd=REPO, timeout=60)  # fmt: skip

    def cli(self, *args: str) -> Any:
        res = self.cli_raw(*args)
        if res.returncode != 0:
            raise AssertionError(f"modelgate {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return json.loads(res.stdout) if "--json" in args else res.stdout

    def create_endpoint(self, name: str, base_url: str, model_version: str = "fake-model",
                        category: str = "llm", api_key: str = "sk-vendor-secret", tenant: str | None = None) -> Any:  # fmt: skip
        args = ["endpoints", "create", name, "--base-url", base_url, "--model-version", model_version,
                "--api-key", api_key, "--category", category, "--json"]  # fmt: skip
        if tenant:
            args += ["--tenant", tenant]
        out = self.cli(*args)
        self.wait_synced()
        return out

    def create_key(self, owner: str = "admin", tenant: str | None = None, **opts: Any) -> Any:
        args = ["keys", "create", "--owner", owner, "--json"]
        if tenant:
            args += ["--tenant", tenant]
        for k, v in opts.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        out = self.cli(*args)
        self.wait_synced()
        return out

    # -- state
    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.data_dir / "modelgate.db", timeout=30)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.database_url and self.database_url.startswith("postgresql"):
            return asyncio.run(_pg_query(self.database_url, sql, params))
        with self._db() as conn:
            return conn.execute(sql, params).fetchall()

    def config_version(self) -> int:
        return int(self.query("SELECT version FROM config_state WHERE id = 1")[0][0])

    def wait_synced(self, timeout: float = 10) -> None:
        """Wait until the server's snapshot has caught up with the database's configuration version."""
        want = self.config_version()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = httpx.get(self.base_url + "/readyz", timeout=5).json()["checks"]["snapshot_version"]
            if got >= want:
                return
            time.sleep(0.02)
        raise AssertionError(f"gateway snapshot stuck below version {want}")

    def usage_for(self, request_id: str, timeout: float = 10) -> dict[str, Any]:
        """The usage event of one request, once the batched writer has stored it."""
        deadline = time.monotonic() + timeout
        cols = ("request_id", "tenant_id", "endpoint_id", "user_id", "api_key_id", "channel", "route", "is_stream",
                "status_code", "error_type", "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens",
                "is_estimated", "latency_ms", "ttft_ms", "upstream_status", "cost")  # fmt: skip
        while time.monotonic() < deadline:
            rows = self.query(f"SELECT {', '.join(cols)} FROM usage_events WHERE request_id = $1".replace(
                "$1", "?" if not (self.database_url or "").startswith("postgresql") else "$1"), request_id)
            if rows:
                return dict(zip(cols, rows[0], strict=True))
            time.sleep(0.02)
        raise AssertionError(f"no usage event for request {request_id}")


async def _pg_query(url: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return [tuple(r) for r in await conn.fetch(sql, *params)]
    finally:
        await conn.close()


def new_pg_database() -> tuple[str, str]:
    """Create an empty PostgreSQL database; returns (sqlalchemy url, name)."""
    name = "mg_test_" + secrets.token_hex(6)
    asyncio.run(_pg_admin(f"CREATE DATABASE {name}"))
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", name


def drop_pg_database(name: str) -> None:
    asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
