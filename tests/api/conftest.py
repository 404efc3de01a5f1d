"""Shared parts of the admin-API tests: one real gateway per test module, and callers of its
``/api/v1`` (personal access tokens obtained through the real login) and ``/v1``.

Nothing here reaches into modelgate's code: users, roles, endpoints and keys are made through
the HTTP API, exactly as a script would.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess

PROBLEM = "application/problem+json"
_seq = itertools.count(1)


def unique(prefix: str) -> str:
    """A fresh, valid object name (endpoint, user, credential ...)."""
    return f"{prefix}-{next(_seq)}-{secrets.token_hex(2)}"


class Api:
    """One caller of the admin API, authenticated by a personal access token."""

    def __init__(self, http: httpx.Client, token: str | None, username: str = "?") -> None:
        self.http = http
        self.token = token
        self.username = username

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", None) or {})
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.http.request(method, "/api/v1" + path, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PATCH", path, **kw)

    def put(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def ok(self, method: str, path: str, status: int | None = None, **kw: Any) -> Any:
        """The JSON of a request that must succeed (2xx, or exactly ``status``)."""
        resp = self.request(method, path, **kw)
        if status is not None:
            assert resp.status_code == status, f"{method} {path}: {resp.status_code} {resp.text}"
        else:
            assert resp.is_success, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json() if resp.content else None

    def __repr__(self) -> str:
        return f"Api({self.username})"


def assert_problem(resp: httpx.Response, status: int | tuple[int, ...], field: str | None = None) -> dict[str, Any]:
    """A problem-details error (RFC 9457) with a readable message that, if given, names ``field``."""
    statuses = (status,) if isinstance(status, int) else status
    assert resp.status_code in statuses, f"expected {statuses}, got {resp.status_code}: {resp.text[:500]}"
    assert resp.headers["content-type"].startswith(PROBLEM), resp.headers["content-type"]
    body = resp.json()
    assert body["status"] == resp.status_code
    assert isinstance(body.get("title"), str) and body["title"]
    assert isinstance(body.get("detail"), str) and len(body["detail"]) >= 10, body
    assert "Traceback" not in resp.text
    if field is not None:
        named = {body.get("param")} | {e.get("field") for e in body.get("errors", [])}
        assert field in named or any(str(n).startswith(field + ".") for n in named if n), (
            f"the error does not name the field {field!r}: {body}"
        )
    return body


def login(http: httpx.Client, username: str, password: str, tenant: str | None = None) -> str:
    """Sign in like the console does, then create a personal access token; returns its secret."""
    with httpx.Client(base_url=str(http.base_url), timeout=30) as browser:
        body: dict[str, Any] = {"username": username, "password": password}
        if tenant is not None:
            body["tenant"] = tenant
        resp = browser.post("/api/v1/auth/login", json=body)
        assert resp.status_code == 200, resp.text
        csrf = resp.json()["csrf_token"]
        resp = browser.post("/api/v1/me/tokens", json={"name": "tests"}, headers={"X-CSRF-Token": csrf})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["secret"])


@dataclass
class Person:
    """A user of a tenant with an admin-API caller of their own."""

    username: str
    id: int
    password: str
    api: Api
    tenant: str | None = None
    keys: dict[str, str] = field(default_factory=dict)  # key name -> secret


def add_person(admin: Api, username: str | None = None, tenant: str | None = None, sign_in: bool = True) -> Person:
    """A new plain member of ``admin``'s tenant, signed in (with a token) unless ``sign_in`` is false."""
    username = username or unique("user")
    password = "pw-" + secrets.token_urlsafe(12)
    user = admin.ok("POST", "/users", 201, json={"username": username, "password": password})
    token = login(admin.http, username, password, tenant) if sign_in else None
    return Person(username, int(user["id"]), password, Api(admin.http, token, username), tenant)


def make_gateway_admin(admin: Api, person: Person) -> None:
    admin.ok("POST", "/gateway-admins", 201, json={"user_id": person.id})


def create_endpoint(admin: Api, upstream: FakeUpstream, name: str | None = None, **fields: Any) -> dict[str, Any]:
    body = {"name": name or unique("ep"), "base_url": upstream.base_url, "model_version": "fake-model", **fields}
    return dict(admin.ok("POST", "/endpoints", 201, json=body))


def create_key(admin: Api, owner: str, **fields: Any) -> dict[str, Any]:
    return dict(admin.ok("POST", "/api-keys", 201, json={"owner": owner, **fields}))


def chat(http: httpx.Client, key: str, model: str, content: str = "hello") -> httpx.Response:
    """One data-plane call, as an OpenAI client would make it."""
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 4}
    return http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=body)


def audit_count(gw: GatewayProcess) -> int:
    return int(gw.query("SELECT count(*) FROM audit_log")[0][0])


@dataclass
class Env:
    gw: GatewayProcess
    http: httpx.Client
    admin: Api  # the bootstrap admin: Instance Admin, Account Admin and Gateway Admin of tenant "default"
    upstream: FakeUpstream


def start_env(data_dir: Path, upstream: FakeUpstream, database_url: str | None = None,
              extra_env: dict[str, str] | None = None) -> Iterator[Env]:
    gw = GatewayProcess(data_dir, database_url=database_url, extra_env=extra_env)
    try:
        gw.start()  # inside the try: a gateway that fails to come up is stopped too
        with httpx.Client(base_url=gw.base_url, timeout=60) as http:
            assert gw.admin_password
            admin = Api(http, login(http, "admin", gw.admin_password), "admin")
            yield Env(gw, http, admin, upstream)
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Env]:
    """A gateway of this test module's own (SQLite), with its bootstrap admin signed in."""
    yield from start_env(tmp_path_factory.mktemp("api"), upstream)
