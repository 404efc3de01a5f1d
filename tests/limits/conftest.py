"""Gateways for the limits tests: one per backend and module (memory; Redis in this xdist worker's
own database of the shared server, flushed first), each with its bootstrap admin's API.

Only one Redis-backed gateway per worker lives at a time (module scope): gateways with different
databases number their endpoints alike, so two sharing a Redis database would share counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess
from tests.limits.support import TenantAdmin, flush_worker_redis, root_admin, start_gateway, worker_redis_url


@dataclass
class Env:
    gw: GatewayProcess
    up: FakeUpstream
    root: TenantAdmin
    backend: str  # "memory" | "redis"
    redis_url: str | None


@pytest.fixture(scope="module", params=["memory", "redis"])
def env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream
) -> Iterator[Env]:
    backend = request.param
    extra: dict[str, str] = {}
    url = None
    if backend == "redis":
        url = worker_redis_url()
        flush_worker_redis(url)
        extra["MODELGATE_REDIS_URL"] = url
    gw = GatewayProcess(tmp_path_factory.mktemp(f"limits-{backend}"), extra_env=extra)
    try:
        start_gateway(gw)
        root = root_admin(gw)
        yield Env(gw, upstream, root, backend, url)
        root.close()
    finally:
        gw.stop()
