"""The CLI forms of issue 3, exactly as scripts will use them: ``--json`` output with the ``id``
of every created object, secrets printed once, confirmation before deletions, and a clear error
message with a nonzero exit status on bad input.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from tests.api.conftest import Api, Env, chat, create_endpoint, login

TENANT = "cli-corp"


def _fails(env: Env, *args: str, says: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """A refused command: nonzero exit, a one-line reason on stderr, no traceback, no JSON on stdout."""
    res = env.gw.cli_raw(*args, input=input)
    assert res.returncode != 0, (args, res.stdout)
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", res.stderr).split())  # rich draws usage errors in a box
    assert says.lower() in text.lower(), (args, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    if res.stdout.strip():
        with pytest.raises(json.JSONDecodeError):
            json.loads(res.stdout)
    return res


@pytest.fixture(scope="module")
def corp(env: Env) -> dict[str, Any]:
    out = env.gw.cli("tenants", "create", TENANT, "--admin", "chief", "--json")
    return dict(out)


def test_tenants_create_prints_the_admins_password_once(env: Env, corp: dict[str, Any]) -> None:
    assert corp["id"] and corp["name"] == TENANT
    assert corp["admin"]["id"] and corp["admin"]["username"] == "chief"
    chief = Api(env.http, login(env.http, "chief", corp["admin"]["password"], TENANT), "chief")
    me = chief.ok("GET", "/me")
    assert (me["tenant_id"], set(me["tenant_roles"])) == (corp["id"], {"ACCOUNT_ADMIN", "GATEWAY_ADMIN"})
    listed = env.gw.cli("tenants", "list", "--json")
    assert {"id": corp["id"], "name": TENANT}.items() <= next(t for t in listed if t["name"] == TENANT).items()
    assert corp["admin"]["password"] not in json.dumps(listed)
    plain = env.gw.cli("tenants", "create", "cli-plain", "--admin", "boss")
    assert "cli-plain" in plain and "shown only this once" in plain
    _fails(env, "tenants", "create", TENANT, "--admin", "x", says="already exists")
    _fails(env, "tenants", "create", "bad name", "--admin", "x", says="tenant name")
    _fails(env, "tenants", "create", "okname", "--admin", "-x", says="username")
    _fails(env, "tenants", "create", "okname2", "--admin", "x", "--timezone", "Mars/Base", says="time zone")
    _fails(env, "tenants", "create", "okname3", says="--admin")


def test_users_create(env: Env, corp: dict[str, Any]) -> None:
    chosen = env.gw.cli("users", "create", "dana", "--password", "dana-password", "--tenant", TENANT, "--json")
    assert chosen["id"] and chosen["username"] == "dana" and "password" not in chosen
    assert login(env.http, "dana", "dana-password", TENANT)
    generated = env.gw.cli("users", "create", "eli", "--tenant", TENANT, "--json")
    assert generated["id"] and len(generated["password"]) >= 12
    assert login(env.http, "eli", generated["password"], TENANT)
    default_tenant = env.gw.cli("users", "create", "dana", "--password", "other-password", "--json")
    assert default_tenant["id"] != chosen["id"]  # usernames are unique per tenant only
    names = {u["username"] for u in env.gw.cli("users", "list", "--tenant", TENANT, "--json")}
    assert {"chief", "dana", "eli"} <= names
    _fails(env, "users", "create", "dana", "--tenant", TENANT, says="already exists")
    _fails(env, "users", "create", "no spaces", "--tenant", TENANT, says="letters, digits")
    _fails(env, "users", "create", "用户", "--tenant", TENANT, says="letters, digits")
    _fails(env, "users", "create", "shorty", "--password", "short", "--tenant", TENANT, says="8-256")
    _fails(env, "users", "create", "fay", "--tenant", "no-such-tenant", says="Tenant 'no-such-tenant' does not exist")


@pytest.fixture(scope="module")
def endpoints(env: Env, corp: dict[str, Any]) -> list[str]:
    names = ["corp-a", "corp-b", "corp-c"]
    for name in names:
        out = env.gw.create_endpoint(name, env.upstream.base_url, tenant=TENANT)
        assert out["id"] and out["name"] == name
    return names


def test_grants_create_on_several_endpoints_and_revoke(env: Env, corp: dict[str, Any], endpoints: list[str]) -> None:
    env.gw.cli("users", "create", "gus", "--tenant", TENANT, "--json")
    out = env.gw.cli("grants", "create", "--user", "gus", "--role", "ENDPOINT_OPERATOR", "--endpoint", endpoints[0],
                     "--endpoint", endpoints[1], "--tenant", TENANT, "--json")  # fmt: skip
    assert [(g["endpoint"], g["role"], g["username"]) for g in out] == [
        (endpoints[0], "ENDPOINT_OPERATOR", "gus"), (endpoints[1], "ENDPOINT_OPERATOR", "gus")]
    assert all(g["id"] for g in out)
    listed = env.gw.cli("grants", "list", "--user", "gus", "--tenant", TENANT, "--json")
    assert {g["id"] for g in listed} == {g["id"] for g in out}
    by_endpoint = env.gw.cli("grants", "list", "--endpoint", endpoints[1], "--tenant", TENANT, "--json")
    assert [g["username"] for g in by_endpoint] == ["gus"]

    res = env.gw.cli_raw("grants", "revoke", "--user", "gus", "--endpoint", endpoints[0], "--tenant", TENANT)
    assert res.returncode == 0, res.stderr
    listed = env.gw.cli("grants", "list", "--user", "gus", "--tenant", TENANT, "--json")
    assert [g["endpoint"] for g in listed] == [endpoints[1]]

    _fails(env, "grants", "revoke", "--user", "gus", "--endpoint", endpoints[0], "--tenant", TENANT,
           says="has no role")  # fmt: skip
    _fails(env, "grants", "create", "--user", "gus", "--role", "OWNER", "--endpoint", endpoints[2],
           "--tenant", TENANT, says="ENDPOINT_VIEWER")  # fmt: skip
    _fails(env, "grants", "create", "--user", "gus", "--role", "ENDPOINT_USER", "--endpoint", endpoints[2],
           "--endpoint", "no-such-endpoint", "--tenant", TENANT,
           says="Endpoint 'no-such-endpoint' does not exist")  # fmt: skip
    _fails(env, "grants", "create", "--user", "nobody", "--role", "ENDPOINT_USER", "--endpoint", endpoints[2],
           "--tenant", TENANT, says="'nobody' does not exist")  # fmt: skip
    # all or nothing: the valid endpoint of the refused command was not granted
    assert [g["endpoint"] for g in env.gw.cli("grants", "list", "--user", "gus", "--tenant", TENANT, "--json")] == [
        endpoints[1]]


def test_keys_disable_enable_delete_with_confirmation(env: Env, corp: dict[str, Any], endpoints: list[str]) -> None:
    gw = env.gw
    gw.cli("users", "create", "hal", "--tenant", TENANT, "--json")
    gw.cli("grants", "create", "--user", "hal", "--role", "ENDPOINT_USER", "--endpoint", endpoints[2],
           "--tenant", TENANT, "--json")  # fmt: skip
    key = gw.create_key("hal", tenant=TENANT, name="hal-key")
    assert key["id"] and key["secret"].startswith("mg-") and key["owner"] == "hal"

    def status() -> str:
        rows = gw.cli("keys", "list", "--owner", "hal", "--tenant", TENANT, "--json")
        return str(next(k["status"] for k in rows if k["id"] == key["id"]))

    assert gw.cli_raw("keys", "disable", str(key["id"])).returncode == 0
    assert status() == "disabled"
    assert gw.cli_raw("keys", "enable", str(key["id"])).returncode == 0
    assert status() == "active"
    gw.wait_synced()
    assert chat(env.http, key["secret"], endpoints[2]).status_code == 200

    refused = gw.cli_raw("keys", "delete", str(key["id"]), input="n\n")
    assert refused.returncode != 0 and "Delete API key" in refused.stdout and "Nothing deleted" in refused.stdout
    assert status() == "active"
    no_answer = gw.cli_raw("keys", "delete", str(key["id"]), input="")
    assert no_answer.returncode != 0 and status() == "active"
    confirmed = gw.cli_raw("keys", "delete", str(key["id"]), input="y\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert key["id"] not in {k["id"] for k in gw.cli("keys", "list", "--tenant", TENANT, "--json")}
    other = gw.create_key("hal", tenant=TENANT)
    assert gw.cli_raw("keys", "delete", str(other["id"]), "--yes").returncode == 0
    assert other["id"] not in {k["id"] for k in gw.cli("keys", "list", "--tenant", TENANT, "--json")}

    for verb in ("disable", "delete", "rotate"):
        extra = ("--yes",) if verb == "delete" else ()
        _fails(env, "keys", verb, "987654", *extra, says="API key 987654 does not exist")
    _fails(env, "keys", "disable", "not-a-number", says="Invalid value for 'key_id'")


def test_keys_rotate_with_grace(env: Env, corp: dict[str, Any], endpoints: list[str]) -> None:
    gw = env.gw
    gw.cli("users", "create", "ivy", "--tenant", TENANT, "--json")
    gw.cli("grants", "create", "--user", "ivy", "--role", "ENDPOINT_USER", "--endpoint", endpoints[2],
           "--tenant", TENANT, "--json")  # fmt: skip
    key = gw.create_key("ivy", tenant=TENANT)
    rotated = gw.cli("keys", "rotate", str(key["id"]), "--grace", "30", "--json")
    assert rotated["id"] == key["id"] and rotated["grace_seconds"] == 30
    assert rotated["secret"].startswith("mg-") and rotated["secret"] != key["secret"]
    gw.wait_synced()
    assert chat(env.http, key["secret"], endpoints[2]).status_code == 200
    assert chat(env.http, rotated["secret"], endpoints[2]).status_code == 200
    plain = gw.cli("keys", "rotate", str(key["id"]))
    assert "New secret" in plain and "shown only this once" in plain
    gw.wait_synced()
    assert chat(env.http, rotated["secret"], endpoints[2]).status_code == 401
    _fails(env, "keys", "rotate", str(key["id"]), "--grace", "-5", says="grace")


def test_tokens_create(env: Env, corp: dict[str, Any]) -> None:
    out = env.gw.cli("tokens", "create", "--user", "chief", "--tenant", TENANT, "--json")
    assert out["id"] and out["secret"].startswith("mgp-") and out["user"] == "chief"
    me = Api(env.http, out["secret"]).ok("GET", "/me")
    assert (me["username"], me["tenant_id"], me["authenticated_via"]) == ("chief", corp["id"], "token")
    _fails(env, "tokens", "create", "--user", "nobody", "--tenant", TENANT, says="'nobody' does not exist")
    _fails(env, "tokens", "create", "--user", "chief", "--tenant", "no-such-tenant", says="does not exist")


def test_endpoints_create_json_and_errors(env: Env) -> None:
    out = env.gw.cli("endpoints", "create", "cli-ep", "--base-url", env.upstream.base_url, "--model-version",
                     "fake-model", "--json")  # fmt: skip
    assert out["id"] and out["name"] == "cli-ep"
    _fails(env, "endpoints", "create", "cli ep", "--base-url", env.upstream.base_url, "--model-version", "m",
           says="Invalid endpoint name")  # fmt: skip
    _fails(env, "endpoints", "create", "cli-ep", "--base-url", env.upstream.base_url, "--model-version", "m",
           says="already exists")  # fmt: skip
    _fails(env, "endpoints", "create", "cli-ep2", "--base-url", "http://169.254.169.254/", "--model-version", "m",
           says="169.254.169.254")  # fmt: skip
    # nothing of the refused commands was stored
    names = [e["name"] for e in env.admin.ok("GET", "/endpoints")]
    assert names.count("cli-ep") == 1 and "cli-ep2" not in names
    assert create_endpoint(env.admin, env.upstream, "cli-ep2")["name"] == "cli-ep2"
