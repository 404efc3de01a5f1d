"""The data plane, top to bottom: authenticate → resolve → authorize → forward → settle → record.

Reads the snapshot once per request and never touches the database. Every request, admitted
or refused, leaves exactly one usage event in the recorder's buffer.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

import orjson

from modelgate.adapters import ADAPTERS
from modelgate.adapters.base import Usage
from modelgate.errors import BadRequest, GatewayError, NotFound, PayloadTooLarge, PermissionDenied, UpstreamError
from modelgate.gateway.admission import admit, plan_for
from modelgate.gateway.asgi import Receive, Reply, json_reply
from modelgate.gateway.auth import authenticate
from modelgate.gateway.forward import UpstreamClient, upstream_failure
from modelgate.gateway.streaming import StreamOutcome, StreamResponse
from modelgate.gateway.tokens import estimate_input_tokens
from modelgate.limits import Limiter, Plan
from modelgate.rbac import Permission, has_permission
from modelgate.runtime.refresher import RuntimeState
from modelgate.runtime.snapshot import EndpointEntry, KeyEntry, Snapshot
from modelgate.usage.events import UsageEvent
from modelgate.usage.recorder import UsageRecorder

__all__ = ["ROUTE_CATEGORY", "Gateway", "authorize", "resolve_endpoint"]

ROUTE_CATEGORY = {"chat": "llm", "completions": "llm", "embeddings": "embedding", "images": "image"}
_ROUTE_PATH = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
    "images": "/v1/images/generations",
}
# the request headers the data plane reads (ASGI delivers names in lower case)
_WANTED = frozenset({b"authorization", b"api-key", b"x-api-key", b"content-length", b"x-modelgate-channel"})
# Channels a client may declare with ``x-modelgate-channel`` (the SQL functions send ``sql``);
# anything else is ignored so a client cannot forge internal channels such as ``test``.
CLIENT_CHANNELS = frozenset({"api", "sql"})
_STREAM_HEADERS = ((b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"))
_PROBES: dict[str, tuple[str, dict[str, Any]]] = {
    "llm": ("chat", {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}),
    "embedding": ("embeddings", {"input": "ping"}),
    "image": ("images", {"prompt": "a single dot", "n": 1, "size": "256x256"}),
}


def find_endpoint(snapshot: Snapshot, tenant_id: int, model: Any) -> EndpointEntry:
    """The endpoint a request's ``model`` names (``NAME`` or ``endpoint:NAME``) in the tenant."""
    if not isinstance(model, str) or not model:
        raise BadRequest("You must provide a model parameter naming an endpoint.", param="model",
                         code="missing_model")  # fmt: skip
    name = model[9:] if model.startswith("endpoint:") else model
    endpoint = snapshot.endpoints.get(tenant_id, {}).get(name)
    if endpoint is None:
        raise NotFound(f"The endpoint '{name}' does not exist or you do not have access to it.", param="model")
    return endpoint


def check_category(endpoint: EndpointEntry, route: str) -> None:
    wanted = ROUTE_CATEGORY[route]
    if endpoint.category != wanted:
        raise BadRequest(
            f"Endpoint '{endpoint.name}' is a '{endpoint.category}' endpoint; {_ROUTE_PATH[route]} serves "
            f"'{wanted}' endpoints only.",
            param="model",
            code="model_not_supported",
        )


def resolve_endpoint(snapshot: Snapshot, tenant_id: int, model: Any, route: str) -> EndpointEntry:
    endpoint = find_endpoint(snapshot, tenant_id, model)
    check_category(endpoint, route)
    return endpoint


def may_invoke(snapshot: Snapshot, user_id: int, endpoint: EndpointEntry) -> bool:
    return has_permission(
        Permission.ENDPOINT_INVOKE,
        snapshot.tenant_roles.get(user_id, ()),
        snapshot.grants.get((user_id, endpoint.id)),
    )


def authorize(snapshot: Snapshot, key: KeyEntry, endpoint: EndpointEntry) -> None:
    if not may_invoke(snapshot, key.owner_id, endpoint):
        raise PermissionDenied(f"You do not have permission to invoke endpoint '{endpoint.name}'.")


