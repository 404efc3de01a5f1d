"""The /v1 data plane as a raw ASGI application placed in front of the control plane.

Why raw: under load, Starlette's middleware stack, router, ``Request`` and ``Response`` objects
cost more per call than the gateway's own work (py-spy). The data plane needs none of it: five
fixed paths, a few headers, a body and one reply. Everything else (``/api/v1``, the console,
health and metrics) goes on to the Starlette application unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from modelgate.errors import openai_error_body

__all__ = ["ASGIApp", "DataPlane", "Reply", "json_reply"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("modelgate")

_JSON_CT = (b"content-type", b"application/json")
_POST_ROUTES = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/images/generations": "images",
}
_MODELS = "/v1/models"


class Reply:
    """A complete response: status, raw header pairs and one body (content-length set)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def json_reply(status: int, body: bytes, request_id: str, extra: dict[str, str] | None = None) -> Reply:
    headers = [_JSON_CT, (b"content-length", str(len(body)).encode()), (b"x-request-id", request_id.encode())]
    if extra:
        headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    return Reply(status, headers, body)


class DataPlane:
    """Routes ``/v1/*`` to the gateway and everything else to ``control`` (the Starlette app).

    ``state`` is the control application's, so ``app.state.services`` works on either.
    """

    def __init__(self, control: Any, gateway: Any) -> None:
        self.control = control
        self.gateway = gateway
        self.state = control.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (scope["path"].startswith("/v1/") or scope["path"] == "/v1"):
            await self.control(scope, receive, send)
            return
        try:
            reply = await self._route(scope, receive)
        except Exception:
            # a bug of ours: logged with its trace here, never shown to the client
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            body = openai_error_body("The gateway hit an internal error.", "server_error", None, "internal_error")
            reply = json_reply(500, body, self.gateway.request_id())
        # a reply handles its own failures once started (a stream reports them in-band)
        await reply(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive) -> Any:
        path, method = scope["path"], scope["method"]
        route = _POST_ROUTES.get(path)
        if route is not None:
            if method == "POST":
                return await self.gateway.invoke(scope["headers"], receive, route)
            return _not_allowed(self.gateway.request_id(), method, path, "POST")
        if path == _MODELS:
            if method in ("GET", "HEAD"):
                return self.gateway.list_models(scope["headers"])
            return _not_allowed(self.gateway.request_id(), method, path, "GET")
        body = openai_error_body(f"Unknown request URL: {method} {path}.", "invalid_request_error", None,
                                 "unknown_url")  # fmt: skip
        return json_reply(404, body, self.gateway.request_id())


def _not_allowed(request_id: str, method: str, path: str, allow: str) -> Reply:
    body = openai_error_body(f"{method} is not allowed on {path}.", "invalid_request_error", None,
                             "method_not_allowed")  # fmt: skip
    return json_reply(405, body, request_id, {"allow": allow})
