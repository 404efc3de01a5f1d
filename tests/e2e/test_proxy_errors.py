"""Every way a data-plane call can fail: an OpenAI-shaped error (validated against OpenAI's
``ErrorResponse``) with the status of DESIGN.md §4, an ``x-request-id``, no stack trace, and
one usage event recording the failure with its error type.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest

from tests import admin, contracts
from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess

P = "pe-"
MESSAGES = [{"role": "user", "content": "hello there"}]
ENDPOINTS = {
    # name suffix: (model version the upstream sees, category)
    "ok": ("fake-model", "llm"),
    "emb": ("fake-embedding", "embedding"),
    "fail400": ("fail-400", "llm"),
    "fail401": ("fail-401", "llm"),
    "fail429": ("fail-429", "llm"),
    "fail500": ("fail-500", "llm"),
    "fail503": ("fail-503", "llm"),
    "malformed": ("malformed", "llm"),
    "cut": ("cut-stream", "llm"),
    "hang": ("hang-stream", "llm"),
    "slow": ("slow-8000", "llm"),
}


@dataclass(frozen=True)
class Env:
    gw: GatewayProcess
    up: FakeUpstream
    key: str
    key_id: int
    user_id: int
    tenant_id: int
    endpoints: dict[str, int]

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        hdrs = {"authorization": f"Bearer {key or self.key}", **(headers or {})}
        if content is not None:
            return httpx.post(self.gw.base_url + path, content=content, headers=hdrs, timeout=30)
        return httpx.post(self.gw.base_url + path, json=body, headers=hdrs, timeout=30)

    def chat(self, model: str, **extra: Any) -> httpx.Response:
        return self.post("/v1/chat/completions", {"model": model, "messages": MESSAGES, **extra})

    def sdk(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gw.base_url + "/v1", api_key=key or self.key, max_retries=0)


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
    # the per-endpoint read timeout (the gateway-wide one is 5 s in the harness)
    admin.set_endpoint_timeouts(gateway, ids[P + "slow"], connect=None, read=0.4)
    return Env(gateway, upstream, key["secret"], int(key["id"]), int(key["owner_id"]), admin.tenant_id(gateway), ids)


@pytest.fixture
def sdk(env: Env) -> Iterator[openai.OpenAI]:
    with env.sdk() as client:
        yield client


def assert_openai_error(
    resp: httpx.Response, status: int, *, code: str | None = None, type_: str | None = None
) -> dict[str, Any]:
    """The response is an OpenAI error: status, JSON body valid against ErrorResponse, no trace."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers.get("x-request-id"), "every response carries x-request-id"
    assert "Traceback" not in resp.text and 'File "' not in resp.text
    body = resp.json()
    contracts.validate("ErrorResponse", body)
    err = body["error"]
    assert err["message"]
    if code is not None:
        assert err["code"] == code, err
    if type_ is not None:
        assert err["type"] == type_, err
    return err


def recorded(
    env: Env,
    resp: httpx.Response,
    status: int,
    error_type: str,
    *,
    endpoint: str | None = None,
    authenticated: bool = True,
) -> dict[str, Any]:
    ev = env.gw.usage_for(resp.headers["x-request-id"])
    assert ev["status_code"] == status
    assert ev["error_type"] == error_type
    assert ev["channel"] == "api"
    assert ev["latency_ms"] > 0
    if authenticated:
        assert (ev["tenant_id"], ev["user_id"], ev["api_key_id"]) == (env.tenant_id, env.user_id, env.key_id)
    else:
        assert ev["api_key_id"] is None
    assert ev["endpoint_id"] == (env.endpoints[endpoint] if endpoint else None)
    return ev


# ----------------------------------------------------------------------- authentication


def test_missing_key(env: Env) -> None:
    resp = httpx.post(env.gw.base_url + "/v1/chat/completions", json={"model": P + "ok", "messages": MESSAGES})
    assert_openai_error(resp, 401, code="missing_api_key", type_="authentication_error")
    recorded(env, resp, 401, "auth_failed", authenticated=False)


