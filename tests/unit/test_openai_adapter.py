"""The OpenAI-compatible adapter as a pure translator: request preparation, response rewriting,
usage parsing, and the SSE relay fed the way a network feeds it (events split anywhere).
"""

from __future__ import annotations

import json
import random
from typing import Any

import orjson
import pytest

from modelgate.adapters.base import Usage
from modelgate.adapters.openai_compat import OpenAICompatAdapter, OpenAIStreamRelay, parse_usage
from modelgate.runtime.snapshot import EndpointEntry

NAME = "team-llm"


def endpoint(**overrides: Any) -> EndpointEntry:
    values: dict[str, Any] = dict(
        id=7,
        tenant_id=1,
        name=NAME,
        category="llm",
        api_family="openai",
        base_url="http://vendor.test/v1",
        model_version="vendor-model-1",
        upstream_secret="sk-vendor",
        rpm=None,
        tpm=None,
        quota_tokens=None,
        quota_cycle="monthly",
        price_input_per_m=0.0,
        price_output_per_m=0.0,
        connect_timeout=10.0,
        read_timeout=300.0,
        default_output_tokens=256,
        created_at=1_700_000_000,
        upstream_headers={"Authorization": "Bearer sk-vendor"},
    )
    values.update(overrides)
    return EndpointEntry(**values)


def usage_dict(prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def chunk(
    content: str | None = None,
    finish: str | None = None,
    usage: Any = "absent",
    choices: bool = True,
    role: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "vendor-model-1",
    }
    if choices:
        delta: dict[str, Any] = {} if content is None else {"content": content}
        if role:
            delta["role"] = "assistant"
        out["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    else:
        out["choices"] = []
    if usage != "absent":
        out["usage"] = usage
    return out


def sse(events: list[Any], sep: bytes = b"\n\n") -> bytes:
    out = b""
    for e in events:
        payload = e if isinstance(e, bytes) else json.dumps(e).encode()
        out += b"data: " + payload + sep
    return out


# An OpenAI stream asked for usage by the gateway: content, finish, usage-only chunk, [DONE].
OPENAI_STREAM = sse(
    [
        chunk("Hello", role=True),
        chunk(" wide"),
        chunk(" world"),
        chunk(finish="stop"),
        chunk(choices=False, usage=usage_dict(9, 3, cached=4, reasoning=1)),
        b"[DONE]",
    ]
)


def relay_all(data: bytes, cuts: list[int], wants_usage: bool = False) -> tuple[bytes, OpenAIStreamRelay]:
    relay = OpenAIStreamRelay(NAME, wants_usage)
    out, prev = b"", 0
    for cut in [*cuts, len(data)]:
        out += relay.feed(data[prev:cut])
        prev = cut
    out += relay.finish()
    return out, relay


def events_of(out: bytes) -> list[Any]:
    assert out.endswith(b"\n\n")
    payloads = [block for block in out.split(b"\n\n") if block]
    assert all(p.startswith(b"data: ") for p in payloads), payloads
    return [p[6:].decode() if p == b"data: [DONE]" else json.loads(p[6:]) for p in payloads]


# ----------------------------------------------------------------------------- the relay


def test_relay_renames_model_and_hides_unrequested_usage() -> None:
    out, relay = relay_all(OPENAI_STREAM, [])
    events = events_of(out)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len(chunks) == 4, "the usage-only chunk the client did not ask for is dropped"
    assert {c["model"] for c in chunks} == {NAME}
    assert all("usage" not in c for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello wide world"
    assert relay.usage == Usage(9, 3, 4, 1)
    assert relay.output_chars == len("Hello wide world")
    assert relay.first_content_seen and relay.error is None


def test_relay_passes_usage_when_requested() -> None:
    out, relay = relay_all(OPENAI_STREAM, [], wants_usage=True)
    chunks = events_of(out)[:-1]
    assert len(chunks) == 5
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 9
    assert chunks[-1]["model"] == NAME
    assert relay.usage == Usage(9, 3, 4, 1)


def test_relay_output_does_not_depend_on_where_the_network_split_the_bytes() -> None:
    reference, _ = relay_all(OPENAI_STREAM, [])
    for cut in range(1, len(OPENAI_STREAM)):
        out, relay = relay_all(OPENAI_STREAM, [cut])
        assert out == reference, f"split at byte {cut}"
        assert relay.usage == Usage(9, 3, 4, 1)
    byte_by_byte, _ = relay_all(OPENAI_STREAM, list(range(1, len(OPENAI_STREAM))))
    assert byte_by_byte == reference
    rng = random.Random(2)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(OPENAI_STREAM)), rng.randint(2, 12)))
        assert relay_all(OPENAI_STREAM, cuts)[0] == reference, cuts


