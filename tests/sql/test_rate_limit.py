"""A query that outruns the endpoint's rate limit: the gateway's 429s are retried after their
``Retry-After`` and the query completes with every row answered.

In a file of its own because the limiter's window is one minute: with ``--dist loadfile`` this
minute of waiting overlaps the other files' tests instead of adding to them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import duckdb

import modelgate.sql
from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess
from tests.sql.conftest import make_analyst, sent_containing, unique, usage_of_key

Connect = Callable[..., duckdb.DuckDBPyConnection]


def test_rate_limited_rows_are_retried_and_the_query_completes(
    gateway: GatewayProcess, upstream: FakeUpstream, sql_connect: Connect
) -> None:
    name, version = unique("sql-rpm"), unique("mv")
    gateway.create_endpoint(name, upstream.base_url, model_version=version)
    analyst = make_analyst(gateway, [name])
    gateway.cli("endpoints", "update", name, "--rpm", "5")
    gateway.wait_synced()
    con = sql_connect(analyst.key)
    tag = unique("r")
    started = time.monotonic()
    rows = con.sql(f"SELECT i, ai_complete('{name}', '{tag} ' || i) FROM range(8) t(i) ORDER BY i").fetchall()
    elapsed = time.monotonic() - started
    assert rows == [(i, f"echo: {tag} {i}") for i in range(8)]
    summary = modelgate.sql.session(con).summary
    assert summary.failed_rows == 0 and summary.retries >= 3
    assert len(sent_containing(upstream, version, tag)) == 8  # every row reached the upstream exactly once
    events = usage_of_key(gateway, analyst.key, analyst.key_id, name)
    refused = [e for e in events if e["status_code"] == 429]
    assert len([e for e in events if e["status_code"] == 200]) == 8
    assert {(e["error_type"], e["channel"]) for e in refused} == {("rate_limited", "sql")}
    # 5 per minute: the three rows over the limit waited for the window instead of hammering it
    assert 3 <= len(refused) <= 6
    assert elapsed > 30
