"""The audit trail: every write of the admin API and of the CLI leaves exactly one record (actor,
time, action, target, before/after); no secret is ever shown again after creation: not in any
response, not in the audit log, not in the server's log, not in clear in the database.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
    make_gateway_admin,
    unique,
)  # fmt: skip


@dataclass
class Secrets:
    """Every secret the tests saw being created (shown once) — none may ever be seen again."""

    values: set[str] = field(default_factory=set)

    def add(self, value: str) -> str:
        assert value and len(value) >= 8
        self.values.add(value)
        if value.startswith(("mg-", "mgp-")):  # the secret part of a key, without its public id
            self.values.add(value.split("-", 2)[2])
        return value

    def found_in(self, text: str) -> set[str]:
        return {s for s in self.values if s in text}


@pytest.fixture(scope="module")
def secrets_seen(env: Env) -> Secrets:
    seen = Secrets()
    seen.add(env.admin.token or "")
    assert env.gw.admin_password
    seen.add(env.gw.admin_password)
    return seen


def _now() -> datetime:
    return datetime.now(UTC)


def _latest(gw: Any, n: int) -> list[dict[str, Any]]:
    """The newest ``n`` audit records straight from the database, oldest first."""
    cols = ("id", "ts", "tenant_id", "actor_id", "actor_name", "action", "target_type", "target_id", "target_name",
            "before", "after")  # fmt: skip
    rows = gw.query(f"SELECT {', '.join(cols)} FROM audit_log ORDER BY id DESC LIMIT {int(n)}")
    records = [dict(zip(cols, r, strict=True)) for r in reversed(rows)]
    for r in records:  # JSON columns come back as text
        r["before"], r["after"] = (json.loads(v) if isinstance(v, str) else v for v in (r["before"], r["after"]))
    return records


def _parse_ts(value: Any) -> datetime:
    ts = datetime.fromisoformat(str(value))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Write:
    name: str
    do: Callable[[], Any]
    actions: tuple[str, ...]  # the action of each record it must leave, in order
    target: str | None = None  # the target name of the (last) record
    before: bool = False
    after: bool = False


def _check_writes(env: Env, writes: list[Write], actor: str) -> None:
    for w in writes:
        count = audit_count(env.gw)
        started = _now() - timedelta(seconds=1)
        w.do()
        ended = _now() + timedelta(seconds=1)
        assert audit_count(env.gw) == count + len(w.actions), w.name
        records = _latest(env.gw, len(w.actions))
        assert [r["action"] for r in records] == list(w.actions), w.name
        for r in records:
            assert r["actor_name"] == actor, (w.name, r)
            assert started <= _parse_ts(r["ts"]) <= ended, (w.name, r)
            assert r["target_type"] and (r["target_id"] or r["target_name"]), (w.name, r)
        last = records[-1]
        if w.target is not None:
            assert last["target_name"] == w.target, (w.name, last)
        assert (last["before"] is not None) == w.before, (w.name, last)
        assert (last["after"] is not None) == w.after, (w.name, last)


def test_every_api_write_leaves_exactly_one_record(env: Env, secrets_seen: Secrets) -> None:
    admin, up = env.admin, env.upstream
    state: dict[str, Any] = {}
    ep_name, copy_name, user_name = unique("audited"), unique("audited-copy"), unique("audited-user")

    def put(key: str, value: Any) -> Any:
        state[key] = value
        return value

    def create_credential() -> None:
        secret = secrets_seen.add("sk-audit-" + unique("vendor"))
        put("cred", admin.ok("POST", "/credentials", 201, json={"name": unique("cred"), "secret": secret}))

    def create_user() -> None:
        out = put("user", admin.ok("POST", "/users", 201, json={"username": user_name}))
        secrets_seen.add(out["password"])  # generated, shown once

    def change_password() -> None:
        password = secrets_seen.add("new-" + unique("password"))
        admin.ok("PATCH", f"/users/{state['user']['id']}", 200, json={"password": password})

    def create_key() -> None:
        out = put("key", admin.ok("POST", "/api-keys", 201, json={"owner": user_name, "name": "audited-key"}))
        secrets_seen.add(out["secret"])

    def rotate_key() -> None:
        out = admin.ok("POST", f"/api-keys/{state['key']['id']}/rotate", 200, json={"grace_seconds": 60})
        secrets_seen.add(out["secret"])

    def create_token() -> None:
        secrets_seen.add(admin.ok("POST", "/me/tokens", 201, json={"name": "audited-token"})["secret"])

    def create_managed() -> None:
        secret = secrets_seen.add("sk-managed-" + unique("secret"))
        body = {"name": unique("managed"), "base_url": up.base_url, "model_version": "fake-model", "secret": secret}
        put("managed", admin.ok("POST", "/managed-models", 201, json=body))

    def create_tenant() -> None:
        out = admin.ok("POST", "/tenants", 201, json={"name": unique("tenant"), "admin_username": "boss"})
        secrets_seen.add(out["admin"]["password"])

    writes = [
        Write("create credential", create_credential, ("credential.create",), after=True),
        Write("create endpoint",
              lambda: put("ep", create_endpoint(admin, up, ep_name, credential_id=state["cred"]["id"])),
              ("endpoint.create",), ep_name, after=True),
        Write("edit endpoint", lambda: admin.ok("PATCH", f"/endpoints/{ep_name}", json={"rpm": 77, "description": "d"}),
              ("endpoint.update",), ep_name, before=True, after=True),
        Write("copy endpoint", lambda: admin.ok("POST", f"/endpoints/{ep_name}/copy", 201, json={"name": copy_name}),
              ("endpoint.create",), copy_name, after=True),
        Write("delete endpoint", lambda: admin.ok("DELETE", f"/endpoints/{copy_name}", 204, params={"confirm": "true"}),
              ("endpoint.delete",), copy_name, before=True),
        Write("create user", create_user, ("user.create",), user_name, after=True),
        Write("edit user", lambda: admin.ok("PATCH", f"/users/{state['user']['id']}", json={"display_name": "Aud"}),
              ("user.update",), user_name, before=True, after=True),
        Write("change a password", change_password, ("user.update",), user_name, before=True, after=True),
        Write("add Gateway Admin",
              lambda: admin.ok("POST", "/gateway-admins", 201, json={"user_id": state["user"]["id"]}),
              ("gateway_admin.add",), user_name, after=True),
        Write("remove Gateway Admin", lambda: admin.ok("DELETE", f"/gateway-admins/{state['user']['id']}", 204),
              ("gateway_admin.remove",), user_name, before=True),
        Write("grant", lambda: put("grant", admin.ok("POST", "/grants", 201, json={
            "username": user_name, "role": "ENDPOINT_USER", "endpoints": [ep_name]})), ("grant.create",), ep_name,
              after=True),
        Write("revoke", lambda: admin.ok("DELETE", f"/grants/{state['grant'][0]['id']}", 204), ("grant.revoke",),
              ep_name, before=True),
        Write("create API key", create_key, ("api_key.create",), "audited-key", after=True),
        Write("disable API key", lambda: admin.ok("POST", f"/api-keys/{state['key']['id']}/disable"),
              ("api_key.disable",), "audited-key", before=True, after=True),
        Write("enable API key", lambda: admin.ok("POST", f"/api-keys/{state['key']['id']}/enable"),
              ("api_key.enable",), "audited-key", before=True, after=True),
        Write("rotate API key", rotate_key, ("api_key.rotate",), "audited-key", after=True),
        Write("delete API key", lambda: admin.ok("DELETE", f"/api-keys/{state['key']['id']}", 204),
              ("api_key.delete",), "audited-key", before=True),
        Write("delete endpoint using the credential", lambda: admin.ok(
            "DELETE", f"/endpoints/{ep_name}", 204, params={"confirm": "true"}), ("endpoint.delete",), ep_name,
              before=True),
        Write("delete credential", lambda: admin.ok("DELETE", f"/credentials/{state['cred']['id']}", 204),
              ("credential.delete",), before=True),
        Write("set tenant quota", lambda: admin.ok("PUT", "/quota", json={"tokens": 10**9, "cycle": "monthly"}),
              ("quota.set",), "default", before=True, after=True),
        Write("delete user", lambda: admin.ok("DELETE", f"/users/{state['user']['id']}", 204), ("user.delete",),
              user_name, before=True),
        Write("create personal access token", create_token, ("token.create",), "admin", after=True),
        Write("create tenant", create_tenant, ("tenant.create",), after=True),
        Write("create managed model", create_managed, ("managed_model.create",), after=True),
        Write("delete managed endpoint in the tenant", lambda: admin.ok(
            "DELETE", f"/endpoints/{state['managed']['name']}", 204, params={"confirm": "true"}), ("endpoint.delete",),
              before=True),
        Write("restore managed endpoint", lambda: admin.ok(
            "POST", f"/managed-models/{state['managed']['id']}/restore", json={"tenant": "default"}),
              ("endpoint.restore",), after=True),
        Write("delete managed model", lambda: admin.ok("DELETE", f"/managed-models/{state['managed']['id']}", 204),
              ("managed_model.delete",), before=True),
    ]  # fmt: skip
    _check_writes(env, writes, "admin")
    # the instance-level records (managed-model catalog) are queryable by the Instance Admin
    catalog = admin.ok("GET", "/audit-log", params={"action": "managed_model."})["items"]
    assert [r["action"] for r in catalog][:2] == ["managed_model.delete", "managed_model.create"]


def test_a_grant_on_several_endpoints_leaves_one_record_per_endpoint(env: Env) -> None:
    a, b = create_endpoint(env.admin, env.upstream), create_endpoint(env.admin, env.upstream)
    person = add_person(env.admin, sign_in=False)
    count = audit_count(env.gw)
    env.admin.ok("POST", "/grants", 201, json={"username": person.username, "role": "ENDPOINT_VIEWER",
                                               "endpoints": [a["name"], b["name"]]})  # fmt: skip
    records = _latest(env.gw, 2)
    assert audit_count(env.gw) == count + 2
    assert [(r["action"], r["target_name"]) for r in records] == [("grant.create", a["name"]),
                                                                   ("grant.create", b["name"])]  # fmt: skip


def test_reads_and_refused_writes_leave_no_record(env: Env) -> None:
    ep = create_endpoint(env.admin, env.upstream)
    count = audit_count(env.gw)
    for path in ("/endpoints", f"/endpoints/{ep['name']}", "/users", "/api-keys", "/credentials", "/grants",
                 "/gateway-admins", "/audit-log", "/vendors", "/me", "/quota"):  # fmt: skip
        env.admin.ok("GET", path)
    assert_problem(env.admin.post("/endpoints", json={"name": "bad name", "base_url": env.upstream.base_url,
                                                      "model_version": "m"}), 400, "name")  # fmt: skip
    assert_problem(env.admin.delete(f"/endpoints/{ep['name']}"), 400, "confirm")
    assert_problem(env.admin.delete("/gateway-admins/1"), 400)  # oneself
    assert audit_count(env.gw) == count


def test_every_cli_write_leaves_exactly_one_record(env: Env, secrets_seen: Secrets) -> None:
    gw, up = env.gw, env.upstream
    ep_a, ep_b, tenant = unique("cli-a"), unique("cli-b"), unique("cli-tenant")
    state: dict[str, Any] = {}

    def cli(*args: str) -> Any:
        return gw.cli(*args)

    def create_endpoints() -> None:
        cli("endpoints", "create", ep_a, "--base-url", up.base_url, "--model-version", "fake-model",
            "--api-key", secrets_seen.add("sk-cli-" + unique("vendor")), "--json")  # fmt: skip

    def create_user() -> None:
        state["user"] = cli("users", "create", "cli-user", "--json")
        secrets_seen.add(state["user"]["password"])

    def create_key() -> None:
        state["key"] = cli("keys", "create", "--owner", "cli-user", "--name", "cli-key", "--json")
        secrets_seen.add(state["key"]["secret"])

    def rotate_key() -> None:
        secrets_seen.add(cli("keys", "rotate", str(state["key"]["id"]), "--grace", "30", "--json")["secret"])

    def create_tenant() -> None:
        secrets_seen.add(cli("tenants", "create", tenant, "--admin", "cli-boss", "--json")["admin"]["password"])

    writes = [
        Write("endpoints create --api-key", create_endpoints, ("credential.create", "endpoint.create"), ep_a,
              after=True),
        Write("users create", create_user, ("user.create",), "cli-user", after=True),
        Write("endpoints create (second)", lambda: cli("endpoints", "create", ep_b, "--base-url", up.base_url,
              "--model-version", "fake-model", "--json"), ("endpoint.create",), ep_b, after=True),
        Write("grants create", lambda: cli("grants", "create", "--user", "cli-user", "--role", "ENDPOINT_USER",
              "--endpoint", ep_a, "--endpoint", ep_b, "--json"), ("grant.create", "grant.create"), ep_b, after=True),
        Write("grants revoke", lambda: cli("grants", "revoke", "--user", "cli-user", "--endpoint", ep_a),
              ("grant.revoke",), ep_a, before=True),
        Write("keys create", create_key, ("api_key.create",), "cli-key", after=True),
        Write("keys disable", lambda: cli("keys", "disable", str(state["key"]["id"])), ("api_key.disable",),
              "cli-key", before=True, after=True),
        Write("keys enable", lambda: cli("keys", "enable", str(state["key"]["id"])), ("api_key.enable",),
              "cli-key", before=True, after=True),
        Write("keys rotate", rotate_key, ("api_key.rotate",), "cli-key", after=True),
        Write("keys delete", lambda: cli("keys", "delete", str(state["key"]["id"]), "--yes"), ("api_key.delete",),
              "cli-key", before=True),
        Write("tokens create", lambda: secrets_seen.add(cli("tokens", "create", "--user", "cli-user", "--json")[
              "secret"]), ("token.create",), "cli-user", after=True),
        Write("tenants create", create_tenant, ("tenant.create",), tenant, after=True),
    ]  # fmt: skip
    _check_writes(env, writes, "cli")
    # and the tenant's Gateway Admins find them in the audit log
    found = env.admin.ok("GET", "/audit-log", params={"actor": "cli", "page_size": 500})["items"]
    assert {"endpoint.create", "grant.create", "grant.revoke", "api_key.rotate"} <= {r["action"] for r in found}


def test_filters_and_paging(env: Env) -> None:
    auditor = add_person(env.admin, "auditor")
    make_gateway_admin(env.admin, auditor)
    names = [create_endpoint(auditor.api, env.upstream, unique("filtered"))["name"] for _ in range(3)]
    for i in range(4):
        auditor.api.ok("PATCH", f"/endpoints/{names[0]}", json={"description": f"edit {i}"})
    everything = auditor.api.ok("GET", "/audit-log", params={"actor": "auditor", "page_size": 500})
    assert {r["action"] for r in everything["items"]} == {"auth.login", "token.create", "endpoint.create",
                                                         "endpoint.update"}  # fmt: skip
    mine = auditor.api.ok("GET", "/audit-log", params={"actor": "auditor", "action": "endpoint", "page_size": 500})
    assert mine["total"] == 7 == len(mine["items"])  # 3 creates and 4 edits, newest first
    assert all(r["actor"] == "auditor" for r in mine["items"])
    assert [r["id"] for r in mine["items"]] == sorted((r["id"] for r in mine["items"]), reverse=True)

    by_action = env.admin.ok("GET", "/audit-log", params={"actor": "auditor", "action": "endpoint.update"})
    assert by_action["total"] == 4 and {r["action"] for r in by_action["items"]} == {"endpoint.update"}
    prefix = env.admin.ok("GET", "/audit-log", params={"actor": "auditor", "action": "endpoint.c"})
    assert prefix["total"] == 3 and {r["action"] for r in prefix["items"]} == {"endpoint.create"}
    by_target = env.admin.ok("GET", "/audit-log", params={"target": names[0]})
    assert by_target["total"] == 5 and {r["target_name"] for r in by_target["items"]} == {names[0]}
    by_type = env.admin.ok("GET", "/audit-log", params={"actor": "auditor", "target_type": "user"})
    assert {r["action"] for r in by_type["items"]} == {"auth.login", "token.create"}
    assert env.admin.ok("GET", "/audit-log", params={"actor": "auditor", "target_type": "api_key"})["total"] == 0

    ordered = sorted(mine["items"], key=lambda r: r["id"])
    since, until = ordered[2]["ts"], ordered[5]["ts"]  # [since, until): records 2, 3 and 4
    window = env.admin.ok("GET", "/audit-log", params={"actor": "auditor", "action": "endpoint", "since": since,
                                                          "until": until})  # fmt: skip
    assert [r["id"] for r in window["items"]] == [r["id"] for r in ordered[2:5]][::-1]
    later = env.admin.ok("GET", "/audit-log", params={"actor": "auditor", "action": "endpoint",
                                                         "since": ordered[-1]["ts"]})  # fmt: skip
    assert [r["id"] for r in later["items"]] == [ordered[-1]["id"]]

    pages = [env.admin.ok("GET", "/audit-log", params={"actor": "auditor", "action": "endpoint", "page": p,
                                                      "page_size": 3})
             for p in (1, 2, 3, 4)]  # fmt: skip
    assert [len(p["items"]) for p in pages] == [3, 3, 1, 0]
    assert all(p["total"] == 7 and p["page_size"] == 3 for p in pages)
    assert [r["id"] for p in pages for r in p["items"]] == [r["id"] for r in mine["items"]]

    for params, name in (({"page": 0}, "page"), ({"page_size": 100_000}, "page_size"),
                         ({"since": "last tuesday"}, "since"), ({"page": "two"}, "page")):  # fmt: skip
        assert_problem(env.admin.get("/audit-log", params=params), 400, name)


def test_before_and_after_show_what_changed(env: Env) -> None:
    name = create_endpoint(env.admin, env.upstream, rpm=10, description="first")["name"]
    env.admin.ok("PATCH", f"/endpoints/{name}", json={"rpm": 20, "description": "second", "tpm": None})
    record = env.admin.ok("GET", "/audit-log", params={"target": name, "action": "endpoint.update"})["items"][0]
    assert record["before"] == {"rpm": 10, "description": "first"}
    assert record["after"] == {"rpm": 20, "description": "second"}
    assert record["actor"] == "admin" and record["target_type"] == "endpoint"


def test_no_secret_is_ever_shown_again(env: Env, secrets_seen: Secrets) -> None:
    """Runs after the tests above (same module, same worker): every secret they created is checked."""
    admin, up = env.admin, env.upstream
    vendor_secret = secrets_seen.add("sk-never-again-" + unique("vendor"))
    cred = admin.ok("POST", "/credentials", 201, json={"name": unique("cred"), "secret": vendor_secret})
    assert cred["secret"] == "****" + vendor_secret[-4:]
    ep = create_endpoint(admin, up, credential_id=cred["id"])
    person = add_person(admin)
    secrets_seen.add(person.password)
    secrets_seen.add(person.api.token or "")
    key = secrets_seen.add(admin.ok("POST", "/api-keys", 201, json={"owner": person.username})["secret"])
    admin.ok("POST", "/grants", 201, json={"username": person.username, "role": "ENDPOINT_USER",
                                           "endpoints": [ep["name"]]})  # fmt: skip
    up.clear()
    assert chat(env.http, key, ep["name"]).status_code == 200
    assert up.requests[-1].headers["authorization"] == f"Bearer {vendor_secret}"  # it is really used ...
    assert admin.ok("POST", f"/endpoints/{ep['name']}/test")["success"] is True
    # ... and failures are logged, still without secrets
    bad = create_endpoint(admin, up, model_version="fail-500", credential_id=cred["id"])
    admin.ok("POST", "/grants", 201, json={"username": person.username, "role": "ENDPOINT_USER",
                                           "endpoints": [bad["name"]]})  # fmt: skip
    assert chat(env.http, key, bad["name"]).status_code == 502
    assert_problem(Api(env.http, key).get("/me"), 401)  # an API key is not an admin token
    assert_problem(env.http.post("/api/v1/auth/login", json={"username": person.username, "password": "wrong-pw"}),
                   401)  # fmt: skip

    reads = ["/me", "/endpoints", f"/endpoints/{ep['name']}", f"/endpoints/{ep['name']}/history",
             f"/endpoints/{ep['name']}/examples", "/credentials", "/api-keys", "/users", f"/users/{person.id}",
             "/grants", "/gateway-admins", "/managed-models", "/tenants", "/quota", "/vendors"]  # fmt: skip
    pages = [admin.get(path).text for path in reads]
    total = admin.ok("GET", "/audit-log", params={"page_size": 500})["total"]
    pages += [admin.get("/audit-log", params={"page": p, "page_size": 500}).text for p in range(1, total // 500 + 2)]
    pages += [person.api.get(path).text for path in ("/me", "/api-keys", "/endpoints")]
    for text in pages:
        assert secrets_seen.found_in(text) == set()
    assert secrets_seen.found_in(str(env.gw.query("SELECT * FROM audit_log"))) == set()
    assert "[REDACTED]" in str(env.gw.query("SELECT after FROM audit_log WHERE action = 'credential.create'"))
    log = env.gw.log_text()
    assert log, "the server log is empty: nothing was checked"
    assert secrets_seen.found_in(log) == set()
    # at rest: vendor secrets encrypted, keys, tokens and passwords only as digests/hashes
    with sqlite3.connect(env.gw.data_dir / "modelgate.db") as db:
        dump = "\n".join(db.iterdump())
    assert secrets_seen.found_in(dump) == set()
    assert len(secrets_seen.values) >= 20
