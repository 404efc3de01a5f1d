"""ai_complete / ai_embed / their detailed variants and ai_count_tokens against the real gateway:
results row by row over tables and files, NULLs, options, de-duplication and usage attribution.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

import modelgate.sql
from modelgate.gateway.tokens import estimate_input_tokens
from tests.fakes.upstream import FakeUpstream, embedding_vector
from tests.harness import GatewayProcess
from tests.sql.conftest import (
    Analyst,
    endpoint_id,
    ensure_endpoint,
    make_analyst,
    sent,
    sent_containing,
    unique,
    usage_of_key,
)

Connect = Callable[..., duckdb.DuckDBPyConnection]


def test_the_seed_statement(gateway: GatewayProcess, upstream: FakeUpstream, admin_key: str,
                            sql_connect: Connect) -> None:  # fmt: skip
    ensure_endpoint(gateway, "lis_aliyun_qwen_max", upstream.base_url, "qwen-max")
    con = sql_connect(admin_key)
    rows = con.sql("select ai_complete('endpoint:lis_aliyun_qwen_max', 'What is the capital of China?')").fetchall()
    assert rows == [("echo: What is the capital of China?",)]
    last = [r for r in upstream.requests if r.model == "qwen-max"][-1].json
    assert last["messages"] == [{"role": "user", "content": "What is the capital of China?"}]


def test_rows_of_a_table_with_nulls(upstream: FakeUpstream, llm: tuple[str, str], analyst: Analyst,
                                    sql_connect: Connect) -> None:  # fmt: skip
    name, version = llm
    tag = unique("fish")
    con = sql_connect(analyst.key)
    con.execute("CREATE TABLE questions (id INTEGER, endpoint VARCHAR, q VARCHAR)")
    con.execute("INSERT INTO questions VALUES (1, ?, ?), (2, ?, NULL), (3, NULL, 'no endpoint'), (4, ?, ?), "
                "(5, ?, ?)", [f"endpoint:{name}", f"one {tag}", name, name, f"two {tag}", name, tag])  # fmt: skip
    rows = con.sql("SELECT id, ai_complete(endpoint, q) AS a FROM questions ORDER BY id").fetchall()
    assert rows == [(1, f"echo: one {tag}"), (2, None), (3, None), (4, f"echo: two {tag}"), (5, f"echo: {tag}")]
    # NULL inputs were never sent; the others were, once each, with the endpoint's model version
    got = sorted(b["messages"][-1]["content"] for b in sent_containing(upstream, version, tag))
    assert got == sorted([f"one {tag}", f"two {tag}", tag])
    assert modelgate.sql.session(con).summary.failed_rows == 0


def test_rows_of_csv_and_parquet_files(gateway: GatewayProcess, llm: tuple[str, str], admin_key: str,
                                       sql_connect: Connect, tmp_path: Path) -> None:  # fmt: skip
    name, _ = llm
    csv_path, parquet_path = tmp_path / "reviews.csv", tmp_path / "reviews.parquet"
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "review"])
        writer.writerows([(i, f"review number {i}") for i in range(1, 31)])
    con = sql_connect(admin_key)
    con.execute(f"COPY (SELECT * FROM read_csv('{csv_path}')) TO '{parquet_path}' (FORMAT parquet)")
    for source in (f"read_csv('{csv_path}')", f"'{parquet_path}'"):
        query = f"SELECT id, ai_complete('{name}', 'Summarise: ' || review) FROM {source} ORDER BY id"
        rows = con.sql(query).fetchall()
        assert rows == [(i, f"echo: Summarise: review number {i}") for i in range(1, 31)]


def test_options_reach_the_upstream(gateway: GatewayProcess, upstream: FakeUpstream, llm: tuple[str, str],
                                    admin_key: str, sql_connect: Connect) -> None:  # fmt: skip
    name, version = llm
    con = sql_connect(admin_key)
    as_json = ('{"system": "You are terse.", "temperature": 0.2, "max_tokens": 2, '
               '"response_format": "json_object", "top_p": 0.9, "seed": 7}')  # fmt: skip
    [(reply,)] = con.sql(f"SELECT ai_complete('{name}', 'alpha beta gamma', '{as_json}')").fetchall()
    assert reply == "echo: alpha"  # max_tokens=2 words at the fake upstream
    body = sent(upstream, version)[-1]
    assert body["messages"] == [{"role": "system", "content": "You are terse."},
                                {"role": "user", "content": "alpha beta gamma"}]  # fmt: skip
    assert (body["temperature"], body["max_tokens"], body["top_p"], body["seed"]) == (0.2, 2, 0.9, 7)
    assert body["response_format"] == {"type": "json_object"}
    # the same as a STRUCT, and per-row options from a column
    con.sql(f"SELECT ai_complete('{name}', 'delta', {{'system_prompt': 'Be kind.', 'temperature': 0.0}})").fetchall()
    body = sent(upstream, version)[-1]
    assert body["messages"][0] == {"role": "system", "content": "Be kind."} and body["temperature"] == 0.0
    rows = con.sql(f"SELECT ai_complete('{name}', 'x y z', o) FROM (VALUES ('{{\"max_tokens\": 1}}'), (NULL)) t(o)"
                   ).fetchall()  # fmt: skip
    assert sorted(r[0] for r in rows) == ["echo:", "echo: x y z"]  # NULL options: no options, not a NULL row


def test_bad_options_fail_the_query(llm: tuple[str, str], admin_key: str, sql_connect: Connect) -> None:
    con = sql_connect(admin_key)
    with pytest.raises(duckdb.Error, match=r"unknown option\(s\) temprature"):
        con.sql(f"SELECT ai_complete('{llm[0]}', 'hi', '{{\"temprature\": 1}}')").fetchall()
    with pytest.raises(duckdb.Error, match="response_format must be"):
        con.sql(f"SELECT ai_complete('{llm[0]}', 'hi', {{'response_format': 'yaml'}})").fetchall()


def test_identical_prompts_are_sent_once_per_query(upstream: FakeUpstream, llm: tuple[str, str], admin_key: str,
                                                   sql_connect: Connect) -> None:  # fmt: skip
    name, version = llm
    tag = unique("prompt")
    con = sql_connect(admin_key)
    # 6,000 rows in three batches of DuckDB's 2,048, three distinct prompts, some NULLs
    query = (f"SELECT ai_complete('{name}', CASE WHEN i % 7 = 0 THEN NULL ELSE '{tag} ' || (i % 3) END) AS a "
             "FROM range(6000) t(i)")  # fmt: skip
    rows = con.sql(query).fetchall()
    assert len(rows) == 6000
    assert {r[0] for r in rows} == {None, f"echo: {tag} 0", f"echo: {tag} 1", f"echo: {tag} 2"}
    assert len(sent_containing(upstream, version, tag)) == 3
    summary = modelgate.sql.session(con).summary
    assert (summary.unique, summary.calls) == (3, 3)
    # the same endpoint written two ways is still one request; and a new query asks again
    con.sql(f"SELECT ai_complete('endpoint:{name}', '{tag} 0'), ai_complete('{name}', '{tag} 0')").fetchall()
    assert len(sent_containing(upstream, version, tag)) == 4


def test_embeddings_and_the_detailed_variants(gateway: GatewayProcess, upstream: FakeUpstream, llm: tuple[str, str],
                                              admin_key: str, sql_connect: Connect) -> None:  # fmt: skip
    emb, failing = unique("sql-emb"), unique("sql-500")
    gateway.create_endpoint(emb, upstream.base_url, model_version="fake-embedding", category="embedding")
    gateway.create_endpoint(failing, upstream.base_url, model_version="fail-500")
    con = sql_connect(admin_key, retries=0)
    query = f"SELECT t, ai_embed('endpoint:{emb}', t) FROM (VALUES ('hello'), (NULL)) v(t) ORDER BY t"
    rows = con.sql(query).fetchall()
    assert rows[0][0] == "hello" and rows[0][1] == pytest.approx(embedding_vector("hello", 8), abs=1e-6)
    assert rows[1] == (None, None)
    assert con.sql(f"SELECT typeof(ai_embed('{emb}', 'x'))").fetchall() == [("FLOAT[]",)]
    [(ok,)] = con.sql(f"SELECT ai_embed_detailed('{emb}', 'hello')").fetchall()
    assert ok["error"] is None and len(ok["value"]) == 8
    rows = con.sql(
        f"SELECT i, ai_complete_detailed(e, p) FROM (VALUES (1, '{llm[0]}', 'fine'), (2, '{failing}', 'boom'), "
        f"(3, '{failing}', NULL), (4, '{emb}', 'hi')) t(i, e, p) ORDER BY i"
    ).fetchall()
    good, bad, null, wrong = (r[1] for r in rows)
    assert good == {"value": "echo: fine", "error": None}
    assert bad["value"] is None and bad["error"].startswith("upstream_error: ") and failing in bad["error"]
    assert "fake upstream error 500" in bad["error"]
    assert null is None  # NULL prompt → NULL struct
    # an embedding endpoint is not a chat endpoint: the gateway says so, per row
    assert wrong["value"] is None and wrong["error"].startswith("model_not_supported: ")


def test_ai_count_tokens_is_the_gateway_estimate(gateway: GatewayProcess, admin_key: str,
                                                  sql_connect: Connect) -> None:  # fmt: skip
    con = sql_connect(admin_key)
    # connecting an existing connection again replaces its functions (here: with strict ones)
    assert modelgate.sql.connect(base_url=gateway.base_url, api_key=admin_key, connection=con, strict=True) is con
    assert modelgate.sql.session(con).strict
    prompt = "How many tokens is this sentence?"
    rows = con.sql(f"SELECT ai_count_tokens('{prompt}'), ai_count_tokens('{prompt}', {{'system': 'Be brief.'}}), "
                   "ai_count_tokens(NULL)").fetchall()  # fmt: skip
    plain = estimate_input_tokens({"messages": [{"role": "user", "content": prompt}]})
    with_system = estimate_input_tokens({"messages": [{"role": "system", "content": "Be brief."},
                                                      {"role": "user", "content": prompt}]})  # fmt: skip
    assert rows == [(plain, with_system, None)] and with_system > plain > 0


def test_usage_is_recorded_on_channel_sql_for_the_key_owner(gateway: GatewayProcess, llm: tuple[str, str],
                                                            sql_connect: Connect) -> None:  # fmt: skip
    name, _ = llm
    analyst = make_analyst(gateway, [name])
    con = sql_connect(analyst.key)
    con.sql(f"SELECT ai_complete('{name}', 'row ' || i) FROM range(5) t(i)").fetchall()
    events = usage_of_key(gateway, analyst.key, analyst.key_id, name)
    assert len(events) == 5
    ep = endpoint_id(gateway, name)
    assert {(e["channel"], e["user_id"], e["api_key_id"], e["endpoint_id"], e["status_code"]) for e in events} == {
        ("sql", analyst.user_id, analyst.key_id, ep, 200)
    }
    assert all(e["input_tokens"] == 2 and e["output_tokens"] == 3 for e in events)  # counted by the fake upstream