def test_relay_handles_crlf_framing_split_anywhere() -> None:
    crlf = OPENAI_STREAM.replace(b"\n\n", b"\r\n\r\n")
    reference, _ = relay_all(OPENAI_STREAM, [])
    for cut in range(1, len(crlf)):
        out, relay = relay_all(crlf, [cut])
        assert out == reference, f"split at byte {cut} ({crlf[cut - 1 : cut + 1]!r})"
        assert relay.usage == Usage(9, 3, 4, 1)


def test_relay_emits_each_event_as_soon_as_it_is_complete() -> None:
    relay = OpenAIStreamRelay(NAME, False)
    first = sse([chunk("Hi", role=True)])
    assert relay.feed(first[:-1]) == b"", "an event without its blank line is held back"
    out = relay.feed(first[-1:])
    assert events_of(out)[0]["choices"][0]["delta"]["content"] == "Hi"
    assert relay.first_content_seen


def test_relay_flushes_a_last_event_without_blank_line() -> None:
    out, _ = relay_all(sse([chunk("tail", role=True)]) + b"data: [DONE]", [])
    assert events_of(out)[-1] == "[DONE]"


def test_relay_drops_comments_and_keeps_data_with_or_without_space() -> None:
    raw = b": keep-alive\n\n" + b"data:" + json.dumps(chunk("x", role=True)).encode() + b"\n\n" + b"data: [DONE]\n\n"
    events = events_of(relay_all(raw, [])[0])
    assert events[0]["choices"][0]["delta"]["content"] == "x" and events[-1] == "[DONE]"
    assert len(events) == 2


def test_relay_joins_multi_line_data_fields() -> None:
    """SSE allows one event's data over several ``data:`` lines, joined with newlines."""
    body = json.dumps(chunk("split", role=True), indent=1).encode()
    raw = b"".join(b"data: " + line + b"\n" for line in body.split(b"\n")) + b"\n" + b"data: [DONE]\n\n"
    out, relay = relay_all(raw, [])
    assert relay.error is None
    assert events_of(out)[0]["choices"][0]["delta"]["content"] == "split"


def test_relay_cumulative_usage_keeps_the_last() -> None:
    """Vendors that put a running total on every chunk (and the final one on the last content
    chunk, without a usage-only chunk)."""
    raw = sse(
        [
            chunk("a", role=True, usage=usage_dict(5, 1)),
            chunk(" b", usage=usage_dict(5, 2)),
            chunk(" c", finish="stop", usage=usage_dict(5, 3)),
            b"[DONE]",
        ]
    )
    out, relay = relay_all(raw, [])
    chunks = events_of(out)[:-1]
    assert len(chunks) == 3, "content chunks carrying usage are kept, without their usage"
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert relay.usage == Usage(5, 3)
    wanted, relay = relay_all(raw, [], wants_usage=True)
    assert [c["usage"]["completion_tokens"] for c in events_of(wanted)[:-1]] == [1, 2, 3]


