"""Tenant isolation (DESIGN.md §6): every read and write of every resource, attempted by one
tenant's Gateway Admin on another tenant's objects, fails exactly as it would for an object that
does not exist, and changes nothing; ``/v1`` keys cannot reach another tenant's endpoints.

Both directions are tried: tenant B's Gateway Admin against tenant A ("default"), and tenant A's
bootstrap admin, who is also the Instance Admin, against tenant B (the Instance Admin manages
tenants, nothing inside them).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.conftest import (
    Api,
    Env,
    add_person,
    assert_problem,
    audit_count,
    chat,
    create_endpoint,
    create_key,
    login,
    make_gateway_admin,
)  # fmt: skip


@dataclass
class Side:
    """One tenant: its Gateway Admin and some objects of every kind."""

    tenant: str
    api: Api
    endpoint: str  # an endpoint only this tenant has
    shared: str  # a name both tenants use for an endpoint
    user: int
    username: str
    gateway_admin: int  # a Gateway Admin other than the caller
    key: int
    key_secret: str
    credential: int
    grant: int
    model_version: str


@pytest.fixture(scope="module")
def sides(env: Env) -> dict[str, Side]:
    out = env.gw.cli("tenants", "create", "tenant-b", "--admin", "bob", "--json")
    bob = Api(env.http, login(env.http, "bob", out["admin"]["password"], "tenant-b"), "bob")
    result = {}
    for label, tenant, api in (("a", "default", env.admin), ("b", "tenant-b", bob)):
        cred = api.ok("POST", "/credentials", 201, json={"name": "vendor-key", "secret": f"sk-{label}-vendor-secret"})
        only = create_endpoint(api, env.upstream, f"only-{label}", credential_id=cred["id"])
        create_endpoint(api, env.upstream, "shared-name", model_version=f"model-of-{label}")
        member = add_person(api, f"member-{label}", tenant, sign_in=False)
        deputy = add_person(api, f"deputy-{label}", tenant, sign_in=False)
        make_gateway_admin(api, deputy)
        grant = api.ok("POST", "/grants", 201, json={"username": member.username, "role": "ENDPOINT_USER",
                                                     "endpoints": [only["name"], "shared-name"]})  # fmt: skip
        key = create_key(api, member.username)
        result[label] = Side(tenant, api, only["name"], "shared-name", member.id, member.username, deputy.id,
                             key["id"], key["secret"], cred["id"], grant[0]["id"], f"model-of-{label}")  # fmt: skip
    return result


NOWHERE = Side("nowhere", Api(None, None),  # type: ignore[arg-type]
               "no-such-endpoint", "", 987654321, "no-such-user", 987654322,
               987654323, "", 987654324, 987654325, "")  # fmt: skip

# (name, method, path, body) with path and body built from the victim's objects (v) and the caller's (me)
Req = tuple[str, str, Callable[[Side, Side], str], Callable[[Side, Side], Any]]
_ = None
BY_PATH: list[Req] = [
    ("see endpoint", "GET", lambda v, me: f"/endpoints/{v.endpoint}", lambda v, me: _),
    ("edit endpoint", "PATCH", lambda v, me: f"/endpoints/{v.endpoint}", lambda v, me: {"description": "pwned"}),
    ("delete endpoint", "DELETE", lambda v, me: f"/endpoints/{v.endpoint}?confirm=true", lambda v, me: _),
    ("copy endpoint", "POST", lambda v, me: f"/endpoints/{v.endpoint}/copy", lambda v, me: {"name": "stolen"}),
    ("test endpoint", "POST", lambda v, me: f"/endpoints/{v.endpoint}/test", lambda v, me: _),
    ("endpoint history", "GET", lambda v, me: f"/endpoints/{v.endpoint}/history", lambda v, me: _),
    ("endpoint examples", "GET", lambda v, me: f"/endpoints/{v.endpoint}/examples", lambda v, me: _),
    ("endpoint quota", "GET", lambda v, me: f"/endpoints/{v.endpoint}/quota", lambda v, me: _),
    ("see user", "GET", lambda v, me: f"/users/{v.user}", lambda v, me: _),
    ("edit user", "PATCH", lambda v, me: f"/users/{v.user}", lambda v, me: {"display_name": "pwned"}),
    ("deactivate user", "PATCH", lambda v, me: f"/users/{v.user}", lambda v, me: {"is_active": False}),
    ("reset password", "PATCH", lambda v, me: f"/users/{v.user}", lambda v, me: {"password": "attacker-pw-1"}),
    ("delete user", "DELETE", lambda v, me: f"/users/{v.user}", lambda v, me: _),
    ("see API key", "GET", lambda v, me: f"/api-keys/{v.key}", lambda v, me: _),
    ("disable API key", "POST", lambda v, me: f"/api-keys/{v.key}/disable", lambda v, me: _),
    ("enable API key", "POST", lambda v, me: f"/api-keys/{v.key}/enable", lambda v, me: _),
    ("rotate API key", "POST", lambda v, me: f"/api-keys/{v.key}/rotate", lambda v, me: {"grace_seconds": 0}),
    ("delete API key", "DELETE", lambda v, me: f"/api-keys/{v.key}", lambda v, me: _),
    ("delete credential", "DELETE", lambda v, me: f"/credentials/{v.credential}", lambda v, me: _),
    ("revoke grant", "DELETE", lambda v, me: f"/grants/{v.grant}", lambda v, me: _),
    ("remove Gateway Admin", "DELETE", lambda v, me: f"/gateway-admins/{v.gateway_admin}", lambda v, me: _),
]
BY_REFERENCE: list[Req] = [
    ("key for their user", "POST", lambda v, me: "/api-keys", lambda v, me: {"owner": v.username}),
    ("grant their user", "POST", lambda v, me: "/grants",
     lambda v, me: {"username": v.username, "role": "ENDPOINT_USER", "endpoints": [me.endpoint]}),
    ("grant on their endpoint", "POST", lambda v, me: "/grants",
     lambda v, me: {"username": "bob" if me.tenant == "tenant-b" else "admin", "role": "ENDPOINT_ADMIN",
                    "endpoints": [v.endpoint]}),
    ("make their user Gateway Admin", "POST", lambda v, me: "/gateway-admins", lambda v, me: {"user_id": v.user}),
    ("endpoint with their credential", "POST", lambda v, me: "/endpoints",
     lambda v, me: {"name": "thief", "base_url": "http://127.0.0.1:9/v1", "model_version": "m",
                    "credential_id": v.credential}),
    ("switch to their credential", "PATCH", lambda v, me: f"/endpoints/{me.endpoint}",
     lambda v, me: {"credential_id": v.credential}),
]  # fmt: skip


def _anonymised(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "detail": re.sub(r"'[^']*'|\d+", "_", body["detail"])}


def _state(side: Side) -> dict[str, Any]:
    """Everything a tenant's admin can read about the tenant (minus volatile fields)."""
    api = side.api

    def stable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k not in ("invocations", "last_used_at")} for r in rows]

    return {
        "endpoints": stable(api.ok("GET", "/endpoints")),
        "users": api.ok("GET", "/users"),
        "keys": stable(api.ok("GET", "/api-keys")),
        "credentials": api.ok("GET", "/credentials"),
        "grants": api.ok("GET", "/grants"),
        "admins": api.ok("GET", "/gateway-admins"),
        "audit_total": api.ok("GET", "/audit-log")["total"],
    }


