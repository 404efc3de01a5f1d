"""The OpenAI-compatible invocation path, end to end: the official openai SDK (sync and async)
calls a real gateway process, which forwards to a real fake upstream over HTTP.

Every test checks three things: what the client sees (validated against OpenAI's OpenAPI
document), what the upstream received, and the usage event the gateway recorded.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
import openai
import pytest
from aiohttp import web

from tests import admin, contracts
from tests.fakes.upstream import FakeUpstream, words
from tests.harness import GatewayProcess

P = "pc-"  # endpoint / user name prefix of this module (names are unique per gateway)
MESSAGES = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "tell me four words"},
]
PROMPT_TOKENS = 6  # the fake upstream counts whitespace-separated words of every message
REPLY = "echo: tell me four words"
REPLY_TOKENS = len(words(REPLY))


@dataclass(frozen=True)
class Env:
    gw: GatewayProcess
    up: FakeUpstream
    key: str
    key_id: int
    user_id: int
    tenant_id: int
    endpoints: dict[str, int]  # name → id

    def client(self, **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gw.base_url + "/v1", api_key=self.key, max_retries=0, **kw)

    def async_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.gw.base_url + "/v1", api_key=self.key, max_retries=0)

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        hdrs = {"authorization": f"Bearer {self.key}"} if headers is None else headers
        return httpx.post(self.gw.base_url + path, json=body, headers=hdrs, timeout=30)

    def event(self, request_id: str) -> dict[str, Any]:
        return self.gw.usage_for(request_id)


ENDPOINTS = {
    # name suffix: (model version the upstream sees, category)
    "chat": ("fake-model", "llm"),
    "ttft": ("slowstream-40", "llm"),
    "cumulative": ("cumulative-usage", "llm"),
    "inlast": ("usage-in-last", "llm"),
    "nousage": ("no-usage", "llm"),
    "emb": ("fake-embedding", "embedding"),
    "emb-nousage": ("no-usage-embedding", "embedding"),
    "img": ("fake-image", "image"),
}


@pytest.fixture(scope="module")
def env(gateway: GatewayProcess, upstream: FakeUpstream) -> Env:
    def create(suffix: str) -> tuple[str, int]:
        model, category = ENDPOINTS[suffix]
        out = gateway.create_endpoint(P + suffix, upstream.base_url, model_version=model, category=category)
        return P + suffix, int(out["id"])

    with ThreadPoolExecutor(4) as pool:  # each CLI call is a process start: overlap them
        created = pool.map(create, ENDPOINTS)
        key_future = pool.submit(gateway.create_key, "admin", name=P + "key")
        ids = dict(created)
        key = key_future.result()
    return Env(
        gateway, upstream, key["secret"], int(key["id"]), int(key["owner_id"]), admin.tenant_id(gateway), ids
    )


@pytest.fixture
def client(env: Env) -> Iterator[openai.OpenAI]:
    with env.client() as c:
        yield c


@pytest.fixture
async def aclient(env: Env) -> AsyncIterator[openai.AsyncOpenAI]:
    async with env.async_client() as c:
        yield c


def sse_events(text: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order (the gateway frames with blank lines)."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data:"):
                out.append(line[5:].strip())
    return out


def stream_raw(
    env: Env, path: str, body: dict[str, Any]
) -> tuple[httpx.Response, list[dict[str, Any]], list[str]]:
    """POST a stream request; returns the response, the parsed chunks and the raw payloads."""
    resp = env.post(path, {**body, "stream": True})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    payloads = sse_events(resp.text)
    assert payloads[-1] == "[DONE]", payloads[-3:]
    assert payloads.count("[DONE]") == 1
    return resp, [json.loads(p) for p in payloads[:-1]], payloads


def assert_event_identity(env: Env, ev: dict[str, Any], endpoint: str, route: str, stream: bool) -> None:
    assert ev["tenant_id"] == env.tenant_id
    assert ev["endpoint_id"] == env.endpoints[endpoint]
    assert ev["user_id"] == env.user_id
    assert ev["api_key_id"] == env.key_id
    assert ev["channel"] == "api"
    assert ev["route"] == route
    assert bool(ev["is_stream"]) is stream
    assert ev["status_code"] == 200 and ev["error_type"] is None
    assert ev["upstream_status"] == 200
    assert ev["latency_ms"] > 0
    if stream:
        assert ev["ttft_ms"] is not None and 0 < ev["ttft_ms"] <= ev["latency_ms"]
    else:
        assert ev["ttft_ms"] is None


# ------------------------------------------------------------------ chat, sync SDK


def test_sync_chat_non_stream(env: Env, client: openai.OpenAI) -> None:
    env.up.clear()
    raw = client.chat.completions.with_raw_response.create(model=P + "chat", messages=MESSAGES, max_tokens=50)
    completion = raw.parse()
    assert completion.choices[0].message.content == REPLY
    assert completion.model == P + "chat"
    assert completion.usage is not None and completion.usage.prompt_tokens == PROMPT_TOKENS
    body = raw.http_response.json()
    contracts.validate("CreateChatCompletionResponse", body)
    rid = raw.headers["x-request-id"]
    # what the upstream saw: the endpoint's model version, the client's other fields untouched,
    # the vendor secret (never the client's gateway key), no stream options on a non-stream call
    sent = env.up.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.json == {"model": "fake-model", "messages": MESSAGES, "max_tokens": 50}
    assert sent.headers["authorization"] == "Bearer sk-vendor-secret"
    assert env.key not in sent.body.decode() and env.key not in json.dumps(dict(sent.headers))
    ev = env.event(rid)
    assert_event_identity(env, ev, P + "chat", "chat", stream=False)
    assert (ev["input_tokens"], ev["output_tokens"]) == (PROMPT_TOKENS, REPLY_TOKENS)
    assert not ev["is_estimated"]


def test_sync_chat_stream(env: Env, client: openai.OpenAI) -> None:
    env.up.clear()
    with client.chat.completions.with_streaming_response.create(
        model=P + "ttft", messages=MESSAGES, stream=True
    ) as resp:
        rid = resp.headers["x-request-id"]
        chunks = list(resp.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert {c.model for c in chunks} == {P + "ttft"}
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert env.up.requests[-1].json["stream_options"] == {"include_usage": True}
    ev = env.event(rid)
    assert_event_identity(env, ev, P + "ttft", "chat", stream=True)
    assert (ev["input_tokens"], ev["output_tokens"]) == (PROMPT_TOKENS, REPLY_TOKENS)
    # the upstream waits 40 ms before its headers and between chunks: the first token comes
    # after ~40 ms, the whole reply (5 words, 6 chunks) after ~200 ms
    assert 30 <= ev["ttft_ms"] < ev["latency_ms"] - 100


def test_chat_stream_chunks_arrive_unbuffered(env: Env) -> None:
    """Each chunk reaches the client as the upstream sends it, not when the stream ends."""
    arrivals: list[float] = []
    body = {"model": P + "ttft", "messages": MESSAGES, "stream": True}
    with httpx.stream(
        "POST",
        env.gw.base_url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {env.key}"},
        timeout=30,
    ) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data:"):
                arrivals.append(time.monotonic())
    assert len(arrivals) == REPLY_TOKENS + 2  # words, the finish chunk, [DONE]
    spread = arrivals[-2] - arrivals[0]
    assert spread >= 0.12, f"chunks arrived together ({spread * 1000:.0f} ms apart): the stream was buffered"


def test_stream_with_include_usage_gets_one_usage_chunk_at_the_end(env: Env) -> None:
    body = {"model": P + "chat", "messages": MESSAGES, "stream_options": {"include_usage": True}}
    resp, chunks, _ = stream_raw(env, "/v1/chat/completions", body)
    for chunk in chunks:
        contracts.validate("CreateChatCompletionStreamResponse", chunk)
        assert chunk["model"] == P + "chat"
    with_usage = [i for i, c in enumerate(chunks) if c.get("usage")]
    assert with_usage == [len(chunks) - 1], "exactly one usage chunk, the last before [DONE]"
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"]["prompt_tokens"] == PROMPT_TOKENS
    assert last["usage"]["completion_tokens"] == REPLY_TOKENS
    ev = env.event(resp.headers["x-request-id"])
    assert (ev["input_tokens"], ev["output_tokens"], ev["is_estimated"]) == (PROMPT_TOKENS, REPLY_TOKENS, 0)


def test_stream_with_include_usage_through_the_sdk(env: Env, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=P + "chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    usages = [c.usage for c in chunks if c.usage is not None]
    assert len(usages) == 1 and chunks[-1].usage is not None
    assert (usages[0].prompt_tokens, usages[0].completion_tokens) == (PROMPT_TOKENS, REPLY_TOKENS)


def test_stream_chunks_without_include_usage_validate(env: Env) -> None:
    resp, chunks, _ = stream_raw(env, "/v1/chat/completions", {"model": P + "chat", "messages": MESSAGES})
    for chunk in chunks:
        contracts.validate("CreateChatCompletionStreamResponse", chunk)
        assert "usage" not in chunk or chunk["usage"] is None
    assert all(c["choices"] for c in chunks), "no usage-only chunk the client did not ask for"
    ev = env.event(resp.headers["x-request-id"])
    assert (ev["input_tokens"], ev["output_tokens"]) == (PROMPT_TOKENS, REPLY_TOKENS)


@pytest.mark.parametrize("vendor", ["cumulative", "inlast"])
def test_vendor_usage_styles_are_recorded_and_hidden(env: Env, vendor: str) -> None:
    """Cumulative usage on every chunk / usage on the finish chunk: the event holds the final
    numbers, and a client that did not ask for usage sees none (but keeps every choice)."""
    resp, chunks, _ = stream_raw(env, "/v1/chat/completions", {"model": P + vendor, "messages": MESSAGES})
    assert all("usage" not in c for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == REPLY
    assert any(c["choices"] and c["choices"][0]["finish_reason"] == "stop" for c in chunks)
    for chunk in chunks:
        contracts.validate("CreateChatCompletionStreamResponse", chunk)
    ev = env.event(resp.headers["x-request-id"])
    assert (ev["input_tokens"], ev["output_tokens"]) == (PROMPT_TOKENS, REPLY_TOKENS)
    assert not ev["is_estimated"]


@pytest.mark.parametrize("vendor", ["cumulative", "inlast"])
def test_vendor_usage_styles_pass_usage_when_asked(env: Env, vendor: str) -> None:
    body = {"model": P + vendor, "messages": MESSAGES, "stream_options": {"include_usage": True}}
    _, chunks, _ = stream_raw(env, "/v1/chat/completions", body)
    assert chunks[-1]["usage"]["completion_tokens"] == REPLY_TOKENS
    assert chunks[-1]["choices"], "the usage rode on a content chunk, which must keep its choices"


def test_no_usage_upstream_is_estimated(env: Env, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=P + "nousage", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == REPLY
    ev = env.event(raw.headers["x-request-id"])
    assert ev["is_estimated"]
    assert ev["input_tokens"] > 0 and ev["output_tokens"] > 0
    assert ev["status_code"] == 200 and ev["error_type"] is None


def test_no_usage_upstream_stream_is_estimated(env: Env) -> None:
    body = {"model": P + "nousage", "messages": MESSAGES, "stream_options": {"include_usage": True}}
    resp, chunks, _ = stream_raw(env, "/v1/chat/completions", body)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == REPLY
    ev = env.event(resp.headers["x-request-id"])
    assert ev["is_estimated"]
    assert ev["input_tokens"] > 0 and ev["output_tokens"] > 0


def test_endpoint_prefix_form(env: Env, client: openai.OpenAI) -> None:
    env.up.clear()
    raw = client.chat.completions.with_raw_response.create(model=f"endpoint:{P}chat", messages=MESSAGES)
    assert raw.parse().model == P + "chat"
    assert env.up.requests[-1].json["model"] == "fake-model"
    assert env.event(raw.headers["x-request-id"])["endpoint_id"] == env.endpoints[P + "chat"]


@pytest.mark.parametrize("header", ["api-key", "x-api-key", "Authorization"])
def test_key_headers(env: Env, header: str) -> None:
    value = f"Bearer {env.key}" if header == "Authorization" else env.key
    resp = env.post(
        "/v1/chat/completions", {"model": P + "chat", "messages": MESSAGES}, headers={header: value}
    )
    assert resp.status_code == 200, resp.text
    contracts.validate("CreateChatCompletionResponse", resp.json())
    assert env.event(resp.headers["x-request-id"])["api_key_id"] == env.key_id


def test_client_headers_never_reach_the_upstream(env: Env) -> None:
    env.up.clear()
    hdrs = {"authorization": f"Bearer {env.key}", "x-evil": "1", "api-key": env.key}
    resp = env.post("/v1/chat/completions", {"model": P + "chat", "messages": MESSAGES}, headers=hdrs)
    assert resp.status_code == 200
    sent = env.up.requests[-1]
    assert "x-evil" not in sent.headers and "api-key" not in sent.headers
    assert sent.headers["authorization"] == "Bearer sk-vendor-secret"


def test_cached_and_reasoning_tokens_are_recorded(env: Env, client: openai.OpenAI) -> None:
    with DetailedUsageUpstream() as vendor:
        name = P + "details"
        ep = env.gw.create_endpoint(name, vendor.base_url, model_version="reasoner")
        env.endpoints[name] = int(ep["id"])
        raw = client.chat.completions.with_raw_response.create(model=name, messages=MESSAGES)
        body = raw.http_response.json()
        contracts.validate("CreateChatCompletionResponse", body)
        assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == DetailedUsageUpstream.CACHED
        ev = env.event(raw.headers["x-request-id"])
        assert (ev["input_tokens"], ev["output_tokens"]) == (40, 12)
        assert (ev["cached_tokens"], ev["reasoning_tokens"]) == (
            DetailedUsageUpstream.CACHED,
            DetailedUsageUpstream.REASONING,
        )
        resp, chunks, _ = stream_raw(env, "/v1/chat/completions", {"model": name, "messages": MESSAGES})
        assert all("usage" not in c for c in chunks)
        ev = env.event(resp.headers["x-request-id"])
        assert (ev["input_tokens"], ev["output_tokens"], ev["cached_tokens"], ev["reasoning_tokens"]) == (
            40,
            12,
            DetailedUsageUpstream.CACHED,
            DetailedUsageUpstream.REASONING,
        )


# ----------------------------------------------------------------- chat, async SDK


async def test_async_chat_non_stream(env: Env, aclient: openai.AsyncOpenAI) -> None:
    raw = await aclient.chat.completions.with_raw_response.create(model=P + "chat", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == REPLY
    assert completion.model == P + "chat"
    ev = env.event(raw.headers["x-request-id"])
    assert_event_identity(env, ev, P + "chat", "chat", stream=False)


async def test_async_chat_stream(env: Env, aclient: openai.AsyncOpenAI) -> None:
    async with aclient.chat.completions.with_streaming_response.create(
        model=P + "chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as resp:
        rid = resp.headers["x-request-id"]
        chunks = [c async for c in await resp.parse()]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == PROMPT_TOKENS + REPLY_TOKENS
    ev = env.event(rid)
    assert_event_identity(env, ev, P + "chat", "chat", stream=True)
    assert (ev["input_tokens"], ev["output_tokens"]) == (PROMPT_TOKENS, REPLY_TOKENS)


async def test_async_concurrent_calls_each_get_their_own_event(env: Env, aclient: openai.AsyncOpenAI) -> None:
    import asyncio

    async def one(i: int) -> tuple[str, str]:
        raw = await aclient.chat.completions.with_raw_response.create(
            model=P + "chat", messages=[{"role": "user", "content": f"number {i}"}]
        )
        return raw.headers["x-request-id"], raw.parse().choices[0].message.content or ""

    results = await asyncio.gather(*(one(i) for i in range(12)))
    assert [text for _, text in results] == [f"echo: number {i}" for i in range(12)]
    rids = [rid for rid, _ in results]
    assert len(set(rids)) == 12
    for rid in rids:
        assert env.event(rid)["output_tokens"] == 3


# ------------------------------------------------------------------ legacy completions


def test_completions_non_stream(env: Env, client: openai.OpenAI) -> None:
    env.up.clear()
    raw = client.completions.with_raw_response.create(model=P + "chat", prompt="complete this sentence")
    body = raw.http_response.json()
    contracts.validate("CreateCompletionResponse", body)
    assert body["model"] == P + "chat"
    assert body["choices"][0]["text"] == "echo: complete this sentence"
    assert env.up.requests[-1].path == "/v1/completions"
    ev = env.event(raw.headers["x-request-id"])
    assert_event_identity(env, ev, P + "chat", "completions", stream=False)
    assert (ev["input_tokens"], ev["output_tokens"]) == (3, 4)


def test_completions_stream(env: Env, client: openai.OpenAI) -> None:
    resp, chunks, _ = stream_raw(
        env, "/v1/completions", {"model": P + "chat", "prompt": "complete this sentence"}
    )
    for chunk in chunks:
        contracts.validate("CreateCompletionStreamResponse", chunk)
        assert chunk["model"] == P + "chat"
        assert "usage" not in chunk
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "echo: complete this sentence"
    ev = env.event(resp.headers["x-request-id"])
    assert_event_identity(env, ev, P + "chat", "completions", stream=True)
    assert (ev["input_tokens"], ev["output_tokens"]) == (3, 4)
    # and through the SDK, asking for usage
    stream = client.completions.create(
        model=P + "chat", prompt="complete this sentence", stream=True, stream_options={"include_usage": True}
    )
    sdk_chunks = list(stream)
    assert [c.usage.completion_tokens for c in sdk_chunks if c.usage] == [4]


# ---------------------------------------------------------------- embeddings, images


@pytest.mark.parametrize("value", ["embed this text", ["first text", "the second text"]])
def test_embeddings(env: Env, client: openai.OpenAI, value: str | list[str]) -> None:
    env.up.clear()
    raw = client.embeddings.with_raw_response.create(model=P + "emb", input=value, encoding_format="float")
    body = raw.http_response.json()
    contracts.validate("CreateEmbeddingResponse", body)
    texts = [value] if isinstance(value, str) else value
    assert body["model"] == P + "emb"
    assert len(body["data"]) == len(texts) and all(len(d["embedding"]) == 8 for d in body["data"])
    assert env.up.requests[-1].json["input"] == value
    assert env.up.requests[-1].json["model"] == "fake-embedding"
    ev = env.event(raw.headers["x-request-id"])
    assert_event_identity(env, ev, P + "emb", "embeddings", stream=False)
    assert ev["input_tokens"] == sum(len(words(t)) for t in texts)
    assert ev["output_tokens"] == 0 and not ev["is_estimated"]


def test_embeddings_sdk_default_base64(env: Env, client: openai.OpenAI) -> None:
    """The SDK asks for base64 by default and decodes it; the gateway must pass it through."""
    result = client.embeddings.create(model=P + "emb", input="embed this text")
    assert len(result.data[0].embedding) == 8


def test_embeddings_without_upstream_usage_are_estimated(env: Env) -> None:
    resp = env.post(
        "/v1/embeddings", {"model": P + "emb-nousage", "input": "a fairly long text to embed here"}
    )
    assert resp.status_code == 200, resp.text
    ev = env.event(resp.headers["x-request-id"])
    assert ev["is_estimated"] and ev["input_tokens"] > 0


def test_images(env: Env, client: openai.OpenAI) -> None:
    raw = client.images.with_raw_response.generate(model=P + "img", prompt="a red square", n=2)
    body = raw.http_response.json()
    contracts.validate("ImagesResponse", body)
    assert len(body["data"]) == 2
    assert raw.parse().data is not None and raw.parse().data[0].url
    ev = env.event(raw.headers["x-request-id"])
    assert_event_identity(env, ev, P + "img", "images", stream=False)
    assert (ev["input_tokens"], ev["output_tokens"]) == (3, 200)  # the images usage naming scheme


async def test_async_embeddings_and_images(env: Env, aclient: openai.AsyncOpenAI) -> None:
    emb = await aclient.embeddings.create(model=P + "emb", input=["one", "two", "three"])
    assert [d.index for d in emb.data] == [0, 1, 2]
    img = await aclient.images.generate(model=P + "img", prompt="x", response_format="b64_json")
    assert img.data and img.data[0].b64_json


# --------------------------------------------------------------------------- models


def test_models_lists_exactly_the_invocable_endpoints(env: Env, client: openai.OpenAI) -> None:
    gw = env.gw
    # the admin (Account + Gateway Admin) may invoke every active endpoint of the tenant
    raw = client.models.with_raw_response.list()
    body = raw.http_response.json()
    contracts.validate("ListModelsResponse", body)
    assert raw.headers["x-request-id"]
    in_tenant = {
        r[0]
        for r in gw.query(
            "SELECT name FROM endpoints WHERE tenant_id = ? AND deleted_at IS NULL AND is_active = 1 AND "
            "(managed_model_id IS NULL OR managed_model_id IN (SELECT id FROM managed_models WHERE is_active = 1))",
            env.tenant_id,
        )
    }
    assert {m["id"] for m in body["data"]} == in_tenant
    assert set(env.endpoints) <= in_tenant

    # a member with one ENDPOINT_USER grant and one ENDPOINT_VIEWER grant sees exactly the first
    admin.create_user(gw, P + "member")
    admin.grant(gw, P + "member", P + "emb", "ENDPOINT_USER")
    admin.grant(gw, P + "member", P + "img", "ENDPOINT_VIEWER")
    member_key = gw.create_key(P + "member")["secret"]
    with openai.OpenAI(base_url=gw.base_url + "/v1", api_key=member_key, max_retries=0) as member:
        assert [m.id for m in member.models.list()] == [P + "emb"]
        # and listing is what invoking allows
        assert member.embeddings.create(model=P + "emb", input="x").data
        with pytest.raises(openai.PermissionDeniedError):
            member.images.generate(model=P + "img", prompt="x")

    # a member without any role or grant sees an empty list
    admin.create_user(gw, P + "nobody")
    nobody_key = gw.create_key(P + "nobody")["secret"]
    resp = httpx.get(gw.base_url + "/v1/models", headers={"x-api-key": nobody_key}, timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"object": "list", "data": []}


def test_models_never_lists_another_tenants_endpoints(env: Env, client: openai.OpenAI) -> None:
    admin.create_tenant(env.gw, P + "other", admin=P + "other-admin")
    env.gw.create_endpoint(P + "elsewhere", env.up.base_url, tenant=P + "other")
    names = {m.id for m in client.models.list()}
    assert P + "chat" in names and P + "elsewhere" not in names


def test_models_requires_a_key(env: Env) -> None:
    resp = httpx.get(env.gw.base_url + "/v1/models", timeout=10)
    assert resp.status_code == 401
    contracts.validate("ErrorResponse", resp.json())
    assert resp.headers["x-request-id"]


# ---------------------------------------------------------------- a vendor with details


class DetailedUsageUpstream(FakeUpstream):
    """A vendor reporting cached prompt tokens and reasoning tokens (the shared fake reports
    zeros): a real HTTP server on the fake's machinery, serving chat completions only."""

    CACHED, REASONING = 32, 9

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._detailed)
        return app

    @classmethod
    def _usage(cls) -> dict[str, Any]:
        return {
            "prompt_tokens": 40,
            "completion_tokens": 12,
            "total_tokens": 52,
            "prompt_tokens_details": {"cached_tokens": cls.CACHED, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": cls.REASONING,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    async def _detailed(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        base = {
            "id": "chatcmpl-" + uuid.uuid4().hex[:12],
            "created": int(time.time()),
            "model": body["model"],
        }
        if body.get("stream") is not True:
            message = {"role": "assistant", "content": "thought hard", "refusal": None}
            return web.json_response(
                {
                    **base,
                    "object": "chat.completion",
                    "usage": self._usage(),
                    "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
                }
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        chunk = {**base, "object": "chat.completion.chunk"}
        delta = {"role": "assistant", "content": "thought hard"}
        for event in (
            {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
            {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {**chunk, "choices": [], "usage": self._usage()},
        ):
            await resp.write(
                f"data: {json.dumps(event)}\r\n\r\n".encode()
            )  # CRLF framing, as some vendors do
        await resp.write(b"data: [DONE]\r\n\r\n")
        return resp