class Gateway:
    def __init__(
        self, runtime: RuntimeState, recorder: UsageRecorder, client: UpstreamClient, limiter: Limiter, max_body: int
    ) -> None:
        self.runtime = runtime
        self.recorder = recorder
        self.client = client
        self.limiter = limiter
        self.max_body = max_body
        self._rid_prefix = "req_" + os.urandom(6).hex()
        self._rid_counter = itertools.count(1)

    def request_id(self) -> str:
        return f"{self._rid_prefix}{next(self._rid_counter):010x}"

    async def _read_json(self, receive: Receive, length: bytes | None) -> dict[str, Any]:
        if length is not None and length.isdigit() and int(length) > self.max_body:
            raise PayloadTooLarge(f"The request body exceeds the limit of {self.max_body} bytes.")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away before sending it all
                raise BadRequest("The request body was not received completely.", code="incomplete_body",
                                 error_type="client_disconnected")  # fmt: skip
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise PayloadTooLarge(f"The request body exceeds the limit of {self.max_body} bytes.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"The request body is not valid JSON: {exc.msg} at position {exc.pos}.",
                             code="invalid_json") from None  # fmt: skip
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.", code="invalid_json")
        return body

    async def invoke(self, raw_headers: list[tuple[bytes, bytes]], receive: Receive, route: str,
                     channel: str = "api") -> Any:  # fmt: skip
        """The ASGI reply (a ``Reply`` or a ``StreamResponse``) for one data-plane call."""
        started = time.perf_counter()
        rid = self.request_id()
        headers = {k: v for k, v in raw_headers if k in _WANTED}
        declared = headers.get(b"x-modelgate-channel")
        if declared is not None:
            name = declared.decode("latin-1")
            channel = name if name in CLIENT_CHANNELS else channel
        ev = UsageEvent(ts=time.time(), request_id=rid, route=route, status_code=200, channel=channel)
        snap = self.runtime.snapshot
        endpoint: EndpointEntry | None = None
        body: dict[str, Any] | None = None
        try:
            key = authenticate(snap, headers)
            ev.tenant_id, ev.user_id, ev.api_key_id = key.tenant_id, key.owner_id, key.id
            body = await self._read_json(receive, headers.get(b"content-length"))
            endpoint = find_endpoint(snap, key.tenant_id, body.get("model"))
            ev.endpoint_id = endpoint.id  # a call for the wrong route still counts against the endpoint
            check_category(endpoint, route)
            authorize(snap, key, endpoint)
            return await self._dispatch(ev, endpoint, route, body, started, snap, key)
        except GatewayError as exc:
            ev.status_code, ev.error_type = exc.status, exc.error_type
            ev.latency_ms = (time.perf_counter() - started) * 1000.0
            if endpoint is not None and body is not None and ev.upstream_status is not None:
                # the upstream was called and may bill the prompt: count what we know
                ev.input_tokens, ev.is_estimated = estimate_input_tokens(body), True
            self._finish(ev, exc.plan)
            return error_response(exc, rid)

    async def _dispatch(
        self, ev: UsageEvent, endpoint: EndpointEntry, route: str, body: dict[str, Any], started: float,
        snap: Snapshot, key: KeyEntry | None,
    ) -> Any:  # fmt: skip
        """Admit, forward and settle; errors propagate as GatewayError (carrying the plan to settle)."""
        adapter = ADAPTERS[endpoint.api_family]
        estimate_in = estimate_input_tokens(body)
        plan = plan_for(snap, key, endpoint.tenant_id, endpoint, estimate_in, body, route, ev.ts)
        headers: dict[str, str] = {}
        if plan is not None:
            headers = await admit(self.limiter, plan, endpoint, snap)
        try:
            prepared = adapter.prepare(route, body, endpoint)
            ev.is_stream = prepared.is_stream
            upstream = await self.client.send(endpoint, prepared.url, prepared.body)
            ev.upstream_status = upstream.status
            if upstream.status >= 400:
                raw = await self.client.read(endpoint, upstream)
                raise upstream_failure(endpoint, upstream.status, adapter.error_message(raw),
                                       upstream.headers.get("retry-after"))  # fmt: skip
            if prepared.is_stream and upstream.content_type == "text/event-stream":
                relay = adapter.stream_relay(endpoint, prepared.client_wants_usage)

                def done(outcome: StreamOutcome) -> None:
                    ev.error_type = outcome.error_type
                    if outcome.first_byte_at is not None:
                        ev.ttft_ms = (outcome.first_byte_at - started) * 1000.0
                    self._settle(ev, endpoint, relay.usage, estimate_in, relay.output_chars)
                    ev.latency_ms = (time.perf_counter() - started) * 1000.0
                    self._finish(ev, plan)

                stream_headers = [(b"x-request-id", ev.request_id.encode()), *_STREAM_HEADERS]
                stream_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
                return StreamResponse(upstream, relay, stream_headers, done)
            raw = await self.client.read(endpoint, upstream)
            try:
                content, usage, out_chars = adapter.rewrite_response(raw, endpoint)
            except ValueError:
                raise UpstreamError(f"The upstream of endpoint '{endpoint.name}' returned a malformed response.",
                                    code="upstream_malformed_response") from None  # fmt: skip
        except GatewayError as exc:
            exc.plan = plan
            exc.headers = {**headers, **exc.headers}
            raise
        self._settle(ev, endpoint, usage, estimate_in, out_chars)
        ev.latency_ms = (time.perf_counter() - started) * 1000.0
        self._finish(ev, plan)
        return json_reply(200, content, ev.request_id, headers)

    def _finish(self, ev: UsageEvent, plan: Plan | None) -> None:
        """Settle the reservation with the tokens recorded for the call, then record the event."""
        if plan is not None:
            self.limiter.settle(plan, ev.input_tokens + ev.output_tokens)
        self.recorder.record(ev)

    async def test_connection(self, tenant_id: int, user_id: int, name: str) -> dict[str, Any]:
        """A real minimal call (one output token, a one-word embedding), recorded on channel ``test``."""
        started = time.perf_counter()
        ev = UsageEvent(ts=time.time(), request_id=self.request_id(), route="test", status_code=200, channel="test",
                        tenant_id=tenant_id, user_id=user_id)  # fmt: skip
        endpoint = self.runtime.snapshot.endpoints.get(tenant_id, {}).get(name)
        if endpoint is None:
            raise NotFound(f"Endpoint '{name}' is not active in this gateway.", code="endpoint_not_found")
        ev.endpoint_id = endpoint.id
        route, body = _PROBES[endpoint.category]
        ev.route = route
        snap = self.runtime.snapshot
        try:
            await self._dispatch(ev, endpoint, route, {"model": endpoint.name, **body}, started, snap, None)
        except GatewayError as exc:
            ev.status_code, ev.error_type = exc.status, exc.error_type
            ev.latency_ms = (time.perf_counter() - started) * 1000.0
            self._finish(ev, exc.plan)
            return {"success": False, "latency_ms": round(ev.latency_ms, 1), "upstream_status": ev.upstream_status,
                    "error": exc.message, "request_id": ev.request_id}  # fmt: skip
        return {"success": True, "latency_ms": round(ev.latency_ms, 1), "upstream_status": ev.upstream_status,
                "error": None, "request_id": ev.request_id}  # fmt: skip

    @staticmethod
    def _settle(ev: UsageEvent, ep: EndpointEntry, usage: Usage | None, estimate_in: int, out_chars: int) -> None:
        if usage is None:
            usage = Usage(estimate_in, (out_chars + 3) // 4)
            ev.is_estimated = True
        ev.input_tokens, ev.output_tokens = usage.input_tokens, usage.output_tokens
        ev.cached_tokens, ev.reasoning_tokens = usage.cached_tokens, usage.reasoning_tokens
        ev.cost = (usage.input_tokens * ep.price_input_per_m + usage.output_tokens * ep.price_output_per_m) / 1e6

    def list_models(self, raw_headers: list[tuple[bytes, bytes]]) -> Reply:
        rid = self.request_id()
        snap = self.runtime.snapshot
        try:
            key = authenticate(snap, {k: v for k, v in raw_headers if k in _WANTED})
        except GatewayError as exc:
            return error_response(exc, rid)
        data = [
            {"id": ep.name, "object": "model", "created": ep.created_at, "owned_by": "modelgate"}
            for ep in snap.endpoints.get(key.tenant_id, {}).values()
            if may_invoke(snap, key.owner_id, ep)
        ]
        return json_reply(200, orjson.dumps({"object": "list", "data": data}), rid)


def error_response(exc: GatewayError, request_id: str) -> Reply:
    return json_reply(exc.status, exc.openai_body(), request_id, exc.headers)