@pytest.mark.parametrize(
    "bad",
    [
        "sk-not-a-gateway-key",
        "mg-0123456789abcdef-thisisnotthesecretofanykeythisisnotthesecret",
    ],
)
def test_bad_key(env: Env, bad: str) -> None:
    resp = env.post("/v1/chat/completions", {"model": P + "ok", "messages": MESSAGES}, key=bad)
    assert_openai_error(resp, 401, code="invalid_api_key", type_="authentication_error")
    assert bad not in resp.text, "the presented key is never echoed"
    recorded(env, resp, 401, "auth_failed", authenticated=False)


def test_right_key_id_wrong_secret(env: Env) -> None:
    public_id = env.key.split("-")[1]
    forged = f"mg-{public_id}-{'x' * 43}"
    resp = env.post("/v1/chat/completions", {"model": P + "ok", "messages": MESSAGES}, key=forged)
    assert_openai_error(resp, 401, code="invalid_api_key")
    recorded(env, resp, 401, "auth_failed", authenticated=False)


def test_disabled_key(env: Env) -> None:
    key = env.gw.create_key("admin", name=P + "to-disable")
    assert (
        env.post("/v1/chat/completions", {"model": P + "ok", "messages": MESSAGES}, key=key["secret"]).status_code
        == 200
    )
    admin.set_key_status(env.gw, int(key["id"]), "disabled")
    resp = env.post("/v1/chat/completions", {"model": P + "ok", "messages": MESSAGES}, key=key["secret"])
    assert_openai_error(resp, 401, code="api_key_disabled", type_="authentication_error")
    recorded(env, resp, 401, "auth_failed", authenticated=False)
    with env.sdk(key["secret"]) as client, pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_sdk_maps_auth_failure(env: Env) -> None:
    with env.sdk("mg-nope") as client, pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model=P + "ok", messages=MESSAGES)
    assert info.value.status_code == 401


# ----------------------------------------------------------------- resolution, permission


def test_unknown_endpoint(env: Env, sdk: openai.OpenAI) -> None:
    resp = env.chat(P + "does-not-exist")
    err = assert_openai_error(resp, 404, code="model_not_found")
    assert err["param"] == "model"
    recorded(env, resp, 404, "not_found")
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="endpoint:" + P + "does-not-exist", messages=MESSAGES)


def test_another_tenants_endpoint_is_not_found(env: Env, upstream: FakeUpstream) -> None:
    gw = env.gw
    admin.create_tenant(gw, P + "other", admin=P + "other-admin")
    gw.create_endpoint(P + "theirs", upstream.base_url, tenant=P + "other")
    other_key = gw.create_key(P + "other-admin", tenant=P + "other")["secret"]

    resp = env.chat(P + "theirs")
    err = assert_openai_error(resp, 404, code="model_not_found")
    unknown = assert_openai_error(env.chat(P + "never-existed"), 404)
    assert err["message"].replace("theirs", "X") == unknown["message"].replace("never-existed", "X"), (
        "another tenant's endpoint is indistinguishable from a missing one"
    )
    recorded(env, resp, 404, "not_found")
    # the other tenant's own key reaches it, and not ours
    assert env.chat(P + "theirs").status_code == 404
    assert (
        env.post("/v1/chat/completions", {"model": P + "theirs", "messages": MESSAGES}, key=other_key).status_code
        == 200
    )
    assert env.post("/v1/chat/completions", {"model": P + "ok", "messages": MESSAGES}, key=other_key).status_code == 404


