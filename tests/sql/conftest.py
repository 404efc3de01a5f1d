"""Shared parts of the SQL-function tests: analysts (a user, their grants, their API key) made
through the real CLI, DuckDB connections from ``modelgate.sql.connect`` against the real
gateway process, and condition-based waits on the usage records.
"""

from __future__ import annotations

import itertools
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import httpx2 as httpx
import pytest

import modelgate.sql
from tests.fakes.upstream import FakeUpstream
from tests.harness import REPO, GatewayProcess

_seq = itertools.count(1)
USAGE_COLUMNS = ("request_id", "channel", "user_id", "api_key_id", "endpoint_id", "status_code", "error_type",
                 "input_tokens", "output_tokens", "ts")  # fmt: skip


def unique(prefix: str) -> str:
    """A fresh endpoint/user/model-version name, so tests sharing one gateway and upstream never collide."""
    return f"{prefix}-{next(_seq)}-{secrets.token_hex(3)}"


@dataclass
class Analyst:
    """A plain member with an API key and ENDPOINT_USER on the given endpoints."""

    username: str
    user_id: int
    key: str
    key_id: int


def make_analyst(gateway: GatewayProcess, endpoints: list[str], role: str = "ENDPOINT_USER") -> Analyst:
    username = unique("analyst")
    user = gateway.cli("users", "create", username, "--json")
    for name in endpoints:
        gateway.cli("grants", "create", "--user", username, "--role", role, "--endpoint", name, "--json")
    key = gateway.create_key(username, name=unique("sql-key"))
    return Analyst(username, int(user["id"]), str(key["secret"]), int(key["id"]))


def endpoint_id(gateway: GatewayProcess, name: str) -> int:
    return int(gateway.query("SELECT id FROM endpoints WHERE name = ? AND deleted_at IS NULL", name)[0][0])


def sent(upstream: FakeUpstream, model_version: str) -> list[dict[str, Any]]:
    """The bodies the gateway sent upstream for one (test-unique) model version."""
    return [r.json for r in upstream.requests if r.model == model_version]


def usage_of_key(gateway: GatewayProcess, key: str, key_id: int, sentinel_endpoint: str) -> list[dict[str, Any]]:
    """Every usage event of an API key, once all of them are stored.

    Usage is buffered and flushed in order, so after the SQL run we make one more (REST) call
    with the same key and wait for *its* event: then every earlier event is stored too. The
    sentinel's own event is left out.
    """
    resp = httpx.post(gateway.base_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": sentinel_endpoint, "messages": [{"role": "user", "content": "sentinel"}]},
                      timeout=30)  # fmt: skip
    rid = resp.headers["x-request-id"]
    gateway.usage_for(rid)
    rows = gateway.query(f"SELECT {', '.join(USAGE_COLUMNS)} FROM usage_events WHERE api_key_id = ? "
                         "AND request_id != ? ORDER BY id", key_id, rid)  # fmt: skip
    return [dict(zip(USAGE_COLUMNS, row, strict=True)) for row in rows]


def sent_containing(upstream: FakeUpstream, model_version: str, marker: str) -> list[dict[str, Any]]:
    """The bodies sent for a model version whose last message contains ``marker`` (a test-unique token)."""
    return [b for b in sent(upstream, model_version) if marker in str(b.get("messages", [{}])[-1].get("content"))]


def ensure_endpoint(gateway: GatewayProcess, name: str, base_url: str, model_version: str) -> None:
    """Create an endpoint with a fixed name unless this gateway already has it (tests share one gateway)."""
    if not gateway.query("SELECT 1 FROM endpoints WHERE name = ? AND deleted_at IS NULL", name):
        gateway.create_endpoint(name, base_url, model_version=model_version)


@pytest.fixture(scope="module")
def llm(gateway: GatewayProcess, upstream: FakeUpstream) -> tuple[str, str]:
    """An llm endpoint (name, model version) of the test module, on the fake upstream."""
    name, version = unique("sql-llm"), unique("mv")
    gateway.create_endpoint(name, upstream.base_url, model_version=version)
    return name, version


@pytest.fixture(scope="module")
def analyst(gateway: GatewayProcess, llm: tuple[str, str]) -> Analyst:
    """A plain member of the test module with ENDPOINT_USER on ``llm`` and an API key."""
    return make_analyst(gateway, [llm[0]])


@pytest.fixture
def sql_connect(gateway: GatewayProcess) -> Iterator[Callable[..., duckdb.DuckDBPyConnection]]:
    """``modelgate.sql.connect`` against the test gateway; every connection is closed afterwards."""
    made: list[duckdb.DuckDBPyConnection] = []

    def connect(api_key: str, **options: Any) -> duckdb.DuckDBPyConnection:
        conn = modelgate.sql.connect(base_url=gateway.base_url, api_key=api_key, **options)
        made.append(conn)
        return conn

    yield connect
    for conn in made:
        modelgate.sql.close(conn)


def run_cli(gateway: GatewayProcess, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """``modelgate sql ...`` as a user runs it, with the gateway URL (not the key) in the environment."""
    full_env = {**os.environ, "MODELGATE_BASE_URL": gateway.base_url, "COLUMNS": "200", **(env or {})}
    for var in ("MODELGATE_API_KEY", "MODELGATE_TOKEN"):
        if env is None or var not in env:
            full_env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "modelgate", "sql", *args], env=full_env, capture_output=True,
                          text=True, cwd=REPO, timeout=timeout)  # fmt: skip
