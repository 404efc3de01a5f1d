"""DESIGN.md §2 through the real HTTP API: every role × every action, allowed and denied.

The expected outcome of every case is computed from ``modelgate.rbac`` (``ROLES`` through
``has_permission``), never written down here: change the table and these tests change with it.
What this file fixes is only the mapping from an HTTP action to the permission(s) it needs, and
the HTTP shape of an answer:

* allowed: the action's success status;
* denied on something the caller may see: 403 (problem details);
* an endpoint the caller may not even see: exactly the answer for an endpoint that does not
  exist (so the API reveals nothing), and on ``/v1`` 403 (DESIGN.md §4).

"own" is the endpoint the role's grant is on; "other" is an endpoint of the same tenant the user
has no grant on, so an endpoint role on one endpoint is checked to give nothing on another.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx
import pytest

from modelgate.rbac import INSTANCE_ADMIN, EndpointRole, Permission, TenantRole, has_permission
from tests.api.conftest import (
    Api,
    Env,
    Person,
    add_person,
    assert_problem,
    chat,
    create_endpoint,
    create_key,
    login,
    make_gateway_admin,
    unique,
)  # fmt: skip

P = Permission
MISSING = "no-such-endpoint"

# role label -> (tenant roles the user holds, endpoint role held on the "own" endpoint)
ROLE_SPECS: dict[str, tuple[frozenset[str], str | None]] = {
    "GATEWAY_ADMIN": (frozenset({TenantRole.MEMBER, TenantRole.GATEWAY_ADMIN}), None),
    "ACCOUNT_ADMIN": (frozenset({TenantRole.ACCOUNT_ADMIN}), None),
    "ENDPOINT_ADMIN": (frozenset({TenantRole.MEMBER}), EndpointRole.ENDPOINT_ADMIN),
    "ENDPOINT_OPERATOR": (frozenset({TenantRole.MEMBER}), EndpointRole.ENDPOINT_OPERATOR),
    "ENDPOINT_USER": (frozenset({TenantRole.MEMBER}), EndpointRole.ENDPOINT_USER),
    "ENDPOINT_VIEWER": (frozenset({TenantRole.MEMBER}), EndpointRole.ENDPOINT_VIEWER),
    "MEMBER": (frozenset({TenantRole.MEMBER}), None),
}
# the bootstrap admin: Instance Admin, and Account Admin + Gateway Admin of its own tenant
INSTANCE_ADMIN_ROLES = frozenset({INSTANCE_ADMIN, TenantRole.ACCOUNT_ADMIN, TenantRole.GATEWAY_ADMIN})
TENANT = "acme"


@dataclass
class World:
    env: Env
    ga: Person  # the tenant's working Gateway Admin (sets up fixtures of the cases)
    people: dict[str, Person]  # role label -> user holding exactly that role
    victim: Person  # someone whose grants, keys and profile the roles try to change
    ga_candidate: Person  # someone the roles try to make (or unmake) a Gateway Admin
    own: str
    other: str
    endpoint_ids: dict[str, int]
    key_of: dict[str, dict[str, Any]]  # role label -> that user's API key (with its secret)
    victim_key: dict[str, Any]

    @property
    def admin(self) -> Api:
        return self.env.admin

    def target(self, kind: str) -> str:
        return {"own": self.own, "other": self.other, "missing": MISSING}[kind]


@pytest.fixture(scope="module")
def world(env: Env) -> Iterator[World]:
    admin, http = env.admin, env.http
    created = admin.ok("POST", "/tenants", 201, json={"name": TENANT, "admin_username": "owner"})
    owner_pw = created["admin"]["password"]
    owner_api = Api(http, login(http, "owner", owner_pw, TENANT), "owner")
    owner = Person("owner", created["admin"]["id"], owner_pw, owner_api)
    ga = add_person(owner.api, "ga", TENANT)
    make_gateway_admin(owner.api, ga)
    # leave the owner a pure Account Admin (who "may act as" a Gateway Admin)
    ga.api.ok("DELETE", f"/gateway-admins/{owner.id}", 204)
    people = {"GATEWAY_ADMIN": ga, "ACCOUNT_ADMIN": owner}
    for role in ROLE_SPECS:
        if role not in people:
            people[role] = add_person(ga.api, role.lower().replace("_", "-"), TENANT)
    own = create_endpoint(ga.api, env.upstream, "own-ep", description="the endpoint the roles are granted on")
    other = create_endpoint(ga.api, env.upstream, "other-ep", description="an endpoint nobody is granted on")
    for role, (_, ep_role) in ROLE_SPECS.items():
        if ep_role is not None:
            ga.api.ok("POST", "/grants", 201, json={"username": people[role].username, "role": ep_role,
                                                    "endpoints": [own["name"]]})  # fmt: skip
    victim = add_person(ga.api, "victim", TENANT, sign_in=False)
    key_of = {role: create_key(ga.api, p.username, name=f"{p.username}-main") for role, p in people.items()}
    candidate = add_person(ga.api, "ga-candidate", TENANT, sign_in=False)
    yield World(env, ga, people, victim, candidate, own["name"], other["name"],
                {own["name"]: own["id"], other["name"]: other["id"]}, key_of,
                create_key(ga.api, victim.username))  # fmt: skip


def can(role: str, permission: Permission, target: str = "own") -> bool:
    tenant_roles, ep_role = ROLE_SPECS[role]
    return has_permission(permission, tenant_roles, ep_role if target == "own" else None)


def _anonymised(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "detail": re.sub(r"'[^']*'|\d+", "_", body["detail"])}


def _same_as_missing(resp: httpx.Response, missing: httpx.Response) -> None:
    """The answer about an endpoint one may not see equals the answer about one that does not exist
    (up to the name or id asked about)."""
    assert missing.status_code in (400, 404), missing.text
    assert resp.status_code == missing.status_code, f"{resp.status_code} {resp.text} vs {missing.text}"
    assert_problem(resp, resp.status_code)
    assert _anonymised(resp.json()) == _anonymised(missing.json())


# ----------------------------------------------------------------------------- the table itself


def test_the_users_hold_exactly_their_roles(world: World) -> None:
    for role, (tenant_roles, ep_role) in ROLE_SPECS.items():
        person = world.people[role]
        me = person.api.ok("GET", "/me")
        assert set(me["tenant_roles"]) == set(tenant_roles), role
        assert me["is_instance_admin"] is False
        grants = person.api.ok("GET", "/grants", params={"user": person.username})
        assert {(g["endpoint"], g["role"]) for g in grants} == ({(world.own, ep_role)} if ep_role else set()), role
    admin = world.admin.ok("GET", "/me")
    assert admin["is_instance_admin"] is True
    assert set(admin["tenant_roles"]) | {INSTANCE_ADMIN} == INSTANCE_ADMIN_ROLES


def test_every_permission_is_exercised() -> None:
    covered = {p for a in ENDPOINT_ACTIONS + TENANT_ACTIONS + INSTANCE_ACTIONS for p in a.perms}
    covered |= {P.ENDPOINT_VIEW, P.ENDPOINT_INVOKE, P.ENDPOINT_AUDIT, P.AUDIT_ALL, P.KEYS_VIEW_OWN}  # own tests below
    covered |= {P.USAGE_ALL}  # test_usage_by_all_dimensions
    assert set(Permission) - covered == set(), "a permission without an HTTP action in this matrix: add one"


# ----------------------------------------------------------------------------- endpoint actions


@dataclass(frozen=True)
class EndpointAction:
    name: str
    perms: tuple[Permission, ...]
    ok: int
    run: Callable[[World, Person, str, str], httpx.Response]  # (world, actor, kind, role) -> response

    def __repr__(self) -> str:
        return self.name


def _fresh_endpoint(w: World, actor: Person, kind: str, role: str) -> str:
    """A new endpoint for a destructive case; for "own" the actor gets their role on it."""
    if kind == "missing":
        return MISSING
    name = create_endpoint(w.ga.api, w.env.upstream, unique("fresh"))["name"]
    ep_role = ROLE_SPECS[role][1]
    if kind == "own" and ep_role is not None:
        w.ga.api.ok("POST", "/grants", 201, json={"username": actor.username, "role": ep_role, "endpoints": [name]})
    return name


def _see(w: World, a: Person, kind: str, role: str) -> httpx.Response:
    return a.api.get(f"/endpoints/{w.target(kind)}")


def _history(w: World, a: Person, kind: str, role: str) -> httpx.Response:
    return a.api.get(f"/endpoints/{w.target(kind)}/history")


def _examples(w: World, a: Person, kind: str, role: str) -> httpx.Response:
    return a.api.get(f"/endpoints/{w.target(kind)}/examples")


def _test_connection(w: World, a: Person, kind: str, role: str) -> httpx.Response:
    resp = a.api.post(f"/endpoints/{w.target(kind)}/test")
    if resp.status_code == 200:
        assert resp.json()["success"] is True, resp.text
    return resp


def _quota_status(w: World, a: Person, kind: str, role: str) -> httpx.Response:
    return a.api.get(f"/endpoints/{w.target(kind)}/quota")


def _metrics(w: World, a: Person, kind: str, role: str) -> httpx.Response:
    return a.api.get(f"/endpoints/{w.target(kind)}/metrics", params={"range": "1h"})


def _copy(w: World, a: Person, kind: str, role: str) -> httpx.Response:
    return a.api.post(f"/endpoints/{w.target(kind)}/copy", json={"name": unique("copy")})


def _edit(w: World, a: Person, kind: str, role: str) -> httpx.Response:
    return a.api.patch(f"/endpoints/{w.target(kind)}", json={"description": unique("edited by " + role)})


def _edit_limits(w: World, a: Person, kind: str, role: str) -> httpx.Response:
    return a.api.patch(f"/endpoints/{w.target(kind)}", json={"rpm": 100_000, "tpm": 10_000_000})


def _edit_quota(w: World, a: Person, kind: str, role: str) -> httpx.Response:
    return a.api.patch(f"/endpoints/{w.target(kind)}", json={"quota_tokens": 10**12})


def _delete(w: World, a: Person, kind: str, role: str) -> httpx.Response:
    name = _fresh_endpoint(w, a, kind, role)
    resp = a.api.delete(f"/endpoints/{name}", params={"confirm": "true"})
    if kind != "missing":
        still_there = w.ga.api.get(f"/endpoints/{name}").status_code == 200
        assert still_there == (resp.status_code != 204)
    return resp


def _grant(w: World, a: Person, kind: str, role: str) -> httpx.Response:
    return a.api.post("/grants", json={"username": w.victim.username, "role": "ENDPOINT_VIEWER",
                                       "endpoints": [w.target(kind)]})  # fmt: skip


def _revoke(w: World, a: Person, kind: str, role: str) -> httpx.Response:
    if kind == "missing":
        return a.api.delete("/grants/987654321")
    grant = w.ga.api.ok("POST", "/grants", 201, json={"username": w.victim.username, "role": "ENDPOINT_USER",
                                                      "endpoints": [w.target(kind)]})[0]  # fmt: skip
    resp = a.api.delete(f"/grants/{grant['id']}")
    if resp.status_code != 204:  # the grant is untouched
        assert any(g["id"] == grant["id"] for g in w.ga.api.ok("GET", "/grants", params={"user": w.victim.username}))
    return resp


ENDPOINT_ACTIONS = [
    EndpointAction("see endpoint", (P.ENDPOINT_VIEW,), 200, _see),
    EndpointAction("view change history", (P.ENDPOINT_VIEW,), 200, _history),
    EndpointAction("view invocation examples", (P.ENDPOINT_VIEW,), 200, _examples),
    EndpointAction("view endpoint metrics", (P.ENDPOINT_MONITOR,), 200, _metrics),
    EndpointAction("view endpoint quota status", (P.ENDPOINT_MONITOR,), 200, _quota_status),
    EndpointAction("test connection", (P.ENDPOINT_INVOKE,), 200, _test_connection),
    EndpointAction("copy endpoint", (P.ENDPOINT_CREATE,), 201, _copy),
    EndpointAction("edit endpoint config", (P.ENDPOINT_EDIT,), 200, _edit),
    EndpointAction("edit endpoint limits", (P.ENDPOINT_EDIT,), 200, _edit_limits),
    EndpointAction("edit endpoint quota", (P.ENDPOINT_EDIT, P.ENDPOINT_EDIT_QUOTA), 200, _edit_quota),
    EndpointAction("delete endpoint", (P.ENDPOINT_DELETE,), 204, _delete),
    EndpointAction("grant endpoint role", (P.ENDPOINT_GRANT,), 201, _grant),
    EndpointAction("revoke endpoint role", (P.ENDPOINT_GRANT,), 204, _revoke),
]


@pytest.mark.parametrize("kind", ["own", "other"])
@pytest.mark.parametrize("role", list(ROLE_SPECS))
@pytest.mark.parametrize("action", ENDPOINT_ACTIONS, ids=lambda a: a.name.replace(" ", "-"))
def test_endpoint_action(world: World, action: EndpointAction, role: str, kind: str) -> None:
    actor = world.people[role]
    resp = action.run(world, actor, kind, role)
    if not can(role, P.ENDPOINT_VIEW, kind):
        _same_as_missing(resp, action.run(world, actor, "missing", role))
    elif all(can(role, p, kind) for p in action.perms):
        assert resp.status_code == action.ok, resp.text
    else:
        assert_problem(resp, 403)


@pytest.mark.parametrize("kind", ["own", "other"])
@pytest.mark.parametrize("role", list(ROLE_SPECS))
def test_list_endpoints_shows_what_the_role_may_see(world: World, role: str, kind: str) -> None:
    listed = {e["name"] for e in world.people[role].api.ok("GET", "/endpoints")}
    assert (world.target(kind) in listed) == can(role, P.ENDPOINT_VIEW, kind)


@pytest.mark.parametrize("kind", ["own", "other"])
@pytest.mark.parametrize("role", list(ROLE_SPECS))
def test_invoke_through_v1_with_own_key(world: World, role: str, kind: str) -> None:
    key = world.key_of[role]["secret"]
    resp = chat(world.env.http, key, world.target(kind))
    if can(role, P.ENDPOINT_INVOKE, kind):
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"] == "echo: hello"
    else:
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"]["code"] == "permission_denied"
    models = world.env.http.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).json()
    assert (world.target(kind) in {m["id"] for m in models["data"]}) == can(role, P.ENDPOINT_INVOKE, kind)


@pytest.mark.parametrize("kind", ["own", "other"])
@pytest.mark.parametrize("role", list(ROLE_SPECS))
def test_audit_log_of_an_endpoint(world: World, role: str, kind: str) -> None:
    """All of it for Gateway Admins, the records of their own endpoints for Endpoint Admins."""
    resp = world.people[role].api.get("/audit-log", params={"target_type": "endpoint", "target": world.target(kind),
                                                            "page_size": 500})  # fmt: skip
    audits_somewhere = can(role, P.AUDIT_ALL) or can(role, P.ENDPOINT_AUDIT, "own")
    if not audits_somewhere:
        assert_problem(resp, 403)
        return
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    if can(role, P.AUDIT_ALL) or can(role, P.ENDPOINT_AUDIT, kind):
        assert any(r["action"] == "endpoint.create" for r in items), items
        assert {r["target_id"] for r in items} == {str(world.endpoint_ids[world.target(kind)])}
    else:
        assert items == []


@pytest.mark.parametrize("role", list(ROLE_SPECS))
def test_audit_log_of_the_tenant(world: World, role: str) -> None:
    resp = world.people[role].api.get("/audit-log", params={"page_size": 500})
    if can(role, P.AUDIT_ALL):
        assert resp.status_code == 200, resp.text
        items = resp.json()["items"]
        assert any(r["action"] == "user.create" and r["target_name"] == "victim" for r in items)
        assert {str(world.endpoint_ids[world.own]), str(world.endpoint_ids[world.other])} <= {
            r["target_id"] for r in items if r["target_type"] == "endpoint"
        }
    elif can(role, P.ENDPOINT_AUDIT, "own"):
        assert resp.status_code == 200, resp.text
        items = resp.json()["items"]
        assert items and all(r["target_type"] == "endpoint" for r in items)
        assert str(world.endpoint_ids[world.own]) in {r["target_id"] for r in items}
        assert str(world.endpoint_ids[world.other]) not in {r["target_id"] for r in items}
    else:
        assert_problem(resp, 403)


# ----------------------------------------------------------------------------- tenant actions


@dataclass(frozen=True)
class TenantAction:
    name: str
    perms: tuple[Permission, ...]
    ok: int
    run: Callable[[World, Person], httpx.Response]
    denied: int = 403

    def __repr__(self) -> str:
        return self.name


def _own_fresh_key(w: World, a: Person) -> int:
    return int(create_key(w.ga.api, a.username, name=unique("spare"))["id"])


def _victim_fresh_key(w: World) -> int:
    return int(create_key(w.ga.api, w.victim.username, name=unique("victim-spare"))["id"])


def _ensure_gateway_admin(w: World, person: Person, want: bool) -> None:
    admins = {a["user_id"] for a in w.ga.api.ok("GET", "/gateway-admins")}
    if want and person.id not in admins:
        make_gateway_admin(w.ga.api, person)
    elif not want and person.id in admins:
        w.ga.api.ok("DELETE", f"/gateway-admins/{person.id}", 204)


def _create_credential(w: World, a: Person) -> httpx.Response:
    return a.api.post("/credentials", json={"name": unique("cred"), "secret": "sk-" + unique("vendor")})


def _delete_credential(w: World, a: Person) -> httpx.Response:
    cred = w.ga.api.ok("POST", "/credentials", 201, json={"name": unique("cred"), "secret": "sk-to-delete-123"})
    return a.api.delete(f"/credentials/{cred['id']}")


def _create_user(w: World, a: Person) -> httpx.Response:
    return a.api.post("/users", json={"username": unique("new-user"), "password": "a-long-password"})


def _add_gateway_admin(w: World, a: Person) -> httpx.Response:
    _ensure_gateway_admin(w, w.ga_candidate, False)
    return a.api.post("/gateway-admins", json={"user_id": w.ga_candidate.id})


def _remove_gateway_admin(w: World, a: Person) -> httpx.Response:
    _ensure_gateway_admin(w, w.ga_candidate, True)
    return a.api.delete(f"/gateway-admins/{w.ga_candidate.id}")


def _create_endpoint(w: World, a: Person) -> httpx.Response:
    return a.api.post("/endpoints", json={"name": unique("new"), "base_url": w.env.upstream.base_url,
                                          "model_version": "fake-model"})  # fmt: skip


TENANT_ACTIONS = [
    TenantAction("create endpoint", (P.ENDPOINT_CREATE,), 201, _create_endpoint),
    TenantAction("create API key", (P.KEYS_MANAGE,), 201,
                 lambda w, a: a.api.post("/api-keys", json={"owner": w.victim.username})),
    TenantAction("see another user's API key", (P.KEYS_MANAGE,), 200,
                 lambda w, a: a.api.get(f"/api-keys/{w.victim_key['id']}"), denied=404),
    TenantAction("disable own API key", (P.KEYS_MANAGE,), 200,
                 lambda w, a: a.api.post(f"/api-keys/{_own_fresh_key(w, a)}/disable")),
    TenantAction("enable own API key", (P.KEYS_MANAGE,), 200,
                 lambda w, a: a.api.post(f"/api-keys/{_own_fresh_key(w, a)}/enable")),
    TenantAction("rotate own API key", (P.KEYS_MANAGE,), 200,
                 lambda w, a: a.api.post(f"/api-keys/{_own_fresh_key(w, a)}/rotate", json={"grace_seconds": 0})),
    TenantAction("delete own API key", (P.KEYS_MANAGE,), 204,
                 lambda w, a: a.api.delete(f"/api-keys/{_own_fresh_key(w, a)}")),
    TenantAction("disable another user's API key", (P.KEYS_MANAGE,), 200,
                 lambda w, a: a.api.post(f"/api-keys/{_victim_fresh_key(w)}/disable")),
    TenantAction("delete another user's API key", (P.KEYS_MANAGE,), 204,
                 lambda w, a: a.api.delete(f"/api-keys/{_victim_fresh_key(w)}")),
    TenantAction("list vendor credentials", (P.CREDENTIALS_MANAGE,), 200, lambda w, a: a.api.get("/credentials")),
    TenantAction("create vendor credential", (P.CREDENTIALS_MANAGE,), 201, _create_credential),
    TenantAction("delete vendor credential", (P.CREDENTIALS_MANAGE,), 204, _delete_credential),
    TenantAction("list users", (P.USERS_MANAGE,), 200, lambda w, a: a.api.get("/users")),
    TenantAction("create user", (P.USERS_MANAGE,), 201, _create_user),
    TenantAction("see another user", (P.USERS_MANAGE,), 200, lambda w, a: a.api.get(f"/users/{w.victim.id}")),
    TenantAction("edit another user", (P.USERS_MANAGE,), 200,
                 lambda w, a: a.api.patch(f"/users/{w.victim.id}", json={"display_name": unique("Victim")})),
    TenantAction("see tenant quota", (P.TENANT_QUOTA_MANAGE,), 200, lambda w, a: a.api.get("/quota")),
    TenantAction("set tenant quota", (P.TENANT_QUOTA_MANAGE,), 200,
                 lambda w, a: a.api.put("/quota", json={"tokens": None, "cycle": "monthly"})),
    TenantAction("download monthly usage detail", (P.USAGE_EXPORT,), 200,
                 lambda w, a: a.api.get("/usage/export", params={"month": datetime.now(UTC).strftime("%Y-%m")})),
    TenantAction("list Gateway Admins", (P.GATEWAY_ADMINS_MANAGE,), 200, lambda w, a: a.api.get("/gateway-admins")),
    TenantAction("add Gateway Admin", (P.GATEWAY_ADMINS_MANAGE,), 201, _add_gateway_admin),
    TenantAction("remove Gateway Admin", (P.GATEWAY_ADMINS_MANAGE,), 204, _remove_gateway_admin),
]  # fmt: skip


@pytest.mark.parametrize("role", list(ROLE_SPECS))
@pytest.mark.parametrize("action", TENANT_ACTIONS, ids=lambda a: a.name.replace(" ", "-"))
def test_tenant_action(world: World, action: TenantAction, role: str) -> None:
    resp = action.run(world, world.people[role])
    if all(can(role, p) for p in action.perms):
        assert resp.status_code == action.ok, resp.text
        if resp.content and resp.headers.get("content-type", "").startswith("application/json"):
            assert "secret" not in resp.json() or action.name.startswith(("create API", "rotate", "create vendor"))
    else:
        assert_problem(resp, action.denied)


@pytest.mark.parametrize("role", list(ROLE_SPECS))
def test_see_own_api_keys(world: World, role: str) -> None:
    """Everyone sees their own keys (never a secret); only key managers see other people's."""
    person, mine = world.people[role], world.key_of[role]
    resp = person.api.get("/api-keys")
    if not can(role, P.KEYS_VIEW_OWN):
        assert_problem(resp, 403)
        return
    assert resp.status_code == 200, resp.text
    keys = resp.json()
    assert mine["id"] in {k["id"] for k in keys}
    assert all("secret" not in k and mine["secret"] not in str(k) for k in keys)
    owners = {k["owner"] for k in keys}
    assert (owners == {person.username}) == (not can(role, P.KEYS_MANAGE))
    one = person.api.ok("GET", f"/api-keys/{mine['id']}")
    assert one["owner"] == person.username and "secret" not in one