def test_user_without_grant(env: Env) -> None:
    gw = env.gw
    uid = admin.create_user(gw, P + "nogrant")
    key = gw.create_key(P + "nogrant")
    resp = env.post("/v1/chat/completions", {"model": P + "ok", "messages": MESSAGES}, key=key["secret"])
    assert_openai_error(resp, 403, code="permission_denied", type_="permission_error")
    ev = gw.usage_for(resp.headers["x-request-id"])
    assert (ev["status_code"], ev["error_type"]) == (403, "permission_denied")
    assert (ev["user_id"], ev["api_key_id"], ev["endpoint_id"]) == (
        uid,
        int(key["id"]),
        env.endpoints[P + "ok"],
    )
    assert ev["upstream_status"] is None, "a refused call never reaches the upstream"
    with env.sdk(key["secret"]) as client, pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model=P + "ok", messages=MESSAGES)
    # a viewer grant does not allow invoking; a user grant (replacing it) does
    admin.grant(gw, P + "nogrant", P + "ok", "ENDPOINT_VIEWER")
    assert (
        env.post("/v1/chat/completions", {"model": P + "ok", "messages": MESSAGES}, key=key["secret"]).status_code
        == 403
    )
    admin.grant(gw, P + "nogrant", P + "ok", "ENDPOINT_USER")
    assert (
        env.post("/v1/chat/completions", {"model": P + "ok", "messages": MESSAGES}, key=key["secret"]).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("path", "body", "endpoint"),
    [
        ("/v1/embeddings", {"model": P + "ok", "input": "x"}, "ok"),
        ("/v1/chat/completions", {"model": P + "emb", "messages": MESSAGES}, "emb"),
        ("/v1/completions", {"model": P + "emb", "prompt": "x"}, "emb"),
        ("/v1/images/generations", {"model": P + "ok", "prompt": "x"}, "ok"),
    ],
)
def test_wrong_category_for_the_route(env: Env, path: str, body: dict[str, Any], endpoint: str) -> None:
    env.up.clear()
    resp = env.post(path, body)
    err = assert_openai_error(resp, 400, type_="invalid_request_error")
    assert err["param"] == "model"
    recorded(env, resp, 400, "bad_request", endpoint=P + endpoint)
    assert len(env.up.requests) == 0, "the upstream is not called"


# --------------------------------------------------------------------------- the body


@pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2]", b'"a string"'])
def test_malformed_json(env: Env, content: bytes) -> None:
    resp = env.post("/v1/chat/completions", content=content, headers={"content-type": "application/json"})
    assert_openai_error(resp, 400, type_="invalid_request_error")
    recorded(env, resp, 400, "bad_request")


@pytest.mark.parametrize(
    "body", [{"messages": MESSAGES}, {"model": None, "messages": MESSAGES}, {"model": ""}, {"model": 42}]
)
def test_missing_model(env: Env, body: dict[str, Any]) -> None:
    resp = env.post("/v1/chat/completions", body)
    err = assert_openai_error(resp, 400, type_="invalid_request_error")
    assert err["param"] == "model"
    recorded(env, resp, 400, "bad_request")


def test_oversized_body(env: Env) -> None:
    big = "word " * 60_000  # 300 kB > MODELGATE_MAX_BODY_BYTES (256 kiB in the harness)
    env.up.clear()
    resp = env.chat(P + "ok", messages=[{"role": "user", "content": big}])
    assert_openai_error(resp, 413, code="request_too_large")
    recorded(env, resp, 413, "bad_request")
    assert len(env.up.requests) == 0


def test_oversized_body_without_content_length(env: Env) -> None:
    """A chunked body is counted as it arrives: no Content-Length does not bypass the limit."""
    payload = json.dumps({"model": P + "ok", "messages": [{"role": "user", "content": "word " * 60_000}]}).encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(payload), 16384):
            yield payload[i : i + 16384]

    resp = httpx.post(
        env.gw.base_url + "/v1/chat/completions",
        content=chunks(),
        timeout=30,
        headers={"authorization": f"Bearer {env.key}", "content-type": "application/json"},
    )
    assert "content-length" not in resp.request.headers
    assert_openai_error(resp, 413, code="request_too_large")
    recorded(env, resp, 413, "bad_request")