DIRECTIONS = [("b", "a"), ("a", "b")]


@pytest.mark.parametrize(("attacker", "victim"), DIRECTIONS, ids=["B-on-A", "A-on-B"])
def test_every_read_and_write_by_path_is_404_like_a_missing_object(sides: dict[str, Side], attacker: str,
                                                                   victim: str) -> None:  # fmt: skip
    me, them = sides[attacker], sides[victim]
    before = _state(them)
    for name, method, path, body in BY_PATH:
        kw = {"json": body(them, me)} if body(them, me) is not None else {}
        resp = me.api.request(method, path(them, me), **kw)
        missing = me.api.request(method, path(NOWHERE, me), **kw)
        assert_problem(missing, 404)
        assert_problem(resp, 404)
        assert _anonymised(resp.json()) == _anonymised(missing.json()), name
    assert _state(them) == before


@pytest.mark.parametrize(("attacker", "victim"), DIRECTIONS, ids=["B-on-A", "A-on-B"])
def test_references_to_the_other_tenant_answer_like_missing_ones(sides: dict[str, Side], attacker: str,
                                                                 victim: str) -> None:  # fmt: skip
    me, them = sides[attacker], sides[victim]
    before, mine = _state(them), _state(me)
    for name, method, path, body in BY_REFERENCE:
        resp = me.api.request(method, path(them, me), json=body(them, me))
        missing = me.api.request(method, path(NOWHERE, me), json=body(NOWHERE, me))
        assert_problem(missing, (400, 404))
        assert resp.status_code == missing.status_code, (name, resp.text)
        assert _anonymised(resp.json()) == _anonymised(missing.json()), name
    assert _state(them) == before
    assert _state(me) == mine


