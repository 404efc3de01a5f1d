"""Reservations are reconciled however a call ends: a stream the client aborts (upstream hanging or
still streaming), a stream that completes, an upstream error. Afterwards the TPM window and the
quota counters hold the tokens recorded for the call and nothing of its reservation.

The endpoint's TPM (1100) and quota (1000) are chosen so that a leaked reservation (1014 tokens:
14 of prompt + max_tokens 1000) would refuse the next call: 1014 + 1014 > 1100 and a leaked
reservation makes used + reserved >= 1000.
"""

from __future__ import annotations

import httpx2 as httpx
import redis

from modelgate.gateway.tokens import estimate_input_tokens
from tests.limits.conftest import Env
from tests.limits.support import PROMPT_14, chat_body, poll, quota_key, recorded_tokens, upstream_calls

TPM, QUOTA, MAX_TOKENS = 1100, 1000, 1000
BODY = chat_body("x", PROMPT_14, max_tokens=MAX_TOKENS, stream=True)
RESERVED = estimate_input_tokens(BODY) + MAX_TOKENS


def url(env: Env) -> str:
    return env.gw.base_url + "/v1/chat/completions"


async def aborted_stream(env: Env, key: str, model: str, content_chunks: int) -> httpx.Response:
    """Open a stream, read ``content_chunks`` events carrying content, then hang up."""
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("POST", url(env), json={**BODY, "model": model}, headers={"authorization": f"Bearer {key}"}) as r,
    ):
        assert r.status_code == 200
        seen = 0
        async for line in r.aiter_lines():
            if line.startswith("data:") and '"content"' in line:
                seen += 1
                if seen == content_chunks:
                    break
        assert seen == content_chunks
    return r


def assert_settled(env: Env, ep: dict, recorded: int) -> None:  # type: ignore[type-arg]
    """The quota counter holds exactly the recorded tokens and no reservation."""
    if env.backend == "redis":
        assert env.redis_url is not None
        key = quota_key(env.gw, "e", ep["id"])
        with redis.Redis.from_url(env.redis_url) as r:
            poll(lambda: r.hmget(key, "used", "reserved") == [str(recorded).encode(), b"0"],
                 what="the quota counter settled")  # fmt: skip
    poll(lambda: env.root.endpoint_quota(ep["name"])["used"] == recorded, what="quota status")


async def next_call_admitted(env: Env, key: str, ep: dict, recorded: int) -> None:  # type: ignore[type-arg]
    """A call that would not fit if the reservation had leaked is admitted, and its headers show
    the window holding only the recorded tokens."""
    model = ep["name"]
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("POST", url(env), json={**BODY, "model": model}, headers={"authorization": f"Bearer {key}"}) as r,
    ):
        assert r.status_code == 200, await r.aread()
        assert int(r.headers["x-ratelimit-remaining-tokens"]) == TPM - recorded - RESERVED


async def test_stream_aborted_while_the_upstream_hangs(env: Env) -> None:
    ep = env.root.endpoint(env.up, behaviour="hang-stream", tpm=TPM, quota_tokens=QUOTA)
    _, key = env.root.key()
    disconnects = env.up.disconnects.value
    r = await aborted_stream(env, key, ep["name"], 1)
    assert int(r.headers["x-ratelimit-remaining-tokens"]) == TPM - RESERVED
    ev = env.gw.usage_for(r.headers["x-request-id"])
    assert (ev["error_type"], ev["is_stream"], ev["is_estimated"]) == ("client_disconnected", 1, 1)
    # no usage came from the upstream: the prompt estimate and what was relayed ("echo:") count
    assert ev["input_tokens"] == estimate_input_tokens(BODY) and ev["output_tokens"] == 2
    recorded = ev["input_tokens"] + ev["output_tokens"]
    assert env.up.disconnects.wait_for(disconnects + 1)  # the upstream call was closed too
    assert_settled(env, ep, recorded)
    await next_call_admitted(env, key, ep, recorded)


