"""Gateway Admins: add, list (username, time added, who added them); nobody removes themselves;
at least one always remains — also when two admins remove each other at the same moment, on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
import pytest

from tests.api.conftest import (
    Api,
    Env,
    Person,
    add_person,
    assert_problem,
    login,
    make_gateway_admin,
    start_env,
    unique,
)
from tests.fakes.upstream import FakeUpstream
from tests.harness import drop_pg_database, new_pg_database
from tests.services import require_postgres


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           upstream: FakeUpstream) -> Iterator[Env]:  # fmt: skip
    if request.param == "sqlite":
        yield from start_env(tmp_path_factory.mktemp("ga-sqlite"), upstream)
        return
    require_postgres()
    url, name = new_pg_database()
    try:
        yield from start_env(tmp_path_factory.mktemp("ga-pg"), upstream, database_url=url)
    finally:
        drop_pg_database(name)


def _tenant(env: Env) -> tuple[str, Person]:
    """A new tenant and its founder (Account Admin and first Gateway Admin), signed in."""
    name = unique("org")
    out = env.admin.ok("POST", "/tenants", 201, json={"name": name, "admin_username": "founder"})
    password = out["admin"]["password"]
    api = Api(env.http, login(env.http, "founder", password, name), "founder")
    return name, Person("founder", out["admin"]["id"], password, api, name)


def _admins(api: Api) -> dict[str, dict[str, Any]]:
    return {a["username"]: a for a in api.ok("GET", "/gateway-admins")}


def test_add_and_list_with_time_and_who_added(db_env: Env) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    tenant, founder = _tenant(db_env)
    second = add_person(founder.api, "second", tenant)
    assert_problem(second.api.post("/endpoints", json={"name": "e", "base_url": "http://127.0.0.1:9/v1",
                                                       "model_version": "m"}), 403)  # fmt: skip
    added = founder.api.ok("POST", "/gateway-admins", 201, json={"user_id": second.id})
    assert (added["user_id"], added["username"], added["added_by"]) == (second.id, "second", "founder")
    listed = _admins(founder.api)
    assert set(listed) == {"founder", "second"}
    assert listed["second"]["added_by"] == "founder" and listed["second"]["user_id"] == second.id
    assert listed["founder"]["added_by"] == "admin"  # the Instance Admin created the tenant
    for entry in listed.values():
        assert started <= datetime.fromisoformat(entry["added_at"]) <= datetime.now(UTC) + timedelta(seconds=1)
    assert [a["username"] for a in founder.api.ok("GET", "/gateway-admins")] == ["founder", "second"]  # by time
    # the new Gateway Admin acts as one from the next request on
    assert second.api.post("/endpoints", json={"name": "e", "base_url": "http://127.0.0.1:9/v1",
                                               "model_version": "m"}).status_code == 201  # fmt: skip
    assert _admins(second.api).keys() == listed.keys()
    assert_problem(founder.api.post("/gateway-admins", json={"user_id": second.id}), 409)


def test_nobody_removes_themselves(db_env: Env) -> None:
    tenant, founder = _tenant(db_env)
    other = add_person(founder.api, "other", tenant)
    make_gateway_admin(founder.api, other)
    for person in (founder, other):
        problem = assert_problem(person.api.delete(f"/gateway-admins/{person.id}"), 400)
        assert problem["code"] == "cannot_remove_self" and "yourself" in problem["detail"]
    assert set(_admins(founder.api)) == {"founder", "other"}


def test_the_last_gateway_admin_stays(db_env: Env) -> None:
    tenant, founder = _tenant(db_env)
    deputy = add_person(founder.api, "deputy", tenant)
    make_gateway_admin(founder.api, deputy)
    deputy.api.ok("DELETE", f"/gateway-admins/{founder.id}", 204)
    assert set(_admins(deputy.api)) == {"deputy"}
    # the founder is still Account Admin (who may act as a Gateway Admin), but cannot remove the last one
    problem = assert_problem(founder.api.delete(f"/gateway-admins/{deputy.id}"), 409)
    assert problem["code"] == "last_gateway_admin"
    problem = assert_problem(founder.api.delete(f"/users/{deputy.id}"), 409)
    assert problem["code"] == "last_gateway_admin"
    assert set(_admins(founder.api)) == {"deputy"}
    assert deputy.api.ok("GET", "/me")["tenant_roles"] == ["GATEWAY_ADMIN", "MEMBER"]


def _remove_at_once(http: httpx.Client, a: Person, b: Person) -> dict[str, httpx.Response]:
    """``a`` removes ``b`` and ``b`` removes ``a``, both requests released at the same instant."""
    barrier = threading.Barrier(2)
    results: dict[str, httpx.Response] = {}

    def remove(actor: Person, target: Person) -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=60) as own:  # own connection each
            own.get("/healthz")
            barrier.wait()
            results[actor.username] = Api(own, actor.api.token).delete(f"/gateway-admins/{target.id}")

    threads = [threading.Thread(target=remove, args=pair) for pair in ((a, b), (b, a))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert len(results) == 2
    return results


def test_two_admins_removing_each_other_at_the_same_moment(db_env: Env) -> None:
    tenant, founder = _tenant(db_env)
    x, y = add_person(founder.api, "x", tenant), add_person(founder.api, "y", tenant)
    make_gateway_admin(founder.api, x)
    make_gateway_admin(founder.api, y)
    x.api.ok("DELETE", f"/gateway-admins/{founder.id}", 204)  # now x and y are the only Gateway Admins
    winners = set()
    for _round in range(6):
        results = _remove_at_once(db_env.http, x, y)
        ok = [name for name, r in results.items() if r.status_code == 204]
        assert len(ok) == 1, {n: (r.status_code, r.text) for n, r in results.items()}
        loser = (set(results) - set(ok)).pop()
        # refused as the last one standing (409), or, if it arrived after the other's commit, as no longer a GA (403)
        problem = assert_problem(results[loser], (409, 403))
        assert problem["code"] in ("last_gateway_admin", "permission_denied")
        survivors = _admins(founder.api)
        assert set(survivors) == set(ok), survivors
        winners.add(ok[0])
        winner, again = (x, y) if ok[0] == "x" else (y, x)
        make_gateway_admin(winner.api, again)
        assert set(_admins(founder.api)) == {"x", "y"}
    records = founder.api.ok("GET", "/audit-log", params={"action": "gateway_admin.remove", "page_size": 100})
    assert records["total"] == 6 + 1  # one record per removal that happened, none for the refused ones