def test_relay_null_usage_chunks_are_not_usage() -> None:
    """OpenAI sends ``usage: null`` on every chunk but the last when include_usage is on."""
    raw = sse(
        [
            chunk("a", role=True, usage=None),
            chunk(finish="stop", usage=None),
            chunk(choices=False, usage=usage_dict(2, 1)),
            b"[DONE]",
        ]
    )
    out, relay = relay_all(raw, [], wants_usage=True)
    assert [c.get("usage") for c in events_of(out)[:-1]] == [None, None, usage_dict(2, 1)]
    assert relay.usage == Usage(2, 1)
    out, relay = relay_all(raw, [], wants_usage=False)
    assert all("usage" not in c for c in events_of(out)[:-1])
    assert relay.usage == Usage(2, 1)


def test_relay_stops_at_a_malformed_chunk() -> None:
    raw = sse([chunk("ok", role=True)]) + b"data: {not json\n\n" + sse([chunk(" more"), b"[DONE]"])
    out, relay = relay_all(raw, [])
    assert relay.error is not None and "malformed" in relay.error
    events = events_of(out)
    assert len(events) == 1 and events[0]["choices"][0]["delta"]["content"] == "ok"
    assert relay.feed(sse([chunk(" later")])) == b"", "nothing is relayed after the error"


@pytest.mark.parametrize("payload", [b"[1, 2]", b'"text"', b"42"])
def test_relay_rejects_non_object_chunks(payload: bytes) -> None:
    out, relay = relay_all(b"data: " + payload + b"\n\n", [])
    assert relay.error is not None and out == b""


def test_relay_forwards_an_upstream_error_event_and_stops() -> None:
    err = {"error": {"message": "overloaded", "type": "server_error", "param": None, "code": None}}
    out, relay = relay_all(sse([chunk("a", role=True), err, chunk(" b")]), [])
    assert relay.error == "overloaded"
    events = events_of(out)
    assert events[-1] == err and len(events) == 2


@pytest.mark.parametrize("err", [{"error": "overloaded"}, {"error": None}, {"error": {"code": 500}}])
def test_relay_odd_upstream_error_events(err: dict[str, Any]) -> None:
    """Vendors' error events are not all OpenAI-shaped; each still ends the relay with an error."""
    out, relay = relay_all(sse([chunk("a", role=True), err]), [])
    assert relay.error
    if isinstance(err["error"], str):
        assert relay.error == "overloaded"
    assert events_of(out)[-1] == err


def test_relay_completions_chunks() -> None:
    text_chunk = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "v",
        "choices": [{"index": 0, "text": "hello", "logprobs": None, "finish_reason": None}],
    }
    out, relay = relay_all(sse([text_chunk, b"[DONE]"]), [])
    assert events_of(out)[0]["model"] == NAME
    assert relay.output_chars == 5 and relay.first_content_seen


# ------------------------------------------------------------------------- parse_usage


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (usage_dict(10, 5, cached=3, reasoning=2), Usage(10, 5, 3, 2)),
        (
            {
                "input_tokens": 7,
                "output_tokens": 100,
                "total_tokens": 107,
                "input_tokens_details": {"cached_tokens": 1},
                "output_tokens_details": {"reasoning_tokens": 4},
            },
            Usage(7, 100, 1, 4),
        ),
        ({"prompt_tokens": 4, "total_tokens": 4}, Usage(4, 0)),  # embeddings
        ({"total_tokens": 12}, Usage(12, 0)),  # only a total: count it as input
        ({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}, Usage()),  # reported zero is not absent
        (
            {
                "prompt_tokens": 3,
                "completion_tokens": 2,
                "prompt_tokens_details": None,
                "completion_tokens_details": None,
            },
            Usage(3, 2),
        ),
        ({"prompt_tokens": "3", "completion_tokens": -2, "total_tokens": 1}, Usage(1, 0)),  # junk types ignored
    ],
)
def test_parse_usage(raw: dict[str, Any], expected: Usage) -> None:
    assert parse_usage(raw) == expected