async def test_stream_aborted_midway(env: Env) -> None:
    ep = env.root.endpoint(env.up, behaviour="slowstream-50", tpm=TPM, quota_tokens=QUOTA)
    _, key = env.root.key()
    r = await aborted_stream(env, key, ep["name"], 4)  # "echo:", "a", "b", "c"
    ev = env.gw.usage_for(r.headers["x-request-id"])
    assert ev["error_type"] == "client_disconnected" and ev["is_estimated"] == 1
    assert 14 + 2 <= ev["input_tokens"] + ev["output_tokens"] < RESERVED
    recorded = ev["input_tokens"] + ev["output_tokens"]
    assert_settled(env, ep, recorded)
    await next_call_admitted(env, key, ep, recorded)


async def test_completed_stream_settles_with_the_upstream_usage(env: Env) -> None:
    ep = env.root.endpoint(env.up, tpm=TPM, quota_tokens=QUOTA)
    _, key = env.root.key()
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(url(env), json={**BODY, "model": ep["name"]}, headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")
    ev = env.gw.usage_for(r.headers["x-request-id"])
    assert (ev["error_type"], ev["is_estimated"]) == (None, 0)
    recorded = recorded_tokens(PROMPT_14, MAX_TOKENS)  # 14 + the 15-word reply
    assert ev["input_tokens"] + ev["output_tokens"] == recorded == 29
    assert_settled(env, ep, recorded)
    await next_call_admitted(env, key, ep, recorded)


async def test_upstream_error_releases_the_reservation(env: Env) -> None:
    ep = env.root.endpoint(env.up, behaviour="fail-500", tpm=TPM, quota_tokens=QUOTA)
    _, key = env.root.key()
    prompt = estimate_input_tokens(BODY)
    remaining = []
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(3):  # a leaked reservation would refuse the second
            r = await client.post(url(env), json={**BODY, "model": ep["name"]},
                                  headers={"authorization": f"Bearer {key}"})  # fmt: skip
            assert r.status_code == 502, r.text
            remaining.append(int(r.headers["x-ratelimit-remaining-tokens"]))
            assert_settled(env, ep, prompt * len(remaining))
    # the upstream was called and may bill the prompt: its estimate is recorded, nothing more
    assert remaining == [TPM - RESERVED - prompt * i for i in range(3)]
    ev = env.gw.usage_for(r.headers["x-request-id"])
    assert (ev["input_tokens"], ev["output_tokens"], ev["is_estimated"]) == (prompt, 0, 1)
    assert upstream_calls(env.up, ep["model_version"]) == 3


async def test_non_stream_call_abandoned_by_the_client_still_settles(env: Env) -> None:
    ep = env.root.endpoint(env.up, behaviour="slow-1500", tpm=TPM, quota_tokens=QUOTA)
    _, key = env.root.key()
    async with httpx.AsyncClient(timeout=0.3) as client:
        try:
            await client.post(url(env), json={**BODY, "model": ep["name"], "stream": False},
                              headers={"authorization": f"Bearer {key}"})  # fmt: skip
            raise AssertionError("the call should have outlived the client's patience")
        except httpx.TimeoutException:
            pass

    def event() -> list[tuple[int, int, int]]:
        return env.gw.query("SELECT input_tokens, output_tokens, status_code FROM usage_events "
                            "WHERE endpoint_id = ?", ep["id"])  # fmt: skip

    rows = poll(event, what="the abandoned call recorded")
    assert len(rows) == 1
    recorded = rows[0][0] + rows[0][1]
    assert 0 < recorded < RESERVED
    assert_settled(env, ep, recorded)
    # the next call would not fit beside a leaked reservation
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(url(env), json={**BODY, "model": ep["name"], "stream": False},
                              headers={"authorization": f"Bearer {key}"})  # fmt: skip
    assert r.status_code == 200
    assert int(r.headers["x-ratelimit-remaining-tokens"]) == TPM - recorded - RESERVED
