"""RPM and TPM end to end: a real gateway process (memory and Redis backends) in front of the fake
upstream, hit by hundreds of concurrent requests.

Exactly the limit is admitted, every refusal is a 429 ``rate_limit_exceeded`` with Retry-After and
the x-ratelimit-* headers, and no refused request ever reaches the upstream.
"""

from __future__ import annotations

import math

import httpx2 as httpx
import openai
import pytest
import redis

from modelgate.gateway.tokens import estimate_input_tokens
from tests.limits.conftest import Env
from tests.limits.support import PROMPT_14, Burst, chat_body, error_code, poll, recorded_tokens, upstream_calls


def assert_rate_limited(r: httpx.Response, burst_seconds: float, scope: str) -> None:
    assert r.status_code == 429
    body = r.json()["error"]
    assert (body["code"], body["type"]) == ("rate_limit_exceeded", "rate_limit_error")
    assert scope in body["message"]
    retry = int(r.headers["retry-after"])
    # everything admitted came within the burst: the oldest of it leaves the window 60 s after it
    assert 60 - math.ceil(burst_seconds) - 1 <= retry <= 60
    assert r.headers["x-request-id"]


def limiter_state(env: Env) -> str:
    return str(httpx.get(env.gw.base_url + "/readyz", timeout=10).json()["checks"]["limiter"])


def redis_window(env: Env, scope: str) -> tuple[int, int]:
    """(requests, tokens) the Redis backend holds in the window of a rate scope."""
    assert env.redis_url is not None
    with redis.Redis.from_url(env.redis_url) as r:
        h = r.hgetall(f"mg:r:{scope}")
    reqs = sum(int(v) for k, v in h.items() if k.startswith(b"r"))
    toks = sum(int(v) for k, v in h.items() if k.startswith(b"t"))
    return reqs, toks


def usage_statuses(env: Env, endpoint_id: int, total: int) -> dict[int, int]:
    """Status codes of the usage events of an endpoint, once all ``total`` are stored."""

    def rows() -> list[tuple[int, int]]:
        got = env.gw.query("SELECT status_code, COUNT(*) FROM usage_events WHERE endpoint_id = ? GROUP BY status_code",
                           endpoint_id)  # fmt: skip
        return got if sum(n for _, n in got) >= total else []

    return {int(s): int(n) for s, n in poll(rows, what="usage events")}


async def test_rpm_200_concurrent_requests_against_rpm_50(env: Env) -> None:
    ep = env.root.endpoint(env.up, rpm=50)
    _, key = env.root.key()
    burst = await Burst.run([(env.gw.base_url, key, chat_body(ep["name"])) for _ in range(200)])

    assert burst.codes() == {200: 50, 429: 150}
    ok = burst.status(200)
    assert all(r.headers["x-ratelimit-limit-requests"] == "50" for r in ok)
    # each admitted request took its own slot of the window
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok) == list(range(50))
    assert all(r.json()["choices"][0]["message"]["content"].startswith("echo:") for r in ok)
    for r in burst.status(429):
        assert_rate_limited(r, burst.seconds, f"endpoint '{ep['name']}'")
        assert (r.headers["x-ratelimit-limit-requests"], r.headers["x-ratelimit-remaining-requests"]) == ("50", "0")
    assert upstream_calls(env.up, ep["model_version"]) == 50  # no refused request reached the upstream
    # every request left one usage event; the refused ones say why
    assert usage_statuses(env, ep["id"], 200) == {200: 50, 429: 150}
    refused = env.gw.query("SELECT DISTINCT error_type, upstream_status FROM usage_events "
                           "WHERE endpoint_id = ? AND status_code = 429", ep["id"])  # fmt: skip
    assert refused == [("rate_limited", None)]
    if env.backend == "redis":
        assert redis_window(env, f"ep:{ep['id']}")[0] == 50  # the shared counters did the counting
        assert limiter_state(env) == "redis:up"  # ... and never fell back to local ones