def test_body_just_under_the_limit_passes(env: Env) -> None:
    resp = env.chat(P + "ok", messages=[{"role": "user", "content": "word " * 50_000}])  # 250 kB
    assert resp.status_code == 200


# ------------------------------------------------------------------- upstream failures


def test_upstream_400_passes_the_message(env: Env, sdk: openai.OpenAI) -> None:
    resp = env.chat(P + "fail400")
    err = assert_openai_error(resp, 400, type_="invalid_request_error")
    assert "fake upstream error 400" in err["message"]
    ev = recorded(env, resp, 400, "upstream_4xx", endpoint=P + "fail400")
    assert ev["upstream_status"] == 400
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model=P + "fail400", messages=MESSAGES)


def test_upstream_429_keeps_retry_after(env: Env, sdk: openai.OpenAI) -> None:
    resp = env.chat(P + "fail429")
    assert_openai_error(resp, 429, type_="rate_limit_error")
    assert resp.headers["retry-after"] == "1"
    ev = recorded(env, resp, 429, "upstream_4xx", endpoint=P + "fail429")
    assert ev["upstream_status"] == 429
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model=P + "fail429", messages=MESSAGES)


@pytest.mark.parametrize("status", [500, 503])
def test_upstream_5xx_is_502(env: Env, status: int) -> None:
    resp = env.chat(P + f"fail{status}")
    err = assert_openai_error(resp, 502)
    assert str(status) in err["message"]
    ev = recorded(env, resp, 502, "upstream_5xx", endpoint=P + f"fail{status}")
    assert ev["upstream_status"] == status
    assert ev["is_estimated"] and ev["input_tokens"] > 0, "the upstream was called: the prompt is counted"


def test_upstream_5xx_on_a_stream_request(env: Env, sdk: openai.OpenAI) -> None:
    resp = env.chat(P + "fail500", stream=True)
    assert_openai_error(resp, 502)
    ev = recorded(env, resp, 502, "upstream_5xx", endpoint=P + "fail500")
    assert ev["is_stream"]
    with pytest.raises(openai.InternalServerError) as info:
        sdk.chat.completions.create(model=P + "fail500", messages=MESSAGES, stream=True)
    assert info.value.status_code == 502


def test_upstream_refusing_the_gateway_credential_is_502(env: Env) -> None:
    resp = env.chat(P + "fail401")
    err = assert_openai_error(resp, 502, code="upstream_auth_failed")
    assert "sk-vendor-secret" not in resp.text
    assert err["type"] != "authentication_error", "the client's key was fine: not a 401 for the client"
    ev = recorded(env, resp, 502, "upstream_4xx", endpoint=P + "fail401")
    assert ev["upstream_status"] == 401


def test_per_endpoint_read_timeout_is_504(env: Env, sdk: openai.OpenAI) -> None:
    started = time.monotonic()
    resp = env.chat(P + "slow")
    elapsed = time.monotonic() - started
    assert_openai_error(resp, 504, code="upstream_timeout", type_="timeout_error")
    # the endpoint's 0.4 s, not the gateway-wide 5 s (nor the upstream's 8 s); margin for a loaded machine
    assert elapsed < 4.5, elapsed
    recorded(env, resp, 504, "upstream_timeout", endpoint=P + "slow")
    with pytest.raises(openai.APIStatusError) as info:
        sdk.chat.completions.create(model=P + "slow", messages=MESSAGES)
    assert info.value.status_code == 504


def test_malformed_upstream_json_is_502(env: Env) -> None:
    resp = env.chat(P + "malformed")
    assert_openai_error(resp, 502, code="upstream_malformed_response")
    assert "<html>" not in resp.text
    ev = recorded(env, resp, 502, "upstream_5xx", endpoint=P + "malformed")
    assert ev["upstream_status"] == 200


