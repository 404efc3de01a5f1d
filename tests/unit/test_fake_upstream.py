"""The fake upstream is itself a contract: its payloads must be valid OpenAI payloads.

If the fake drifted from OpenAI's schemas, gateway tests against it would prove nothing.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

try:
    from tests import contracts
    from tests.fakes.upstream import FakeUpstream
except ModuleNotFoundError:  # pytest's rootdir is not on sys.path (no conftest, no pythonpath)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests import contracts
    from tests.fakes.upstream import FakeUpstream

needs_contract = pytest.mark.skipif(not contracts.available(), reason=f"no {contracts.contract_path()}")

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": [{"type": "text", "text": "first question"}]},
    {"role": "assistant", "content": "an answer"},
    {"role": "user", "content": "hello big world"},
]
PROMPT_WORDS = 3 + 2 + 2 + 3
REPLY = "echo: hello big world"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
async def http(upstream: FakeUpstream) -> AsyncIterator[aiohttp.ClientSession]:
    upstream.clear()
    async with aiohttp.ClientSession(base_url=upstream.base_url + "/") as session:
        yield session


def sse_events(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [block[len("data: ") :] for block in raw.decode().split("\n\n") if block.startswith("data: ")]


async def stream_chunks(http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    async with http.post(path, json={**body, "stream": True}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events = sse_events(await resp.read())
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


# ------------------------------------------------------------------------ chat


@needs_contract
async def test_chat_non_stream_is_valid_and_deterministic(http: aiohttp.ClientSession, upstream: FakeUpstream) -> None:
    async with http.post(
        "chat/completions",
        json={"model": "gpt-x", "messages": MESSAGES},
        headers={"Authorization": "Bearer sk-vendor"},
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
    contracts.validate("CreateChatCompletionResponse", body)
    assert body["model"] == "gpt-x"
    assert body["choices"][0]["message"]["content"] == REPLY
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == PROMPT_WORDS
    assert body["usage"]["completion_tokens"] == 4
    assert body["usage"]["total_tokens"] == PROMPT_WORDS + 4
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
    recorded = upstream.requests[-1]
    assert (recorded.method, recorded.path, recorded.model) == ("POST", "/v1/chat/completions", "gpt-x")
    assert recorded.headers["Authorization"] == recorded.headers["authorization"] == "Bearer sk-vendor"
    assert recorded.json["messages"] == MESSAGES


async def test_max_tokens_truncates_with_length(http: aiohttp.ClientSession) -> None:
    body = {"model": "m", "messages": MESSAGES, "max_tokens": 2}
    async with http.post("chat/completions", json=body) as resp:
        data = await resp.json()
    assert data["choices"][0]["message"]["content"] == "echo: hello"
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 2


@needs_contract
async def test_chat_stream_with_usage_is_valid(http: aiohttp.ClientSession, upstream: FakeUpstream) -> None:
    chunks = await stream_chunks(
        http,
        "chat/completions",
        {"model": "m", "messages": MESSAGES, "stream_options": {"include_usage": True}},
    )
    for chunk in chunks:
        contracts.validate("CreateChatCompletionStreamResponse", chunk)
    *content, usage_chunk = chunks
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in content) == REPLY
    assert len(content) == len(REPLY.split()) + 1  # one per word, then finish_reason
    assert content[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["usage"] is None for c in content)
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] == PROMPT_WORDS
    assert usage_chunk["usage"]["completion_tokens"] == 4
    assert upstream.requests[-1].json["stream_options"] == {"include_usage": True}


async def test_chat_stream_without_include_usage_has_no_usage(http: aiohttp.ClientSession) -> None:
    chunks = await stream_chunks(http, "chat/completions", {"model": "m", "messages": MESSAGES})
    assert all("usage" not in c and c["choices"] for c in chunks)


async def test_stream_chunks_are_flushed_one_by_one(http: aiohttp.ClientSession) -> None:
    """slowstream: the first chunk arrives long before the last (nothing is buffered)."""
    body = {"model": "slowstream-100", "messages": MESSAGES, "stream": True}
    start = time.monotonic()
    arrivals: list[float] = []
    async with http.post("chat/completions", json=body) as resp:
        async for line in resp.content:
            if line.startswith(b"data: "):
                arrivals.append(time.monotonic() - start)
    assert arrivals[0] >= 0.1  # the first chunk waited its 100 ms; no upper bound: a loaded machine is slow
    assert arrivals[-1] - arrivals[0] >= 0.4  # 5 more chunks, 100 ms apart


# ------------------------------------------------------------------ vendor usage quirks


@needs_contract
async def test_no_usage(http: aiohttp.ClientSession) -> None:
    async with http.post("chat/completions", json={"model": "no-usage", "messages": MESSAGES}) as resp:
        assert "usage" not in await resp.json()
    chunks = await stream_chunks(
        http,
        "chat/completions",
        {"model": "no-usage", "messages": MESSAGES, "stream_options": {"include_usage": True}},
    )
    assert all("usage" not in c and c["choices"] for c in chunks)


@needs_contract
async def test_cumulative_usage(http: aiohttp.ClientSession) -> None:
    chunks = await stream_chunks(http, "chat/completions", {"model": "cumulative-usage", "messages": MESSAGES})
    for chunk in chunks:
        contracts.validate("CreateChatCompletionStreamResponse", chunk)
    assert [c["usage"]["completion_tokens"] for c in chunks] == [1, 2, 3, 4]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"][0]["delta"]["content"] == " world"


@needs_contract
async def test_usage_in_last(http: aiohttp.ClientSession) -> None:
    chunks = await stream_chunks(http, "chat/completions", {"model": "usage-in-last", "messages": MESSAGES})
    for chunk in chunks:
        contracts.validate("CreateChatCompletionStreamResponse", chunk)
    assert all("usage" not in c for c in chunks[:-1])
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["total_tokens"] == PROMPT_WORDS + 4


# ------------------------------------------------------------------------- failures


@needs_contract
@pytest.mark.parametrize("status", [400, 401, 429, 500, 503])
async def test_fail_statuses(http: aiohttp.ClientSession, status: int) -> None:
    async with http.post("chat/completions", json={"model": f"fail-{status}", "messages": MESSAGES}) as resp:
        assert resp.status == status
        contracts.validate("ErrorResponse", await resp.json())
        assert (resp.headers.get("Retry-After") == "1") is (status == 429)


async def test_slow_delays_headers(http: aiohttp.ClientSession) -> None:
    start = time.monotonic()
    async with http.post("chat/completions", json={"model": "slow-200", "messages": MESSAGES}) as resp:
        assert resp.status == 200
        assert time.monotonic() - start >= 0.2


async def test_malformed(http: aiohttp.ClientSession) -> None:
    async with http.post("chat/completions", json={"model": "malformed", "messages": MESSAGES}) as resp:
        assert resp.status == 200 and resp.content_type == "application/json"
        with pytest.raises(ValueError):
            json.loads(await resp.read())
    async with http.post("chat/completions", json={"model": "malformed", "messages": MESSAGES, "stream": True}) as resp:
        events = sse_events(await resp.read())
    json.loads(events[0])
    with pytest.raises(ValueError):
        json.loads(events[1])


async def test_cut_stream_closes_without_done(http: aiohttp.ClientSession) -> None:
    received: list[bytes] = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(
            "chat/completions", json={"model": "cut-stream", "messages": MESSAGES, "stream": True}
        ) as resp:
            async for line in resp.content:
                if line.startswith(b"data: "):
                    received.append(line)
    assert len(received) == 2 and b"[DONE]" not in b"".join(received)


async def test_hang_stream_records_client_disconnect(http: aiohttp.ClientSession, upstream: FakeUpstream) -> None:
    body = {"model": "hang-stream", "messages": MESSAGES, "stream": True}
    async with http.post("chat/completions", json=body) as resp:
        first = await asyncio.wait_for(resp.content.readline(), 2)
        assert first.startswith(b"data: {")
        resp.close()  # the client goes away mid-stream
    assert await asyncio.to_thread(upstream.disconnects.wait_for, 1, 5.0)


def test_api_key_is_enforced_when_configured() -> None:
    import urllib.error
    import urllib.request

    with FakeUpstream(api_key="sk-vendor") as server:
        req = urllib.request.Request(server.base_url + "/models", headers={"Authorization": "Bearer nope"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=5)
        info.value.close()
        assert info.value.code == 401
        req = urllib.request.Request(server.base_url + "/models", headers={"Authorization": "Bearer sk-vendor"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200


# -------------------------------------------------------------- other endpoints


@needs_contract
async def test_completions(http: aiohttp.ClientSession) -> None:
    async with http.post("completions", json={"model": "m", "prompt": "say this"}) as resp:
        body = await resp.json()
    contracts.validate("CreateCompletionResponse", body)
    assert body["choices"][0]["text"] == "echo: say this"
    assert body["usage"]["prompt_tokens"] == 2
    chunks = await stream_chunks(
        http, "completions", {"model": "m", "prompt": "say this", "stream_options": {"include_usage": True}}
    )
    for chunk in chunks:
        contracts.validate("CreateCompletionStreamResponse", chunk)  # an erratum, see tests/contracts.py
    assert "".join(c["choices"][0]["text"] for c in chunks[:-1]) == "echo: say this"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


@needs_contract
async def test_embeddings(http: aiohttp.ClientSession) -> None:
    async with http.post("embeddings", json={"model": "e", "input": ["one two", "three"]}) as resp:
        body = await resp.json()
    contracts.validate("CreateEmbeddingResponse", body)
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    async with http.post("embeddings", json={"model": "e", "input": "one two"}) as resp:
        single = await resp.json()
    assert single["data"][0]["embedding"] == body["data"][0]["embedding"]  # deterministic


@needs_contract
@pytest.mark.parametrize("response_format", ["url", "b64_json"])
async def test_images(http: aiohttp.ClientSession, response_format: str) -> None:
    async with http.post(
        "images/generations", json={"model": "i", "prompt": "a cat", "response_format": response_format}
    ) as resp:
        body = await resp.json()
    contracts.validate("ImagesResponse", body)
    assert response_format in body["data"][0]


@needs_contract
async def test_models(http: aiohttp.ClientSession) -> None:
    async with http.get("models") as resp:
        contracts.validate("ListModelsResponse", await resp.json())


# ------------------------------------------------------------ the contract helper


@needs_contract
def test_contract_errors_name_the_failing_path() -> None:
    bad = {
        "id": 1,
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "done"}],
    }
    with pytest.raises(contracts.ContractError) as info:
        contracts.validate("CreateChatCompletionResponse", bad)
    text = str(info.value)
    assert "$.id" in text and "$.choices[0].finish_reason" in text and "refusal" in text
    # A pass-through of a vendor that omits refusal/logprobs is tolerated when asked for.
    bad["id"], bad["choices"][0]["finish_reason"] = "x", "stop"
    contracts.validate("CreateChatCompletionResponse", bad, allow_missing=contracts.PASSTHROUGH_OPTIONAL)