async def test_tpm_200_concurrent_requests_with_known_token_counts(env: Env) -> None:
    ep = env.root.endpoint(env.up, tpm=1000)
    _, key = env.root.key()
    body = chat_body(ep["name"], PROMPT_14, max_tokens=6)
    per_call = estimate_input_tokens(body) + 6
    # the estimate reserved at admission is exactly what the upstream will report: 14 + 6 words
    assert per_call == recorded_tokens(PROMPT_14, 6) == 20
    burst = await Burst.run([(env.gw.base_url, key, body) for _ in range(200)])

    assert burst.codes() == {200: 50, 429: 150}
    ok = burst.status(200)
    assert all(r.headers["x-ratelimit-limit-tokens"] == "1000" for r in ok)
    assert sorted(int(r.headers["x-ratelimit-remaining-tokens"]) for r in ok) == list(range(0, 1000, 20))
    assert "x-ratelimit-limit-requests" not in ok[0].headers  # no RPM on this endpoint
    assert all(r.json()["usage"]["total_tokens"] == 20 for r in ok)
    for r in burst.status(429):
        assert_rate_limited(r, burst.seconds, "1000 tokens per minute")
        assert r.headers["x-ratelimit-limit-tokens"] == "1000"
        assert int(r.headers["x-ratelimit-remaining-tokens"]) < 20
    assert upstream_calls(env.up, ep["model_version"]) == 50
    assert usage_statuses(env, ep["id"], 200) == {200: 50, 429: 150}
    recorded = env.gw.query("SELECT SUM(input_tokens + output_tokens) FROM usage_events WHERE endpoint_id = ?",
                            ep["id"])[0][0]  # fmt: skip
    assert recorded == 1000
    if env.backend == "redis":
        assert redis_window(env, f"ep:{ep['id']}") == (50, 1000)


async def test_per_key_limits(env: Env) -> None:
    ep = env.root.endpoint(env.up)  # no endpoint limit: only the keys' own
    _, limited = env.root.key(rpm=10)
    _, tpm_limited = env.root.key(tpm=200)
    _, free = env.root.key()
    body = chat_body(ep["name"])  # 20 tokens
    burst = await Burst.run([(env.gw.base_url, limited, body)] * 60 + [(env.gw.base_url, tpm_limited, body)] * 40
                            + [(env.gw.base_url, free, body)] * 20)  # fmt: skip
    by_key = [burst.responses[:60], burst.responses[60:100], burst.responses[100:]]

    assert sum(r.status_code == 200 for r in by_key[0]) == 10
    assert sum(r.status_code == 200 for r in by_key[1]) == 10  # 200 tokens / 20
    assert all(r.status_code == 200 for r in by_key[2])
    for r in by_key[0] + by_key[1]:
        if r.status_code == 429:
            assert_rate_limited(r, burst.seconds, "this API key")
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in by_key[0] if r.status_code == 200) == list(
        range(10)
    )
    assert all(r.headers["x-ratelimit-limit-tokens"] == "200" for r in by_key[1])
    # no limit applies to the free key: no rate-limit headers at all
    assert not any(h.startswith("x-ratelimit") for r in by_key[2] for h in r.headers)
    assert upstream_calls(env.up, ep["model_version"]) == 40


async def test_endpoint_and_key_limits_together(env: Env) -> None:
    ep = env.root.endpoint(env.up, rpm=30)
    _, small = env.root.key(rpm=10)
    _, large = env.root.key(rpm=100)
    body = chat_body(ep["name"])
    burst = await Burst.run([(env.gw.base_url, small, body)] * 40 + [(env.gw.base_url, large, body)] * 40)
    small_ok = sum(r.status_code == 200 for r in burst.responses[:40])
    assert burst.codes() == {200: 30, 429: 50}  # exactly the endpoint's limit ...
    assert small_ok <= 10  # ... and never more than a key's own
    assert upstream_calls(env.up, ep["model_version"]) == 30
    for r in burst.status(200):  # the tighter of the two scopes is reported
        limit = int(r.headers["x-ratelimit-limit-requests"])
        assert limit in (10, 30)
        assert 0 <= int(r.headers["x-ratelimit-remaining-requests"]) < limit


async def test_openai_sdk_sees_a_rate_limit_error(env: Env) -> None:
    ep = env.root.endpoint(env.up, rpm=2)
    _, key = env.root.key()
    async with openai.AsyncOpenAI(base_url=env.gw.base_url + "/v1", api_key=key, max_retries=0) as client:
        for remaining in ("1", "0"):
            raw = await client.chat.completions.with_raw_response.create(
                model=ep["name"], messages=[{"role": "user", "content": "hi"}], max_tokens=3
            )
            assert raw.headers["x-ratelimit-remaining-requests"] == remaining
            assert raw.parse().choices[0].message.content == "echo: hi"
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model=ep["name"], messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 429 and info.value.code == "rate_limit_exceeded"
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 60
    assert upstream_calls(env.up, ep["model_version"]) == 2


