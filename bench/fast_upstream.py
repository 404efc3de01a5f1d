"""A minimal, fast fake OpenAI upstream for the benchmark (not for tests: see tests/fakes/).

Why not tests/fakes/upstream.py: the benchmark measures what a proxy adds, so the upstream
must cost next to nothing. This one is an asyncio Protocol on uvloop with httptools'
C parser, HTTP/1.1 keep-alive, and answers with response bytes built once at import:

* a body containing ``"stream": true`` gets a short SSE stream as real vendors send it
  (Transfer-Encoding: chunked, one HTTP chunk per event): 5 content chunks, a
  finish_reason chunk, a usage chunk with ``choices: []``, then ``data: [DONE]``;
* any other request gets a fixed chat.completion with ``usage``.

    python bench/fast_upstream.py --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
from typing import Any, cast

import httptools
import uvloop

STREAM_RE = re.compile(rb'"stream"\s*:\s*true')
CREATED = 1_700_000_000
USAGE = {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}


def _completion() -> bytes:
    message = {"role": "assistant", "content": "Hello there, how are you?", "refusal": None}
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": CREATED,
            "model": "fake-model",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
            "usage": USAGE,
        },
        separators=(",", ":"),
    ).encode()


def _stream_events() -> list[bytes]:
    base: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "fake-model",
    }

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    words = ["Hello", " there,", " how", " are", " you?"]
    chunks = [{**base, "choices": choice({"role": "assistant", "content": words[0]})}]
    chunks += [{**base, "choices": choice({"content": w})} for w in words[1:]]
    chunks.append({**base, "choices": choice({}, "stop")})
    chunks.append({**base, "choices": [], "usage": USAGE})
    events = [b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n" for c in chunks]
    return [*events, b"data: [DONE]\n\n"]


def _http_response(body: bytes, content_type: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: keep-alive\r\n\r\n"
        + body
    )


def _http_stream(events: list[bytes]) -> bytes:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
    )
    chunks = b"".join(f"{len(e):x}\r\n".encode() + e + b"\r\n" for e in events)
    return head + chunks + b"0\r\n\r\n"


COMPLETION_RESPONSE = _http_response(_completion(), b"application/json")
STREAM_RESPONSE = _http_stream(_stream_events())
MODELS_RESPONSE = _http_response(
    b'{"object":"list","data":[{"id":"fake-model","object":"model","created":1700000000,"owned_by":"bench"}]}',
    b"application/json",
)


class FastUpstream(asyncio.Protocol):
    """One connection: parse requests with httptools, answer each with prebuilt bytes."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.body: list[bytes] = []
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.body = []
        self.url = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.transport is None:
            return
        if self.parser.get_method() == b"GET" and self.url.endswith(b"/models"):
            response = MODELS_RESPONSE
        elif STREAM_RE.search(b"".join(self.body)):
            response = STREAM_RESPONSE
        else:
            response = COMPLETION_RESPONSE
        self.transport.write(response)
        if not self.parser.should_keep_alive():
            self.transport.close()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FastUpstream, host, port, backlog=1024, reuse_address=True)
    print(f"fast upstream on http://{host}:{port}/v1", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
