"""Failures of the SQL functions, as the gateway decides them: per-row NULLs with a summary,
strict mode, permission denied and quota exhausted reported as such, and failing fast when
every row would be refused.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pytest

import modelgate.sql
from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess, free_port
from tests.sql.conftest import make_analyst, sent, sent_containing, unique, usage_of_key

Connect = Callable[..., duckdb.DuckDBPyConnection]


@pytest.fixture(scope="module")
def failing(gateway: GatewayProcess, upstream: FakeUpstream) -> str:
    """An endpoint whose upstream answers every call with 400 (not retried, so the tests stay fast)."""
    name = unique("sql-fail400")
    gateway.create_endpoint(name, upstream.base_url, model_version="fail-400")
    return name


def test_failed_rows_are_null_and_summarised(upstream: FakeUpstream, failing: str, llm: tuple[str, str],
                                             admin_key: str, sql_connect: Connect) -> None:  # fmt: skip
    con = sql_connect(admin_key)
    tag = unique("q")
    rows = con.sql(f"SELECT i, ai_complete(e, '{tag} ' || i) FROM (VALUES (1, '{failing}'), (2, '{llm[0]}'), "
                   f"(3, '{failing}'), (4, '{failing}')) t(i, e) ORDER BY i").fetchall()  # fmt: skip
    assert rows == [(1, None), (2, f"echo: {tag} 2"), (3, None), (4, None)]
    summary = modelgate.sql.session(con).summary
    assert summary.failed_rows == 3
    lines = summary.lines()
    assert lines[0].endswith("3 of 4 rows failed:")
    assert f"3 × ai_complete on '{failing}': upstream bad request [upstream_bad_request]" in lines[1]
    assert "answered 400: fake upstream error 400" in lines[1]


def test_strict_mode_fails_at_the_first_failure(failing: str, admin_key: str, sql_connect: Connect) -> None:
    con = sql_connect(admin_key, strict=True)
    with pytest.raises(duckdb.Error) as info:
        con.sql(f"SELECT ai_complete('{failing}', 'row ' || i) FROM range(50) t(i)").fetchall()
    message = str(info.value)
    assert f"ai_complete on endpoint '{failing}' failed: upstream bad request (HTTP 400): " in message
    assert f"Upstream of endpoint '{failing}' answered 400: fake upstream error 400" in message
    assert modelgate.sql.session(con).summary.calls == 1  # the first row's failure ended it


def test_permission_denied_fails_fast(gateway: GatewayProcess, upstream: FakeUpstream, llm: tuple[str, str],
                                      sql_connect: Connect) -> None:  # fmt: skip
    name, _ = llm
    other, other_version = unique("sql-other"), unique("mv")
    gateway.create_endpoint(other, upstream.base_url, model_version=other_version)
    stranger = make_analyst(gateway, [name])  # may invoke `name`, not `other`
    con = sql_connect(stranger.key)
    with pytest.raises(duckdb.Error) as info:
        con.sql(f"SELECT ai_complete('endpoint:{other}', 'row ' || i) FROM range(40) t(i)").fetchall()
    message = str(info.value)
    assert f"ai_complete on endpoint '{other}' failed: permission denied (HTTP 403): " in message
    assert f"You do not have permission to invoke endpoint '{other}'" in message
    assert "stopped at the first refusal" in message
    # the detailed variant returns the refusal per row, still after one call
    rows = con.sql(f"SELECT ai_complete_detailed('{other}', 'row ' || i) FROM range(40) t(i)").fetchall()
    assert len(rows) == 40 and {r[0]["error"].split(":")[0] for r in rows} == {"permission_denied"}
    assert {r[0]["value"] for r in rows} == {None}
    events = usage_of_key(gateway, stranger.key, stranger.key_id, name)
    assert [(e["status_code"], e["error_type"], e["channel"]) for e in events] == [
        (403, "permission_denied", "sql")
    ] * 2
    assert not sent(upstream, other_version)


def _three_answers_then_quota_refusals(con: duckdb.DuckDBPyConnection, upstream: FakeUpstream, name: str,
                                       version: str, owner: str) -> None:  # fmt: skip
    """Each call bills 3 prompt + 2 reply words = 5 tokens; admission reserves ~13 and refuses once
    nothing remains, so a 12-token quota admits exactly three calls (concurrency 1: in row order)."""
    tag = unique("w")
    query = f"SELECT i, ai_complete('{name}', '{tag} w ' || i, {{'max_tokens': 2}}) FROM range(10) t(i) ORDER BY i"
    rows = con.sql(query).fetchall()
    answered = [r for r in rows if r[1] is not None]
    assert answered == [(i, f"echo: {tag}") for i in range(3)]
    assert all(r[1] is None for r in rows[3:])
    summary = modelgate.sql.session(con).summary
    assert summary.failed_rows == 7
    reason = summary.lines()[1]
    assert f"7 × ai_complete on '{name}': quota exhausted [insufficient_quota]" in reason
    assert f"The token quota of {owner} (12 tokens this cycle) is exhausted" in reason
    assert len(sent_containing(upstream, version, tag)) == 3  # nothing was sent after the refusal
    # the next query is refused from its first row: it fails fast, naming the quota
    with pytest.raises(duckdb.Error, match=rf"on endpoint '{name}' failed: quota exhausted \(HTTP 429\)"):
        con.sql(f"SELECT ai_complete('{name}', 'again ' || i) FROM range(10) t(i)").fetchall()


def test_endpoint_quota_exhausted_mid_query(gateway: GatewayProcess, upstream: FakeUpstream,
                                            sql_connect: Connect) -> None:  # fmt: skip
    name, version = unique("sql-quota"), unique("mv")
    gateway.create_endpoint(name, upstream.base_url, model_version=version)
    gateway.cli("endpoints", "update", name, "--quota", "12")
    owner = make_analyst(gateway, [name])  # waits for the gateway to see the quota too
    con = sql_connect(owner.key, concurrency=1)
    _three_answers_then_quota_refusals(con, upstream, name, version, f"endpoint '{name}'")
    # the refusals were made by the gateway, once per query: 3 answered, then 1 + 1 refused
    events = usage_of_key(gateway, owner.key, owner.key_id, name)
    statuses = [(e["status_code"], e["error_type"], e["channel"]) for e in events]
    assert statuses == [(200, None, "sql")] * 3 + [(429, "quota_exceeded", "sql")] * 2


def test_tenant_quota_exhausted_mid_query(gateway: GatewayProcess, upstream: FakeUpstream,
                                          sql_connect: Connect) -> None:  # fmt: skip
    # a tenant of its own: a tenant quota cannot be removed from the CLI, and other tests share the gateway
    tenant, admin = unique("sql-tenant"), unique("owner")
    gateway.cli("tenants", "create", tenant, "--admin", admin, "--json")
    name, version = unique("sql-tquota"), unique("mv")
    gateway.create_endpoint(name, upstream.base_url, model_version=version, tenant=tenant)
    gateway.cli("quota", "set", "--tokens", "12", "--tenant", tenant)
    key = gateway.create_key(admin, tenant=tenant)
    con = sql_connect(str(key["secret"]), concurrency=1)
    _three_answers_then_quota_refusals(con, upstream, name, version, f"tenant '{tenant}'")


def test_an_unknown_key_fails_fast(llm: tuple[str, str], sql_connect: Connect) -> None:
    con = sql_connect("mg-not-a-real-key")
    with pytest.raises(duckdb.Error, match=r"failed: API key refused \(HTTP 401\)"):
        con.sql(f"SELECT ai_complete('{llm[0]}', 'x' || i) FROM range(100) t(i)").fetchall()
    assert modelgate.sql.session(con).summary.calls == 1


def test_a_gateway_that_is_down_is_a_row_error(upstream: FakeUpstream) -> None:
    con = modelgate.sql.connect(base_url=f"http://127.0.0.1:{free_port()}", api_key="mg-x", retries=1,
                                backoff_base=0.01)  # fmt: skip
    try:
        [(detail,)] = con.sql("SELECT ai_complete_detailed('any', 'hello')").fetchall()
        assert detail["value"] is None and detail["error"].startswith("connection_error: ")
        assert modelgate.sql.session(con).summary.calls == 2  # one retry
        assert not sent(upstream, "any")
    finally:
        modelgate.sql.close(con)
