"""Two gateway processes sharing one PostgreSQL database and one Redis: together they admit exactly
the limits, and a change made through one process's admin API (a key disabled, a limit edited)
holds in the other on the very next request.

Both processes poll the configuration version at the product default (1 s), so an immediate
effect in the other process can only come from the Redis broadcast the admin write waits for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
import pytest
import redis

from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess, drop_pg_database, new_pg_database
from tests.limits.support import (
    Burst,
    TenantAdmin,
    chat_body,
    error_code,
    flush_worker_redis,
    quota_key,
    root_admin,
    start_gateway,
    upstream_calls,
    watch_logs,
    worker_redis_url,
)
from tests.services import require_postgres, require_redis


class JoiningGateway(GatewayProcess):
    """Another process of an instance whose database is already initialised: it serves without
    running ``modelgate init`` (GatewayProcess.start runs it first; here that call is skipped)."""

    def cli(self, *args: str) -> Any:
        if args and args[0] == "init":
            return {"initialised": False}
        return super().cli(*args)


@dataclass
class Pair:
    a: GatewayProcess
    b: GatewayProcess
    admin_a: TenantAdmin
    admin_b: TenantAdmin  # the same admin (same token), through process B's API
    up: FakeUpstream
    redis_url: str


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Pair]:
    require_postgres()
    require_redis()
    url = worker_redis_url()
    flush_worker_redis(url)
    db_url, db_name = new_pg_database()
    env = {
        "MODELGATE_REDIS_URL": url,
        "MODELGATE_MASTER_KEY": "limits-multiprocess-master-key",  # one instance: one master key
        "MODELGATE_SNAPSHOT_POLL_INTERVAL": "1.0",
    }
    root = tmp_path_factory.mktemp("multiprocess")
    a = GatewayProcess(root / "a", database_url=db_url, extra_env=env)
    b = JoiningGateway(root / "b", database_url=db_url, extra_env=env)
    admins: list[TenantAdmin] = []
    try:
        start_gateway(a)
        start_gateway(b)
        admin_a = root_admin(a)
        watch_logs(b)
        admin_b = TenantAdmin(b, admin_a.token, admin_a.username, admin_a.tenant_id)
        admins += [admin_a, admin_b]
        yield Pair(a, b, admin_a, admin_b, upstream, url)
    finally:
        for adm in admins:
            adm.close()
        b.stop()
        a.stop()
        drop_pg_database(db_name)


def test_the_second_process_did_not_initialise(pair: Pair) -> None:
    assert pair.a.admin_password and pair.b.admin_password is None
    assert pair.a.query("SELECT COUNT(*) FROM tenants")[0][0] >= 1
    assert "Initialised" not in pair.b.log_text()


def split(pair: Pair, key: str, body: dict[str, Any], n: int) -> list[tuple[str, str, dict[str, Any]]]:
    """``n`` requests, alternately to process A and process B."""
    return [((pair.a if i % 2 == 0 else pair.b).base_url, key, body) for i in range(n)]


async def test_two_processes_admit_exactly_the_rpm_together(pair: Pair) -> None:
    ep = pair.admin_a.endpoint(pair.up, rpm=50)  # created through A: B knows it when the call returns
    _, key = pair.admin_a.key()
    burst = await Burst.run(split(pair, key, chat_body(ep["name"]), 200))
    assert burst.codes() == {200: 50, 429: 150}
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in burst.status(200)) == list(range(50))
    assert {error_code(r) for r in burst.status(429)} == {"rate_limit_exceeded"}
    assert upstream_calls(pair.up, ep["model_version"]) == 50


async def test_two_processes_admit_exactly_the_tpm_together(pair: Pair) -> None:
    ep = pair.admin_b.endpoint(pair.up, tpm=1000)  # 20 tokens a call, reserved and recorded
    _, key = pair.admin_b.key()
    burst = await Burst.run(split(pair, key, chat_body(ep["name"]), 200))
    assert burst.codes() == {200: 50, 429: 150}
    assert sorted(int(r.headers["x-ratelimit-remaining-tokens"]) for r in burst.status(200)) == list(range(0, 1000, 20))
    assert upstream_calls(pair.up, ep["model_version"]) == 50


async def test_two_processes_share_the_tenant_quota(pair: Pair) -> None:
    tenant = pair.admin_a.new_tenant()
    try:
        tenant.set_quota(510)
        ep = tenant.endpoint(pair.up, behaviour="slow-100")
        _, key = tenant.key()
        burst = await Burst.run(split(pair, key, chat_body(ep["name"]), 100))
        assert burst.codes() == {200: 26, 429: 74}  # ceil(510 / 20): the overshoot (10) is below one call
        assert {error_code(r) for r in burst.status(429)} == {"insufficient_quota"}
        assert upstream_calls(pair.up, ep["model_version"]) == 26
        # the shared counter holds it all, and the status (from the records) agrees
        key_t = await asyncio.to_thread(quota_key, pair.a, "t", tenant.tenant_id)  # (asyncio.run inside)
        with redis.Redis.from_url(pair.redis_url) as r:
            deadline = time.monotonic() + 10
            while r.hmget(key_t, "used", "reserved") != [b"520", b"0"]:
                assert time.monotonic() < deadline, "tenant counter not settled"
                time.sleep(0.02)
        deadline = time.monotonic() + 10
        while tenant.quota()["used"] != 520:
            assert time.monotonic() < deadline, "usage not recorded"
            time.sleep(0.05)
    finally:
        tenant.close()


def post(gw: GatewayProcess, key: str, model: str) -> httpx.Response:
    return httpx.post(gw.base_url + "/v1/chat/completions", json=chat_body(model),
                      headers={"authorization": f"Bearer {key}"}, timeout=30)  # fmt: skip


def test_key_disabled_through_one_process_is_refused_by_the_other_at_once(pair: Pair) -> None:
    ep = pair.admin_a.endpoint(pair.up)
    key_id, key = pair.admin_a.key()
    assert post(pair.a, key, ep["name"]).status_code == 200
    assert post(pair.b, key, ep["name"]).status_code == 200
    for _ in range(5):
        pair.admin_a.call("POST", f"/api-keys/{key_id}/disable")
        r = post(pair.b, key, ep["name"])  # the very next request, on the other process
        assert r.status_code == 401 and error_code(r) == "api_key_disabled"
        pair.admin_b.call("POST", f"/api-keys/{key_id}/enable")
        assert post(pair.a, key, ep["name"]).status_code == 200
    # a deleted key, the same
    pair.admin_b.call("DELETE", f"/api-keys/{key_id}", expect=204)
    assert post(pair.a, key, ep["name"]).status_code == 401


def test_limit_edited_through_one_process_holds_in_the_other_at_once(pair: Pair) -> None:
    ep = pair.admin_a.endpoint(pair.up)
    _, key = pair.admin_a.key()
    assert post(pair.b, key, ep["name"]).status_code == 200
    pair.admin_a.patch_endpoint(ep["name"], rpm=0)
    r = post(pair.b, key, ep["name"])
    assert r.status_code == 429 and error_code(r) == "rate_limit_exceeded"
    pair.admin_a.patch_endpoint(ep["name"], rpm=2)
    got = [post(gw, key, ep["name"]) for gw in (pair.b, pair.a, pair.b)]
    assert [r.status_code for r in got] == [200, 200, 429]  # one window for both processes
    assert [r.headers["x-ratelimit-remaining-requests"] for r in got] == ["1", "0", "0"]