async def test_limit_edits_take_effect_on_the_next_request(env: Env) -> None:
    ep = env.root.endpoint(env.up, rpm=1)
    _, key = env.root.key()
    hdr = {"authorization": f"Bearer {key}"}
    url = env.gw.base_url + "/v1/chat/completions"
    async with httpx.AsyncClient(timeout=30) as c:
        assert (await c.post(url, json=chat_body(ep["name"]), headers=hdr)).status_code == 200
        r = await c.post(url, json=chat_body(ep["name"]), headers=hdr)
        assert r.status_code == 429 and error_code(r) == "rate_limit_exceeded"
        env.root.patch_endpoint(ep["name"], rpm=3)  # answered once this process serves the change
        r = await c.post(url, json=chat_body(ep["name"]), headers=hdr)
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining-requests"] == "1"
        env.root.patch_endpoint(ep["name"], rpm=0)  # 0 blocks the endpoint
        r = await c.post(url, json=chat_body(ep["name"]), headers=hdr)
        assert r.status_code == 429 and error_code(r) == "rate_limit_exceeded"
        env.root.patch_endpoint(ep["name"], rpm=None)  # no limit at all
        r = await c.post(url, json=chat_body(ep["name"]), headers=hdr)
        assert r.status_code == 200 and "x-ratelimit-limit-requests" not in r.headers


@pytest.mark.parametrize("env", ["memory"], indirect=True)
def test_several_workers_without_redis_refuse_to_start(env: Env) -> None:
    """Each worker would enforce every limit alone: refused, with the way out in the message."""
    from tests.harness import free_port

    res = env.gw.cli_raw("serve", "--workers", "2", "--port", str(free_port()))
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "MODELGATE_REDIS_URL" in out and "--workers" in out


@pytest.mark.parametrize("env", ["memory"], indirect=True)
def test_cli_forms_for_limits(env: Env) -> None:
    """``modelgate endpoints update NAME --rpm --tpm --quota --quota-cycle`` and ``modelgate keys
    create --rpm --tpm``, as scripts use them; the running gateway enforces what they set."""
    ta = env.root.new_tenant()
    try:
        ta.set_quota(1000)
        ep = ta.endpoint(env.up)
        out = env.gw.cli("endpoints", "update", ep["name"], "--rpm", "3", "--tpm", "1000", "--quota", "5000",
                         "--quota-cycle", "daily", "--tenant", ta.tenant_name, "--json")  # fmt: skip
        assert (out["rpm"], out["tpm"], out["quota_tokens"], out["quota_cycle"]) == (3, 1000, 5000, "daily")
        assert out["warnings"] == ["The endpoint quota (5000) is above the tenant quota (1000); "
                                   "the effective limit is the tenant's."]  # fmt: skip
        key = env.gw.cli("keys", "create", "--owner", ta.username, "--rpm", "1", "--tpm", "500",
                         "--tenant", ta.tenant_name, "--json")  # fmt: skip
        assert (key["rpm"], key["tpm"]) == (1, 500)
        _, other = ta.key()
        env.gw.wait_synced()
        hdr = {"authorization": f"Bearer {key['secret']}"}
        url = env.gw.base_url + "/v1/chat/completions"
        got = [httpx.post(url, json=chat_body(ep["name"]), headers=hdr, timeout=30) for _ in range(2)]
        assert [r.status_code for r in got] == [200, 429]  # the key's RPM of 1
        assert "this API key" in got[1].json()["error"]["message"]
        hdr = {"authorization": f"Bearer {other}"}
        got = [httpx.post(url, json=chat_body(ep["name"]), headers=hdr, timeout=30) for _ in range(3)]
        assert [r.status_code for r in got] == [200, 200, 429]  # the endpoint's RPM of 3
        assert got[0].headers["x-ratelimit-limit-tokens"] == "1000"
        text = env.gw.cli("endpoints", "update", ep["name"], "--quota", "2000", "--tenant", ta.tenant_name)
        assert "warning:" in text and "effective limit is the tenant's" in text
    finally:
        ta.close()
