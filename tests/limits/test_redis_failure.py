"""Redis killed and restarted under a running gateway, under both failure policies.

Each test owns a redis-server on a free port (no persistence: a restart loses everything, as a
crashed Redis does) and a gateway pointed at it.

- open (the default): requests keep flowing on local counters of the same limits, quota counters
  rebuilt from the usage records; /readyz stays 200 but shows Redis unreachable;
- closed: requests that need a counter get 503 ``limiter_unavailable``, others still pass;
  /readyz is 503;
- Redis back: the gateway returns to it by itself, and the quota counters it lost are rebuilt
  from the usage records (what was used before and during the outage).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess
from tests.limits.support import (
    PrivateRedis,
    TenantAdmin,
    chat_body,
    error_code,
    poll,
    quota_key,
    root_admin,
    start_gateway,
    upstream_calls,
)


@dataclass
class Setup:
    gw: GatewayProcess
    redis: PrivateRedis
    root: TenantAdmin
    up: FakeUpstream

    def post(self, key: str, ep: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.gw.base_url + "/v1/chat/completions", json=chat_body(ep["name"]),
                          headers={"authorization": f"Bearer {key}"}, timeout=30)  # fmt: skip

    def codes(self, key: str, ep: dict[str, Any], n: int) -> list[int]:
        return [self.post(key, ep).status_code for _ in range(n)]

    def ready(self) -> httpx.Response:
        return httpx.get(self.gw.base_url + "/readyz", timeout=10)

    def recorded(self, endpoint_id: int) -> int:
        return int(self.gw.query("SELECT COALESCE(SUM(input_tokens + output_tokens), 0) FROM usage_events "
                                 "WHERE endpoint_id = ?", endpoint_id)[0][0])  # fmt: skip

    def wait_recorded(self, endpoint_id: int, tokens: int) -> None:
        poll(lambda: self.recorded(endpoint_id) == tokens, what=f"{tokens} tokens recorded")

    def redis_quota(self, endpoint_id: int) -> list[bytes | None]:
        with self.redis.client() as r:
            return list(r.hmget(quota_key(self.gw, "e", endpoint_id), "used", "reserved"))

    def redis_requests(self, endpoint_id: int) -> int:
        with self.redis.client() as r:
            return sum(int(v) for k, v in r.hgetall(f"mg:r:ep:{endpoint_id}").items() if k.startswith(b"r"))


def setup(tmp_path: Path, upstream: FakeUpstream, policy: str) -> Iterator[Setup]:
    rds = PrivateRedis(tmp_path / "redis").start()
    gw = GatewayProcess(tmp_path / "gw", extra_env={"MODELGATE_REDIS_URL": rds.url(),
                                                     "MODELGATE_REDIS_FAILURE_POLICY": policy})  # fmt: skip
    try:
        start_gateway(gw)
        root = root_admin(gw)
        yield Setup(gw, rds, root, upstream)
        root.close()
    finally:
        gw.stop()
        rds.kill()


@pytest.fixture
def fail_open(tmp_path: Path, upstream: FakeUpstream) -> Iterator[Setup]:
    yield from setup(tmp_path, upstream, "open")


@pytest.fixture
def fail_closed(tmp_path: Path, upstream: FakeUpstream) -> Iterator[Setup]:
    yield from setup(tmp_path, upstream, "closed")


def test_fail_open_keeps_serving_on_local_limits(fail_open: Setup) -> None:
    s = fail_open
    rated = s.root.endpoint(s.up, rpm=5)
    capped = s.root.endpoint(s.up, quota_tokens=61)  # 20 tokens a call: admitted at 0, 20, 40, 60
    _, key = s.root.key()
    assert s.codes(key, rated, 2) == [200, 200]
    assert s.codes(key, capped, 3) == [200, 200, 200]
    assert s.redis_requests(rated["id"]) == 2  # counted in Redis
    s.wait_recorded(capped["id"], 60)
    assert s.ready().json()["checks"]["redis"] == "ok"

    s.redis.kill()
    ready = s.ready()
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.json()["checks"]["redis"] == "unreachable (failing open)"
    # the same limits, counted in this process: a fresh window of 5 requests
    got = [s.post(key, rated) for _ in range(6)]
    assert [r.status_code for r in got] == [200] * 5 + [429]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in got[:5]] == ["4", "3", "2", "1", "0"]
    assert error_code(got[5]) == "rate_limit_exceeded"
    assert s.ready().json()["checks"]["limiter"] == "redis:down"
    # the local quota counter starts from the usage records: 60 used, so one more call
    assert s.codes(key, capped, 2) == [200, 429]
    assert "unreachable" in s.gw.log_text() and "failing open" in s.gw.log_text()

    s.redis.start()  # same port, empty
    poll(lambda: (c := s.ready().json()["checks"])["redis"] == "ok" and c["limiter"] == "redis:up",
         what="the gateway back on Redis")  # fmt: skip
    s.wait_recorded(capped["id"], 80)
    # Redis lost the counter: rebuilt from the records, before and during the outage (80 >= 61)
    r = s.post(key, capped)
    assert r.status_code == 429 and error_code(r) == "insufficient_quota"
    assert s.redis_quota(capped["id"]) == [b"80", b"0"]
    s.root.patch_endpoint(capped["name"], quota_tokens=81)
    assert s.codes(key, capped, 2) == [200, 429]
    poll(lambda: s.redis_quota(capped["id"]) == [b"100", b"0"], what="settled in Redis")
    # rate limits counted in Redis again
    assert s.codes(key, rated, 6) == [200] * 5 + [429]
    assert s.redis_requests(rated["id"]) == 5
    assert upstream_calls(s.up, rated["model_version"]) == 2 + 5 + 5
    assert upstream_calls(s.up, capped["model_version"]) == 3 + 1 + 1


def test_fail_closed_refuses_what_needs_a_counter(fail_closed: Setup) -> None:
    s = fail_closed
    limited = s.root.endpoint(s.up, rpm=100, quota_tokens=1000)
    free = s.root.endpoint(s.up)  # no limit and no quota: needs no counter
    _, key = s.root.key()
    assert s.codes(key, limited, 2) == [200, 200]
    s.wait_recorded(limited["id"], 40)

    s.redis.kill()
    for _ in range(3):
        r = s.post(key, limited)
        assert r.status_code == 503
        err = r.json()["error"]
        assert err["code"] == "limiter_unavailable" and "Redis" in err["message"]
        assert r.headers["x-request-id"]
    assert s.codes(key, free, 2) == [200, 200]
    ready = s.ready()
    assert ready.status_code == 503 and ready.json()["status"] == "not ready"
    assert ready.json()["checks"]["redis"] == "unreachable (failing closed)"
    assert ready.json()["checks"]["limiter"] == "redis:down"
    assert upstream_calls(s.up, limited["model_version"]) == 2  # refused before the upstream
    poll(lambda: s.gw.query("SELECT COUNT(*) FROM usage_events WHERE endpoint_id = ? AND status_code = 503",
                            limited["id"])[0][0] == 3, what="the refusals recorded")  # fmt: skip

    s.redis.start()  # same port, empty
    poll(lambda: s.ready().status_code == 200, what="ready again")
    poll(lambda: s.ready().json()["checks"]["limiter"] == "redis:up", what="the limiter back on Redis")
    assert s.codes(key, limited, 3) == [200, 200, 200]
    # the quota counter Redis lost was rebuilt from the records (40) before counting these (60)
    poll(lambda: s.redis_quota(limited["id"]) == [b"100", b"0"], what="settled in Redis")
    assert s.redis_requests(limited["id"]) == 3
    assert upstream_calls(s.up, limited["model_version"]) == 5

    # Redis stalls (alive, but writes, scripts and PUBLISH hang): admin writes do not hang on the
    # broadcast, and the process keeps following the database (a key disabled meanwhile through
    # the CLI is refused)
    key_id, other_key = s.root.key()
    assert s.post(other_key, free).status_code == 200
    with s.redis.client() as admin:
        admin.execute_command("CLIENT", "PAUSE", "60000", "WRITE")
        try:
            started = time.monotonic()
            s.root.patch_endpoint(free["name"], description="edited while Redis stalls")
            assert time.monotonic() - started < 10  # the broadcast gave up after its 2 s
            s.gw.cli("keys", "disable", str(key_id))
            poll(lambda: s.post(other_key, free).status_code == 401, timeout=15, what="the key refused")
        finally:
            admin.execute_command("CLIENT", "UNPAUSE")
