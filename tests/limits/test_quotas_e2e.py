"""Token quotas end to end (memory and Redis backends): tenant and endpoint quotas refuse with 429
``insufficient_quota`` before any upstream call, the tighter of the two binds, concurrency
overshoots by less than one reservation, edits apply to the next request, the status API and CLI
report the cycle, and counters are rebuilt from the usage records (cycle boundaries in the
tenant's time zone, restarts, a flushed Redis).

Each test works in a tenant of its own, so tenant quotas never meet.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx2 as httpx
import openai
import pytest
import redis

from modelgate.gateway.tokens import estimate_input_tokens
from modelgate.limits.windows import cycle_bounds, cycle_id
from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess
from tests.limits.conftest import Env
from tests.limits.support import (
    PROMPT_14,
    Burst,
    chat_body,
    error_code,
    flush_worker_redis,
    insert_usage,
    poll,
    quota_key,
    recorded_tokens,
    root_admin,
    start_gateway,
    upstream_calls,
)

PER_CALL = 20  # chat_body(): 14 prompt words + 6 reply words, reserved and recorded alike


def post(env: Env, key: str, body: dict) -> httpx.Response:  # type: ignore[type-arg]
    return httpx.post(env.gw.base_url + "/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {key}"}, timeout=30)  # fmt: skip


class Codes(list[int]):
    """Status codes that show the error messages when an assertion on them fails."""

    def __init__(self, responses: list[httpx.Response]) -> None:
        super().__init__(r.status_code for r in responses)
        self.errors = [r.json().get("error", {}).get("message") if r.status_code != 200 else None for r in responses]

    def __repr__(self) -> str:
        return f"{list(self)!r} (errors: {self.errors!r})"


def statuses(env: Env, key: str, model: str, n: int) -> Codes:
    return Codes([post(env, key, chat_body(model)) for _ in range(n)])


def db_tokens(env: Env, column: str, subject: int) -> int:
    return int(env.gw.query(f"SELECT COALESCE(SUM(input_tokens + output_tokens), 0) FROM usage_events "
                            f"WHERE {column} = ?", subject)[0][0])  # fmt: skip


def wait_db_tokens(env: Env, column: str, subject: int, expected: int) -> None:
    poll(lambda: db_tokens(env, column, subject) == expected, what=f"{expected} tokens recorded for {column}")


def assert_quota_refusal(r: httpx.Response, owner: str, limit: int, cycle_end: float) -> None:
    assert r.status_code == 429
    err = r.json()["error"]
    assert (err["code"], err["type"]) == ("insufficient_quota", "insufficient_quota")
    assert f"{owner}" in err["message"] and f"({limit} tokens this cycle)" in err["message"]
    # Retry-After: until the cycle renews
    assert abs(int(r.headers["retry-after"]) - (cycle_end - time.time())) <= 5


def check_per_call() -> None:
    body = chat_body("x")
    assert estimate_input_tokens(body) + 6 == recorded_tokens(PROMPT_14, 6) == PER_CALL


# --------------------------------------------------------------------------- enforcement


def test_tenant_quota_refuses_before_any_upstream_call(env: Env) -> None:
    check_per_call()
    ta = env.root.new_tenant()
    try:
        ta.set_quota(100)
        ep = ta.endpoint(env.up)
        _, key = ta.key()
        # admitted while used < 100: at 0, 20, 40, 60, 80
        assert statuses(env, key, ep["name"], 5) == [200] * 5
        end = cycle_id("monthly", "UTC", time.time())[2]
        for _ in range(3):
            assert_quota_refusal(post(env, key, chat_body(ep["name"])), f"tenant '{ta.tenant_name}'", 100, end)
        assert upstream_calls(env.up, ep["model_version"]) == 5
        # the refusals are recorded, with no upstream call and no tokens
        poll(lambda: env.gw.query("SELECT COUNT(*) FROM usage_events WHERE endpoint_id = ? AND status_code = 429 "
                                  "AND error_type = 'quota_exceeded' AND upstream_status IS NULL "
                                  "AND input_tokens + output_tokens = 0", ep["id"])[0][0] == 3)  # fmt: skip
        # another tenant is not affected
        ep2 = env.root.endpoint(env.up)
        _, key2 = env.root.key()
        assert statuses(env, key2, ep2["name"], 1) == [200]
    finally:
        ta.close()


async def test_openai_sdk_sees_insufficient_quota(env: Env) -> None:
    ta = env.root.new_tenant()
    try:
        ta.set_quota(1)
        ep = ta.endpoint(env.up)
        _, key = ta.key()
        async with openai.AsyncOpenAI(base_url=env.gw.base_url + "/v1", api_key=key, max_retries=0) as client:
            await client.chat.completions.create(model=ep["name"], messages=[{"role": "user", "content": "hi"}])
            with pytest.raises(openai.RateLimitError) as info:
                await client.chat.completions.create(model=ep["name"], messages=[{"role": "user", "content": "hi"}])
        assert info.value.status_code == 429 and info.value.code == "insufficient_quota"
        assert upstream_calls(env.up, ep["model_version"]) == 1
    finally:
        ta.close()


def test_available_is_min_of_tenant_and_endpoint_quota(env: Env) -> None:
    ta = env.root.new_tenant()
    try:
        ta.set_quota(200)
        small = ta.endpoint(env.up, quota_tokens=60)
        free = ta.endpoint(env.up)
        _, key = ta.key()
        end = cycle_id("monthly", "UTC", time.time())[2]
        assert statuses(env, key, small["name"], 3) == [200] * 3  # 0, 20, 40
        assert_quota_refusal(post(env, key, chat_body(small["name"])), f"endpoint '{small['name']}'", 60, end)
        # the tenant has 140 left, for every endpoint: 7 calls
        assert statuses(env, key, free["name"], 7) == [200] * 7
        assert_quota_refusal(post(env, key, chat_body(free["name"])), f"tenant '{ta.tenant_name}'", 200, end)
        # the endpoint quota raised above the tenant's: allowed, with a warning, and the tenant's binds
        out = ta.patch_endpoint(small["name"], quota_tokens=1000)
        assert out["quota_tokens"] == 1000
        assert out["warnings"] == ["The endpoint quota (1000) is above the tenant quota (200); "
                                   "the effective limit is the tenant's."]  # fmt: skip
        assert_quota_refusal(post(env, key, chat_body(small["name"])), f"tenant '{ta.tenant_name}'", 200, end)
        assert "warnings" not in ta.patch_endpoint(small["name"], quota_tokens=150)
        assert upstream_calls(env.up, small["model_version"]) == 3
        assert upstream_calls(env.up, free["model_version"]) == 7
        wait_db_tokens(env, "tenant_id", ta.tenant_id, 200)
        status = ta.endpoint_quota(small["name"])
        assert (status["total"], status["used"], status["remaining"]) == (150, 60, 90)
        assert status["effective_remaining"] == 0  # the tenant has nothing left
        details = ta.call("GET", f"/endpoints/{small['name']}")
        assert (details["quota"]["total"], details["quota"]["used"]) == (150, 60)
    finally:
        ta.close()


def test_quota_edits_take_effect_on_the_next_request(env: Env) -> None:
    ta = env.root.new_tenant()
    try:
        ta.set_quota(40)
        ep = ta.endpoint(env.up)
        _, key = ta.key()
        assert statuses(env, key, ep["name"], 3) == [200, 200, 429]
        ta.set_quota(60)  # raised: the very next request is admitted
        assert statuses(env, key, ep["name"], 2) == [200, 429]
        ta.set_quota(30)  # lowered below what is used
        assert statuses(env, key, ep["name"], 1) == [429]
        # a new endpoint quota: its counter is built from the records (once they are stored: see
        # test_usage_not_yet_stored_counts_when_a_counter_is_built)
        wait_db_tokens(env, "endpoint_id", ep["id"], 60)
        ta.patch_endpoint(ep["name"], quota_tokens=10_000)  # endpoint quota does not lift the tenant's
        assert statuses(env, key, ep["name"], 1) == [429]
        ta.set_quota(10_000)
        ta.patch_endpoint(ep["name"], quota_tokens=80)
        assert statuses(env, key, ep["name"], 2) == [200, 429]  # at 60; then 80
        ta.patch_endpoint(ep["name"], quota_tokens=1000)
        assert statuses(env, key, ep["name"], 1) == [200]
        assert upstream_calls(env.up, ep["model_version"]) == 5
    finally:
        ta.close()


def test_usage_while_a_quota_was_removed_still_counts(env: Env) -> None:
    ta = env.root.new_tenant()
    try:
        ta.set_quota(1000)
        ep = ta.endpoint(env.up)
        _, key = ta.key()
        assert statuses(env, key, ep["name"], 3) == [200] * 3  # 60 used, counted
        ta.set_quota(None)
        assert statuses(env, key, ep["name"], 2) == [200] * 2  # 100 used, no counter involved
        wait_db_tokens(env, "tenant_id", ta.tenant_id, 100)
        st = ta.set_quota(80)
        assert st["used"] == 100 and st["remaining"] == 0  # the status (from the records) knows
        assert statuses(env, key, ep["name"], 1) == [429]  # a new counter, rebuilt from the records
    finally:
        ta.close()


# --------------------------------------------------------------------------- concurrency


async def test_concurrent_requests_overshoot_by_less_than_one_reservation(env: Env) -> None:
    """100 concurrent calls against a tenant quota of 510 and an endpoint quota of 300, each call
    reserving and recording exactly 20 tokens: a call is admitted while used + reserved < quota,
    so exactly ceil(510 / 20) = 26 get through and the overshoot (10) is below one reservation."""
    ta = env.root.new_tenant()
    try:
        ta.set_quota(510)
        ep = ta.endpoint(env.up, behaviour="slow-100")  # all in flight at once
        capped = ta.endpoint(env.up, behaviour="slow-100", quota_tokens=300)
        _, key = ta.key()
        burst = await Burst.run([(env.gw.base_url, key, chat_body(capped["name"]))] * 100)
        assert burst.codes() == {200: 15, 429: 85}  # ceil(300 / 20)
        assert {error_code(r) for r in burst.status(429)} == {"insufficient_quota"}
        burst = await Burst.run([(env.gw.base_url, key, chat_body(ep["name"]))] * 100)
        assert burst.codes() == {200: 11, 429: 89}  # the tenant had 510 - 300 = 210 left: ceil(210 / 20)
        wait_db_tokens(env, "tenant_id", ta.tenant_id, 520)
        assert upstream_calls(env.up, ep["model_version"]) + upstream_calls(env.up, capped["model_version"]) == 26
    finally:
        ta.close()


async def test_overshoot_bound_when_calls_use_less_than_reserved(env: Env) -> None:
    """Calls that reserve 114 tokens (14 + max_tokens 100) but record 29 (the reply has 15 words),
    in waves of 5 concurrent calls, so each wave is admitted against what earlier ones settled.
    Bound: when the last call was admitted, used + reserved < Q; every other admitted call had
    settled (counted in used) or was in flight (recording <= its reservation), so the total
    recorded is < Q + the last call's own 29 tokens. And the quota is used up, not stopped short:
    reservations were released as calls settled (without that, 9 calls = 1026 reserved would
    have stopped admission at 261 recorded)."""
    quota, reserve, record = 1000, 114, 29
    body = chat_body("x", max_tokens=100)
    assert estimate_input_tokens(body) + 100 == reserve and recorded_tokens(PROMPT_14, 100) == record
    ta = env.root.new_tenant()
    try:
        ta.set_quota(quota)
        ep = ta.endpoint(env.up)
        _, key = ta.key()
        admitted = 0
        for _ in range(15):  # 12 waves use the quota up when every settle is in before the next wave
            wave = await Burst.run([(env.gw.base_url, key, chat_body(ep["name"], max_tokens=100))] * 5)
            assert {error_code(r) for r in wave.responses if r.status_code != 200} <= {"insufficient_quota"}
            admitted += len(wave.status(200))
        wait_db_tokens(env, "tenant_id", ta.tenant_id, admitted * record)
        assert quota <= admitted * record < quota + record
        assert upstream_calls(env.up, ep["model_version"]) == admitted
    finally:
        ta.close()


# --------------------------------------------------------------------------- status


@pytest.mark.parametrize("env", ["memory"], indirect=True)
def test_quota_status_api_and_cli(env: Env) -> None:
    zone = "Asia/Shanghai"
    ta = env.root.new_tenant(timezone=zone)
    try:
        ep = ta.endpoint(env.up)
        _, key = ta.key()
        start, end = cycle_bounds("monthly", zone, time.time())
        insert_usage(env.gw, ts=start.timestamp(), tenant_id=ta.tenant_id, endpoint_id=ep["id"], tokens=300)
        insert_usage(env.gw, ts=start.timestamp() - 1, tenant_id=ta.tenant_id, endpoint_id=ep["id"], tokens=9999)
        out = env.gw.cli("quota", "set", "--tokens", "1000", "--tenant", ta.tenant_name, "--json")
        assert (out["total"], out["used"], out["remaining"], out["cycle"]) == (1000, 300, 700, "monthly")
        env.gw.wait_synced()
        assert statuses(env, key, ep["name"], 2) == [200, 200]
        wait_db_tokens(env, "tenant_id", ta.tenant_id, 9999 + 300 + 40)
        api = ta.quota()
        assert (api["total"], api["used"], api["remaining"]) == (1000, 340, 660)
        assert (api["cycle"], api["timezone"], api["message"]) == ("monthly", zone, None)
        assert (api["cycle_start"], api["cycle_end"]) == (start.isoformat(), end.isoformat())
        # the daily trend: one entry per local day of the cycle so far, summing to used
        tz = ZoneInfo(zone)
        first, today = start.astimezone(tz).date(), datetime.now(tz).date()
        assert [d["date"] for d in api["daily"]] == [(first + timedelta(days=i)).isoformat()
                                                     for i in range((today - first).days + 1)]  # fmt: skip
        assert sum(d["tokens"] for d in api["daily"]) == 340
        assert api["daily"][0]["tokens"] >= 300 and api["daily"][-1]["tokens"] >= 40
        shown = env.gw.cli("quota", "show", "--tenant", ta.tenant_name, "--json")
        assert shown == api
        text = env.gw.cli("quota", "show", "--tenant", ta.tenant_name)
        assert "1000" in text and "340" in text and "660" in text
    finally:
        ta.close()


def test_status_without_a_quota(env: Env) -> None:
    ta = env.root.new_tenant()
    try:
        ep = ta.endpoint(env.up)
        st = ta.quota()
        assert (st["total"], st["remaining"], st["used"]) == (None, None, 0)
        assert st["message"] == "No quota has been set for the current tenant."
        est = ta.endpoint_quota(ep["name"])
        assert (est["total"], est["effective_remaining"]) == (None, None)
        assert est["message"] == "No quota has been set for this endpoint."
    finally:
        ta.close()


# --------------------------------------------------------------------------- cycles and rebuilds


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai", "America/New_York"])
def test_usage_of_the_previous_cycle_does_not_count(env: Env, zone: str) -> None:
    """Records one second before a cycle's start (local midnight in the tenant's zone; Monday; the
    1st) belong to the previous cycle; records at the start belong to this one. One endpoint per
    cycle kind (endpoint quotas), and the tenant's quota on the daily cycle."""
    ta = env.root.new_tenant(timezone=zone)
    try:
        _, key = ta.key()
        now = time.time()
        day_start = cycle_bounds("daily", zone, now)[0].timestamp()
        tenant_used = 0
        endpoints = {}
        for cycle in ("daily", "weekly", "monthly"):
            ep = endpoints[cycle] = ta.endpoint(env.up, quota_tokens=100, quota_cycle=cycle)
            start = cycle_bounds(cycle, zone, now)[0].timestamp()
            for ts, tokens in ((start - 1, 5000), (start, 50)):
                insert_usage(env.gw, ts=ts, tenant_id=ta.tenant_id, endpoint_id=ep["id"], tokens=tokens)
                tenant_used += tokens if ts >= day_start else 0
        for cycle, ep in endpoints.items():
            # the counter is built at first use from this cycle's records: 50 used
            assert statuses(env, key, ep["name"], 4) == [200, 200, 200, 429], cycle  # at 50, 70, 90; then 110
            tenant_used += 60
        wait_db_tokens(env, "tenant_id", ta.tenant_id, 3 * (5000 + 50 + 60))
        for cycle, ep in endpoints.items():
            st = ta.endpoint_quota(ep["name"])
            start = cycle_bounds(cycle, zone, now)[0]
            assert (st["used"], st["remaining"], st["cycle"]) == (110, 0, cycle)
            assert datetime.fromisoformat(st["cycle_start"]) == start
            assert st["daily"][0]["date"] == start.astimezone(ZoneInfo(zone)).date().isoformat()
        # the tenant's daily quota: only records since local midnight count
        st = ta.set_quota(tenant_used + 1, cycle="daily")
        assert (st["used"], st["remaining"], len(st["daily"])) == (tenant_used, 1, 1)
        assert datetime.fromisoformat(st["cycle_start"]).timestamp() == day_start
        free = ta.endpoint(env.up)
        assert statuses(env, key, free["name"], 2) == [200, 429]
    finally:
        ta.close()