@pytest.mark.parametrize("role", list(ROLE_SPECS))
def test_usage_by_all_dimensions(world: World, role: str) -> None:
    """Everyone may ask; only those with USAGE_ALL get the whole tenant, the others their own usage."""
    resp = world.people[role].api.get("/usage", params={"dimension": "user"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["scoped_to_self"] is (not can(role, P.USAGE_ALL))


# ----------------------------------------------------------------------------- instance actions


INSTANCE_ROLES = {**{r: spec[0] for r, spec in ROLE_SPECS.items()}, "INSTANCE_ADMIN": INSTANCE_ADMIN_ROLES}


@dataclass(frozen=True)
class InstanceAction:
    name: str
    perms: tuple[Permission, ...]
    ok: int
    run: Callable[[World, Api], httpx.Response]

    def __repr__(self) -> str:
        return self.name


def _managed_model(w: World) -> dict[str, Any]:
    return dict(w.admin.ok("POST", "/managed-models", 201, json={
        "name": unique("managed"), "base_url": w.env.upstream.base_url, "model_version": "fake-model",
        "secret": "sk-managed-secret-1"}))  # fmt: skip


def _restore(w: World, a: Api) -> httpx.Response:
    m = _managed_model(w)
    w.ga.api.ok("DELETE", f"/endpoints/{m['name']}", 204, params={"confirm": "true"})
    return a.post(f"/managed-models/{m['id']}/restore", json={"tenant": TENANT})


INSTANCE_ACTIONS = [
    InstanceAction("list tenants", (P.TENANTS_MANAGE,), 200, lambda w, a: a.get("/tenants")),
    InstanceAction("create tenant", (P.TENANTS_MANAGE,), 201,
                   lambda w, a: a.post("/tenants", json={"name": unique("tenant"), "admin_username": "boss"})),
    InstanceAction("list managed models", (P.MANAGED_MODELS_MANAGE,), 200, lambda w, a: a.get("/managed-models")),
    InstanceAction("create managed model", (P.MANAGED_MODELS_MANAGE,), 201, lambda w, a: a.post(
        "/managed-models", json={"name": unique("managed"), "base_url": w.env.upstream.base_url,
                                 "model_version": "fake-model", "secret": "sk-managed-secret-2"})),
    InstanceAction("delete managed model", (P.MANAGED_MODELS_MANAGE,), 204,
                   lambda w, a: a.delete(f"/managed-models/{_managed_model(w)['id']}")),
    InstanceAction("restore managed endpoint", (P.MANAGED_MODELS_MANAGE,), 200, _restore),
]  # fmt: skip


@pytest.mark.parametrize("role", list(INSTANCE_ROLES))
@pytest.mark.parametrize("action", INSTANCE_ACTIONS, ids=lambda a: a.name.replace(" ", "-"))
def test_instance_action(world: World, action: InstanceAction, role: str) -> None:
    caller = world.admin if role == "INSTANCE_ADMIN" else world.people[role].api
    resp = action.run(world, caller)
    if all(has_permission(p, INSTANCE_ROLES[role]) for p in action.perms):
        assert resp.status_code == action.ok, resp.text
    else:
        assert_problem(resp, 403)


def test_without_credentials_everything_is_401(world: World) -> None:
    anonymous = Api(world.env.http, None)
    bogus = Api(world.env.http, "mgp-0000000000000000-not-a-real-token", "bogus")
    paths = [("GET", "/me"), ("GET", "/endpoints"), ("GET", f"/endpoints/{world.own}"), ("POST", "/endpoints"),
             ("GET", "/api-keys"), ("GET", "/audit-log"), ("GET", "/tenants"), ("DELETE", "/grants/1")]  # fmt: skip
    for caller in (anonymous, bogus):
        for method, path in paths:
            resp = caller.request(method, path, json={} if method == "POST" else None)
            assert_problem(resp, 401)
    assert re.search(r"personal access token|sign in", anonymous.get("/me").json()["detail"], re.I)


def test_a_console_session_needs_the_csrf_token_for_writes(world: World) -> None:
    ga = world.people["GATEWAY_ADMIN"]
    with httpx.Client(base_url=str(world.env.http.base_url), timeout=30) as browser:
        signed_in = browser.post("/api/v1/auth/login", json={"username": ga.username, "password": ga.password,
                                                              "tenant": TENANT})  # fmt: skip
        assert signed_in.status_code == 200
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        csrf = signed_in.json()["csrf_token"]
        assert browser.get("/api/v1/me").json()["authenticated_via"] == "session"
        body = {"name": unique("csrf"), "base_url": world.env.upstream.base_url, "model_version": "fake-model"}
        for headers in ({}, {"X-CSRF-Token": "forged"}):
            problem = assert_problem(browser.post("/api/v1/endpoints", json=body, headers=headers), 403)
            assert problem["code"] == "csrf_failed"
        assert_problem(browser.get(f"/api/v1/endpoints/{body['name']}"), 404)  # nothing was created
        assert browser.post("/api/v1/endpoints", json=body, headers={"X-CSRF-Token": csrf}).status_code == 201
        assert browser.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
        assert_problem(browser.get("/api/v1/me"), 401)
