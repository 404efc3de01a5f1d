"""Revocations take effect on the very next data-plane request (DESIGN.md §2, §3).

This module's gateway polls the configuration version only once a second, so a change made
through the admin API must reach the data plane through the in-process path — a stale snapshot
would still be serving the next request. A change made by the CLI (another process) is picked up
by the poll: the tests wait for it with ``wait_synced()`` and then expect it in force.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
import pytest

from tests.api.conftest import Env, Person, add_person, assert_problem, chat, create_endpoint, create_key, start_env
from tests.fakes.upstream import FakeUpstream


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Env]:
    yield from start_env(tmp_path_factory.mktemp("revocation"), upstream,
                         extra_env={"MODELGATE_SNAPSHOT_POLL_INTERVAL": "1.0"})  # fmt: skip


@dataclass
class Client:
    """A user with an ENDPOINT_USER grant on one endpoint, and the calls they make."""

    env: Env
    person: Person
    endpoint: str

    def key(self, **fields: Any) -> dict[str, Any]:
        return create_key(self.env.admin, self.person.username, **fields)

    def call(self, secret: str, times: int = 3) -> list[httpx.Response]:
        """The next ``times`` requests (the first of which must already see the change)."""
        return [chat(self.env.http, secret, self.endpoint) for _ in range(times)]


def _client(env: Env) -> Client:
    ep = create_endpoint(env.admin, env.upstream)
    person = add_person(env.admin)
    env.admin.ok("POST", "/grants", 201, json={"username": person.username, "role": "ENDPOINT_USER",
                                               "endpoints": [ep["name"]]})  # fmt: skip
    return Client(env, person, ep["name"])


def _all(responses: list[httpx.Response], status: int, code: str | None = None) -> None:
    for resp in responses:
        assert resp.status_code == status, resp.text
        if code is not None:
            assert resp.json()["error"]["code"] == code, resp.text


def test_key_disable_and_enable(env: Env) -> None:
    c = _client(env)
    key = c.key()
    _all(c.call(key["secret"], 1), 200)
    env.admin.ok("POST", f"/api-keys/{key['id']}/disable")
    _all(c.call(key["secret"]), 401, "api_key_disabled")
    env.admin.ok("POST", f"/api-keys/{key['id']}/enable")
    _all(c.call(key["secret"]), 200)


def test_key_delete(env: Env) -> None:
    c = _client(env)
    key = c.key()
    _all(c.call(key["secret"], 1), 200)
    env.admin.ok("DELETE", f"/api-keys/{key['id']}", 204)
    _all(c.call(key["secret"]), 401, "invalid_api_key")
    assert_problem(env.admin.get(f"/api-keys/{key['id']}"), 404)


def test_key_expiry(env: Env) -> None:
    c = _client(env)
    expires = datetime.now(UTC) + timedelta(seconds=1.5)
    key = c.key(expires_at=expires.isoformat())
    _all(c.call(key["secret"], 1), 200)
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)  # the clock is the condition
    _all(c.call(key["secret"]), 401, "api_key_expired")
    expired = env.admin.ok("GET", "/api-keys", params={"status": "expired"})
    assert key["id"] in {k["id"] for k in expired}


def test_grant_revoke(env: Env) -> None:
    c = _client(env)
    key = c.key()
    _all(c.call(key["secret"], 1), 200)
    grant = env.admin.ok("GET", "/grants", params={"user": c.person.username})[0]
    env.admin.ok("DELETE", f"/grants/{grant['id']}", 204)
    _all(c.call(key["secret"]), 403, "permission_denied")
    models = env.http.get("/v1/models", headers={"Authorization": f"Bearer {key['secret']}"}).json()["data"]
    assert c.endpoint not in {m["id"] for m in models}
    env.admin.ok("POST", "/grants", 201, json={"username": c.person.username, "role": "ENDPOINT_USER",
                                               "endpoints": [c.endpoint]})  # fmt: skip
    _all(c.call(key["secret"]), 200)


def test_grant_downgrade_to_viewer(env: Env) -> None:
    c = _client(env)
    key = c.key()
    env.admin.ok("POST", "/grants", 201, json={"username": c.person.username, "role": "ENDPOINT_VIEWER",
                                               "endpoints": [c.endpoint]})  # fmt: skip
    _all(c.call(key["secret"]), 403, "permission_denied")


def test_user_deactivation(env: Env) -> None:
    c = _client(env)
    key = c.key()
    _all(c.call(key["secret"], 1), 200)
    assert c.person.api.get("/me").status_code == 200
    env.admin.ok("PATCH", f"/users/{c.person.id}", json={"is_active": False})
    _all(c.call(key["secret"]), 401)
    assert_problem(c.person.api.get("/me"), 401)  # their personal access token stops too
    env.admin.ok("PATCH", f"/users/{c.person.id}", json={"is_active": True})
    _all(c.call(key["secret"]), 200)


def test_user_deletion(env: Env) -> None:
    c = _client(env)
    key = c.key()
    _all(c.call(key["secret"], 1), 200)
    env.admin.ok("DELETE", f"/users/{c.person.id}", 204)
    _all(c.call(key["secret"]), 401)


def test_endpoint_delete(env: Env) -> None:
    c = _client(env)
    key = c.key()
    _all(c.call(key["secret"], 1), 200)
    env.admin.ok("DELETE", f"/endpoints/{c.endpoint}", 204, params={"confirm": "true"})
    _all(c.call(key["secret"]), 404, "model_not_found")


def test_rotation_without_grace_stops_the_old_secret_at_once(env: Env) -> None:
    c = _client(env)
    key = c.key()
    new = env.admin.ok("POST", f"/api-keys/{key['id']}/rotate", json={"grace_seconds": 0})
    assert new["id"] == key["id"] and new["secret"] != key["secret"]
    _all(c.call(key["secret"]), 401, "invalid_api_key")
    _all(c.call(new["secret"]), 200)
    # no body at all means no grace either
    newer = env.admin.ok("POST", f"/api-keys/{key['id']}/rotate")
    _all(c.call(new["secret"]), 401)
    _all(c.call(newer["secret"]), 200)


def test_rotation_with_grace_keeps_the_old_secret_for_the_period(env: Env) -> None:
    c = _client(env)
    key = c.key()
    started = time.monotonic()
    new = env.admin.ok("POST", f"/api-keys/{key['id']}/rotate", json={"grace_seconds": 2})
    assert new["grace_seconds"] == 2
    _all(c.call(key["secret"], 2) + c.call(new["secret"], 2), 200)
    assert time.monotonic() - started < 2, "too slow to observe the grace period"
    time.sleep(max(0.0, 2.05 - (time.monotonic() - started)))  # the clock is the condition
    _all(c.call(key["secret"]), 401)
    _all(c.call(new["secret"]), 200)


def test_cli_changes_are_in_force_once_the_poll_catches_them(env: Env) -> None:
    gw = env.gw
    c = _client(env)
    key = c.key()
    gw.cli("keys", "disable", str(key["id"]))
    gw.wait_synced()
    _all(c.call(key["secret"]), 401, "api_key_disabled")
    gw.cli("keys", "enable", str(key["id"]))
    gw.wait_synced()
    _all(c.call(key["secret"]), 200)

    rotated = gw.cli("keys", "rotate", str(key["id"]), "--grace", "60", "--json")
    gw.wait_synced()
    _all(c.call(key["secret"], 1) + c.call(rotated["secret"], 1), 200)
    again = gw.cli("keys", "rotate", str(key["id"]), "--json")  # grace 0: both older secrets stop
    gw.wait_synced()
    _all(c.call(key["secret"], 1) + c.call(rotated["secret"], 1), 401)
    _all(c.call(again["secret"]), 200)

    gw.cli("grants", "revoke", "--user", c.person.username, "--endpoint", c.endpoint)
    gw.wait_synced()
    _all(c.call(again["secret"]), 403, "permission_denied")

    gw.cli("keys", "delete", str(key["id"]), "--yes")
    gw.wait_synced()
    _all(c.call(again["secret"]), 401, "invalid_api_key")