def test_malformed_upstream_stream_chunk(env: Env, sdk: openai.OpenAI) -> None:
    resp = env.chat(P + "malformed", stream=True)
    assert resp.status_code == 200  # the headers went out before the bad chunk arrived
    events = [line[5:].strip() for line in resp.text.splitlines() if line.startswith("data:")]
    first, last = json.loads(events[0]), json.loads(events[-1])
    assert first["choices"][0]["delta"]["content"] == "echo:"
    contracts.validate("ErrorResponse", last)
    assert "[DONE]" not in events and "{this is not json" not in resp.text
    ev = recorded(env, resp, 200, "upstream_5xx", endpoint=P + "malformed")
    assert ev["is_stream"]
    with pytest.raises(openai.APIError):
        list(sdk.chat.completions.create(model=P + "malformed", messages=MESSAGES, stream=True))


def test_upstream_cutting_a_non_stream_response_is_502(env: Env) -> None:
    resp = env.chat(P + "cut")
    assert_openai_error(resp, 502)
    recorded(env, resp, 502, "upstream_5xx", endpoint=P + "cut")


def test_upstream_closing_mid_stream(env: Env, sdk: openai.OpenAI) -> None:
    with sdk.chat.completions.with_streaming_response.create(model=P + "cut", messages=MESSAGES, stream=True) as raw:
        rid = raw.headers["x-request-id"]
        received: list[str] = []
        with pytest.raises(openai.APIError) as info:
            for chunk in raw.parse():
                received.extend(c.delta.content or "" for c in chunk.choices)
    assert received == ["echo:", " hello"], "the chunks before the cut reached the client"
    assert "closed" in info.value.message or "interrupted" in info.value.message
    ev = env.gw.usage_for(rid)
    assert (ev["error_type"], ev["endpoint_id"], ev["is_stream"]) == (
        "upstream_5xx",
        env.endpoints[P + "cut"],
        1,
    )
    assert ev["ttft_ms"] is not None
    assert ev["output_tokens"] > 0 and ev["is_estimated"], "what was streamed before the cut is counted"


def test_client_disconnect_mid_stream_closes_the_upstream_request(env: Env) -> None:
    before = env.up.disconnects.value
    body = json.dumps({"model": P + "hang", "messages": MESSAGES, "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", env.gw.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + env.key.encode() + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        head = b""
        while b"echo:" not in head:  # the headers and the first chunk, then the upstream hangs
            data = sock.recv(65536)
            assert data, "the gateway closed the connection"
            head += data
    status_line, _, rest = head.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 200")
    rid = next(
        line.split(b":", 1)[1].strip().decode()
        for line in rest.split(b"\r\n")
        if line.lower().startswith(b"x-request-id:")
    )
    assert env.up.disconnects.wait_for(before + 1, timeout=10), "the upstream request was not closed"
    ev = env.gw.usage_for(rid)
    assert ev["error_type"] == "client_disconnected"
    assert ev["endpoint_id"] == env.endpoints[P + "hang"] and ev["is_stream"]
    assert ev["ttft_ms"] is not None and ev["output_tokens"] > 0


def test_client_disconnect_with_httpx_stream(env: Env) -> None:
    before = env.up.disconnects.value
    body = {"model": P + "hang", "messages": MESSAGES, "stream": True}
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST",
            env.gw.base_url + "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {env.key}"},
        ) as resp,
    ):
        rid = resp.headers["x-request-id"]
        first = next(resp.iter_lines())
        assert first.startswith("data:")
    assert env.up.disconnects.wait_for(before + 1, timeout=10)
    assert env.gw.usage_for(rid)["error_type"] == "client_disconnected"


