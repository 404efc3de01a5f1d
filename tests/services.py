"""Reachability of the machine's PostgreSQL and Redis, and the skip-or-fail rule.

Tests that need a service skip with a clear reason when it is absent, unless
``MODELGATE_REQUIRE_SERVICES=1`` (CI), where an absent service is a failure.
"""

from __future__ import annotations

import os
import socket

import pytest

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
PG_ADMIN_URL = f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/postgres"
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(service: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{service} is not reachable on {host}:{port}"
    if os.environ.get("MODELGATE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}, and MODELGATE_REQUIRE_SERVICES=1 requires it")
    pytest.skip(f"{message} (set MODELGATE_REQUIRE_SERVICES=1 to make this a failure)")


def require_postgres() -> None:
    require("PostgreSQL", PG_HOST, PG_PORT)


def require_redis() -> None:
    require("Redis", REDIS_HOST, REDIS_PORT)