@pytest.mark.parametrize("raw", [None, "12", [], {}, {"foo": 1}])
def test_parse_usage_absent(raw: Any) -> None:
    assert parse_usage(raw) is None


# -------------------------------------------------------------- prepare / rewrite / errors


def test_prepare_non_stream_replaces_only_the_model() -> None:
    body = {"model": NAME, "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2, "user": "u1"}
    prepared = OpenAICompatAdapter().prepare("chat", dict(body), endpoint())
    assert prepared.url == "http://vendor.test/v1/chat/completions"
    assert orjson.loads(prepared.body) == {**body, "model": "vendor-model-1"}
    assert not prepared.is_stream and not prepared.client_wants_usage


@pytest.mark.parametrize(
    ("options", "wants"),
    [
        (None, False),
        ({"include_usage": False}, False),
        ({"include_usage": True}, True),
        ({"include_obfuscation": False}, False),
        ("garbage", False),
    ],
)
def test_prepare_stream_always_asks_for_usage(options: Any, wants: bool) -> None:
    body: dict[str, Any] = {"model": NAME, "prompt": "x", "stream": True}
    if options is not None:
        body["stream_options"] = options
    prepared = OpenAICompatAdapter().prepare("completions", body, endpoint())
    sent = orjson.loads(prepared.body)
    assert prepared.url.endswith("/v1/completions")
    assert prepared.is_stream and prepared.client_wants_usage is wants
    assert sent["stream_options"]["include_usage"] is True
    if isinstance(options, dict):
        assert {k: v for k, v in sent["stream_options"].items() if k != "include_usage"} == {
            k: v for k, v in options.items() if k != "include_usage"
        }, "the client's other stream options are kept"


@pytest.mark.parametrize(("route", "path"), [("embeddings", "/embeddings"), ("images", "/images/generations")])
def test_prepare_routes_without_streams(route: str, path: str) -> None:
    prepared = OpenAICompatAdapter().prepare(route, {"model": NAME, "input": "x", "stream": True}, endpoint())
    assert prepared.url == "http://vendor.test/v1" + path
    assert not prepared.is_stream
    assert "stream_options" not in orjson.loads(prepared.body)


def test_rewrite_response() -> None:
    upstream = {
        "id": "c",
        "object": "chat.completion",
        "model": "vendor-model-1",
        "system_fingerprint": "fp",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "four chars"}, "finish_reason": "stop"}],
        "usage": usage_dict(3, 2, cached=1),
    }
    content, usage, chars = OpenAICompatAdapter().rewrite_response(json.dumps(upstream).encode(), endpoint())
    assert orjson.loads(content) == {**upstream, "model": NAME}
    assert usage == Usage(3, 2, 1, 0)
    assert chars == len("four chars")


def test_rewrite_response_without_usage_or_model() -> None:
    images = {"created": 1, "data": [{"url": "http://x/1.png"}]}
    content, usage, chars = OpenAICompatAdapter().rewrite_response(json.dumps(images).encode(), endpoint())
    assert orjson.loads(content) == images and usage is None and chars == 0


@pytest.mark.parametrize("raw", [b"<html>oops", b"[1,2]", b"", b'{"a": '])
def test_rewrite_response_rejects_malformed(raw: bytes) -> None:
    with pytest.raises(ValueError):
        OpenAICompatAdapter().rewrite_response(raw, endpoint())


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"error": {"message": "bad temperature", "type": "invalid_request_error"}}', "bad temperature"),
        (b'{"error": "quota gone"}', "quota gone"),
        (b'{"message": "flat shape"}', "flat shape"),
        (b"<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>"),
        (b"", "no error text"),
    ],
)
def test_error_message(raw: bytes, message: str) -> None:
    assert OpenAICompatAdapter().error_message(raw) == message