@pytest.mark.parametrize("env", ["memory"], indirect=True)
def test_quota_used_survives_a_restart(env: Env) -> None:
    """In-process counters are gone after a restart: they are rebuilt from the usage records (and
    only from this cycle's)."""
    ta = env.root.new_tenant()
    try:
        ta.set_quota(100)
        ep = ta.endpoint(env.up)
        _, key = ta.key()
        assert statuses(env, key, ep["name"], 3) == [200] * 3  # 60 used
        start, _ = cycle_bounds("monthly", "UTC", time.time())
        insert_usage(env.gw, ts=start.timestamp() - 1, tenant_id=ta.tenant_id, endpoint_id=ep["id"], tokens=5000)
        insert_usage(env.gw, ts=start.timestamp(), tenant_id=ta.tenant_id, endpoint_id=ep["id"], tokens=20)
        env.gw.stop()
        start_gateway(env.gw)
        assert statuses(env, key, ep["name"], 2) == [200, 429]  # 80 used: one more, then 100
    finally:
        ta.close()


@pytest.mark.parametrize("env", ["redis"], indirect=True)
def test_quota_used_survives_a_redis_flush(env: Env) -> None:
    assert env.redis_url is not None
    ta = env.root.new_tenant()
    try:
        ta.set_quota(100)
        ep = ta.endpoint(env.up, quota_tokens=90)
        _, key = ta.key()
        assert statuses(env, key, ep["name"], 4) == [200] * 4  # 80 used
        wait_db_tokens(env, "tenant_id", ta.tenant_id, 80)
        tkey, ekey = quota_key(env.gw, "t", ta.tenant_id), quota_key(env.gw, "e", ep["id"])
        with redis.Redis.from_url(env.redis_url) as r:
            assert r.hmget(tkey, "used", "reserved") == [b"80", b"0"]
            flush_worker_redis(env.redis_url)  # Redis loses everything
            assert not r.exists(tkey)
            assert statuses(env, key, ep["name"], 2) == [200, 429]  # rebuilt: 80 used, one more fits
            poll(lambda: r.hmget(tkey, "used", "reserved") == [b"100", b"0"], what="tenant counter settled")
            assert r.hmget(ekey, "used", "reserved") == [b"100", b"0"]
        assert upstream_calls(env.up, ep["model_version"]) == 5
    finally:
        ta.close()


@pytest.fixture(scope="module")
def slow_flush(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Env]:
    """A gateway (memory backend) whose usage records reach the database only every 30 s."""
    gw = GatewayProcess(tmp_path_factory.mktemp("slow-flush"), extra_env={"MODELGATE_USAGE_FLUSH_INTERVAL": "30"})
    try:
        start_gateway(gw)
        root = root_admin(gw)
        yield Env(gw, upstream, root, "memory", None)
        root.close()
    finally:
        gw.stop()


def test_usage_not_yet_stored_counts_when_a_counter_is_built(slow_flush: Env) -> None:
    env = slow_flush
    ta = env.root.new_tenant()
    try:
        ep = ta.endpoint(env.up)
        _, key = ta.key()
        assert statuses(env, key, ep["name"], 3) == [200] * 3  # 60 tokens, buffered for now
        assert db_tokens(env, "endpoint_id", ep["id"]) == 0
        ta.patch_endpoint(ep["name"], quota_tokens=60)
        assert statuses(env, key, ep["name"], 1) == [429]  # buffered usage was stored first
    finally:
        ta.close()