@pytest.mark.parametrize(("attacker", "victim"), DIRECTIONS, ids=["B-on-A", "A-on-B"])
def test_lists_show_only_the_callers_tenant(sides: dict[str, Side], attacker: str, victim: str) -> None:
    me, them = sides[attacker], sides[victim]
    endpoints = me.api.ok("GET", "/endpoints")
    assert them.endpoint not in {e["name"] for e in endpoints}
    assert [e["model_version"] for e in endpoints if e["name"] == "shared-name"] == [me.model_version]
    assert them.user not in {u["id"] for u in me.api.ok("GET", "/users")}
    assert them.username not in {u["username"] for u in me.api.ok("GET", "/users")}
    assert them.key not in {k["id"] for k in me.api.ok("GET", "/api-keys")}
    assert me.api.ok("GET", "/api-keys", params={"owner": them.username}) == []
    assert them.credential not in {c["id"] for c in me.api.ok("GET", "/credentials")}
    assert them.grant not in {g["id"] for g in me.api.ok("GET", "/grants")}
    assert me.api.ok("GET", "/grants", params={"user": them.username}) == []
    assert me.api.ok("GET", "/grants", params={"endpoint": them.endpoint}) == []
    assert them.gateway_admin not in {a["user_id"] for a in me.api.ok("GET", "/gateway-admins")}
    for params in (
        {"target": them.endpoint},
        {"target": them.username},
        {"target_type": "api_key", "target": str(them.key)},
        {"actor": them.api.username},
        {"target_type": "credential", "target": str(them.credential)},
    ):
        assert me.api.ok("GET", "/audit-log", params=params)["items"] == [], params
    trail = me.api.ok("GET", "/audit-log", params={"page_size": 500})["items"]
    assert trail and not any(r["target_name"] in (them.endpoint, them.username) for r in trail)


@pytest.mark.parametrize(("attacker", "victim"), DIRECTIONS, ids=["B-on-A", "A-on-B"])
def test_v1_key_cannot_reach_the_other_tenants_endpoint(env: Env, sides: dict[str, Side], attacker: str,
                                                        victim: str) -> None:  # fmt: skip
    me, them = sides[attacker], sides[victim]
    resp = chat(env.http, me.key_secret, them.endpoint)
    missing = chat(env.http, me.key_secret, "no-such-endpoint")
    assert resp.status_code == missing.status_code == 404, resp.text
    assert resp.json()["error"]["code"] == missing.json()["error"]["code"] == "model_not_found"
    assert _anonymised({"detail": resp.json()["error"]["message"]}) == _anonymised(
        {"detail": missing.json()["error"]["message"]}
    )
    env.upstream.clear()
    resp = chat(env.http, me.key_secret, "shared-name")
    assert resp.status_code == 200, resp.text
    assert env.upstream.requests[-1].json["model"] == me.model_version
    models = env.http.get("/v1/models", headers={"Authorization": f"Bearer {me.key_secret}"}).json()["data"]
    assert {m["id"] for m in models} == {me.endpoint, "shared-name"}


def test_a_user_cannot_sign_in_to_another_tenant(env: Env, sides: dict[str, Side]) -> None:
    out = env.gw.cli("users", "create", "carol", "--password", "carol-password", "--tenant", "tenant-b", "--json")
    assert out["id"]
    resp = env.http.post("/api/v1/auth/login", json={"username": "carol", "password": "carol-password",
                                                     "tenant": "default"})  # fmt: skip
    assert_problem(resp, 401)
    assert login(env.http, "carol", "carol-password", "tenant-b")


def test_cross_tenant_attempts_leave_no_audit_records(env: Env, sides: dict[str, Side]) -> None:
    before = audit_count(env.gw)
    me, them = sides["b"], sides["a"]
    for _name, method, path, body in BY_PATH + BY_REFERENCE:
        b = body(them, me)
        me.api.request(method, path(them, me), **({"json": b} if b is not None else {}))
    assert audit_count(env.gw) == before