# ------------------------------------------------------------------- unrouted requests


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/v1/nonexistent", 404),
        ("GET", "/v1/assistants", 404),
        ("GET", "/v1", 404),
        ("GET", "/v1/chat/completions", 405),
        ("DELETE", "/v1/models", 405),
    ],
)
def test_unrouted_v1_requests_are_openai_errors(env: Env, method: str, path: str, status: int) -> None:
    resp = httpx.request(method, env.gw.base_url + path, headers={"authorization": f"Bearer {env.key}"}, timeout=10)
    assert resp.status_code == status
    assert "Traceback" not in resp.text
    contracts.validate("ErrorResponse", resp.json())


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/nonexistent"), ("GET", "/v1/chat/completions")])
def test_unrouted_v1_requests_carry_a_request_id(env: Env, method: str, path: str) -> None:
    resp = httpx.request(method, env.gw.base_url + path, headers={"authorization": f"Bearer {env.key}"}, timeout=10)
    assert resp.headers.get("x-request-id")


def test_a_wrong_method_names_the_allowed_one(env: Env) -> None:
    resp = httpx.get(env.gw.base_url + "/v1/embeddings", headers={"authorization": f"Bearer {env.key}"}, timeout=10)
    assert_openai_error(resp, 405, code="method_not_allowed")
    assert resp.headers["allow"] == "POST"


def test_head_on_models_answers_without_a_body(env: Env) -> None:
    resp = httpx.head(env.gw.base_url + "/v1/models", headers={"authorization": f"Bearer {env.key}"}, timeout=10)
    assert resp.status_code == 200 and resp.content == b""
    assert int(resp.headers["content-length"]) > 0  # what a GET would return


# ----------------------------------------------------------- a gateway-wide short timeout


@dataclass(frozen=True)
class Impatient:
    gw: GatewayProcess
    key: str

    def chat(self, model: str, **extra: Any) -> httpx.Response:
        return httpx.post(
            self.gw.base_url + "/v1/chat/completions",
            json={"model": model, "messages": MESSAGES, **extra},
            headers={"authorization": f"Bearer {self.key}"},
            timeout=30,
        )


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Impatient]:
    """A gateway whose default upstream read timeout is 0.5 s."""
    gw = GatewayProcess(
        Path(tmp_path_factory.mktemp("impatient")), extra_env={"MODELGATE_UPSTREAM_READ_TIMEOUT": "0.5"}
    ).start()
    try:
        gw.create_endpoint("slow", upstream.base_url, model_version="slow-10000")
        gw.create_endpoint("hang", upstream.base_url, model_version="hang-stream")
        yield Impatient(gw, gw.create_key("admin")["secret"])
    finally:
        gw.stop()


def test_upstream_timeout_is_504(impatient: Impatient) -> None:
    started = time.monotonic()
    resp = impatient.chat("slow")
    assert time.monotonic() - started < 8, "the 0.5 s timeout applied, not the upstream's 10 s"
    assert_openai_error(resp, 504, code="upstream_timeout", type_="timeout_error")
    ev = impatient.gw.usage_for(resp.headers["x-request-id"])
    assert (ev["status_code"], ev["error_type"], ev["upstream_status"]) == (504, "upstream_timeout", None)


def test_upstream_silent_mid_stream_times_out(impatient: Impatient, upstream: FakeUpstream) -> None:
    before = upstream.disconnects.value
    resp = impatient.chat("hang", stream=True)
    assert resp.status_code == 200
    events = [line[5:].strip() for line in resp.text.splitlines() if line.startswith("data:")]
    assert json.loads(events[0])["choices"][0]["delta"]["content"] == "echo:"
    last = json.loads(events[-1])
    contracts.validate("ErrorResponse", last)
    assert last["error"]["code"] == "upstream_timeout"
    assert upstream.disconnects.wait_for(before + 1, timeout=10), "the silent upstream request was closed"
    ev = impatient.gw.usage_for(resp.headers["x-request-id"])
    assert ev["error_type"] == "upstream_timeout" and ev["is_stream"]
