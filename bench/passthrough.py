"""The thinnest honest Python pass-through proxy: the floor the gateway is measured against.

Why it exists: DESIGN §5 budgets modelgate relative to "a bare pass-through proxy measured
in the same run". This is that proxy, on the same stack as the gateway (uvicorn with
uvloop + httptools, one pooled aiohttp ClientSession), doing only what no proxy can skip:

* check one fixed key in the Authorization header (401 otherwise);
* forward the request body bytes unchanged to the upstream, with the vendor key;
* return the response bytes; event streams are relayed chunk by chunk as they arrive.

No JSON parsing, no model mapping, no usage accounting, no logging.

    python bench/passthrough.py --port 9200 --upstream http://127.0.0.1:9100 --key sk-bench
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

UNAUTHORIZED = (
    b'{"error":{"message":"invalid key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}'
)


class Passthrough:
    """A raw ASGI app: no framework routing or request objects between socket and upstream."""

    def __init__(self, upstream: str, key: str, upstream_key: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.expected = f"Bearer {key}".encode()
        self.upstream_headers = {
            "Authorization": f"Bearer {upstream_key}",
            "Content-Type": "application/json",
        }
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=1024, keepalive_timeout=60)
                self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        auth = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if auth != self.expected:
            await _respond(send, 401, UNAUTHORIZED)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        assert self.session is not None
        url = self.upstream + scope["path"]
        async with self.session.request(scope["method"], url, data=body, headers=self.upstream_headers) as up:
            content_type = up.headers.get("Content-Type", "application/json").encode()
            if content_type.startswith(b"text/event-stream"):
                await send(
                    {
                        "type": "http.response.start",
                        "status": up.status,
                        "headers": [(b"content-type", content_type), (b"cache-control", b"no-cache")],
                    }
                )
                async for chunk in up.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            else:
                await _respond(send, up.status, await up.read(), content_type)


async def _respond(send: Send, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description="Bare pass-through proxy (benchmark floor).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--upstream", required=True, help="upstream origin, e.g. http://127.0.0.1:9100")
    parser.add_argument("--key", default="sk-bench", help="the one client key accepted")
    parser.add_argument("--upstream-key", default="sk-fake")
    args = parser.parse_args()
    app = Passthrough(args.upstream, args.key, args.upstream_key)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        backlog=2048,
    )


if __name__ == "__main__":
    main()
