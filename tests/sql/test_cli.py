"""``modelgate sql`` as a user runs it: a real process against the real gateway, with the key from
the environment or an option; tables, files, the failure summary, strict mode, progress and the
``--estimate`` dry run.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from modelgate.gateway.tokens import estimate_input_tokens
from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess
from tests.sql.conftest import Analyst, ensure_endpoint, run_cli, sent, unique

SEED = "select ai_complete('endpoint:lis_aliyun_qwen_max', 'What is the capital of China?') as answer"


def test_seed_statement_prints_a_table(gateway: GatewayProcess, upstream: FakeUpstream, analyst: Analyst) -> None:
    ensure_endpoint(gateway, "lis_aliyun_qwen_max", upstream.base_url, "qwen-max")
    gateway.cli("grants", "create", "--user", analyst.username, "--role", "ENDPOINT_USER", "--endpoint",
                "lis_aliyun_qwen_max", "--json")  # fmt: skip
    res = run_cli(gateway, SEED, env={"MODELGATE_API_KEY": analyst.key})
    assert res.returncode == 0, res.stderr
    assert "answer" in res.stdout and "echo: What is the capital of China?" in res.stdout
    assert "1 row through ai_* functions" in res.stderr and "no row failed" in res.stderr


def test_no_key_is_a_clear_error(gateway: GatewayProcess) -> None:
    res = run_cli(gateway, SEED)
    assert res.returncode == 1
    assert "no API key" in res.stderr and "--api-key" in res.stderr


@pytest.mark.parametrize("kind", ["csv", "json", "jsonl", "parquet"])
def test_results_written_to_files(gateway: GatewayProcess, llm: tuple[str, str], analyst: Analyst, tmp_path: Path,
                                  kind: str) -> None:  # fmt: skip
    out = tmp_path / f"answers.{kind}"
    query = f"SELECT i, ai_complete('{llm[0]}', 'file ' || i) AS answer FROM range(4) t(i) ORDER BY i"
    res = run_cli(gateway, query, "--api-key", analyst.key, "--output", str(out))
    assert res.returncode == 0, res.stderr
    assert f"Wrote 4 rows to {out} ({kind})" in res.stderr
    if kind == "parquet":
        got = pq.read_table(out).to_pylist()
    elif kind == "csv":
        got = duckdb.sql(f"SELECT * FROM read_csv('{out}')").to_arrow_table().to_pylist()
    elif kind == "json":
        got = json.loads(out.read_text())
    else:
        got = [json.loads(line) for line in out.read_text().splitlines()]
    assert got == [{"i": i, "answer": f"echo: file {i}"} for i in range(4)]


def test_failures_summary_strict_and_progress(gateway: GatewayProcess, upstream: FakeUpstream, llm: tuple[str, str],
                                              admin_key: str) -> None:  # fmt: skip
    failing = unique("sql-cli-fail")
    gateway.create_endpoint(failing, upstream.base_url, model_version="fail-400")
    query = (f"SELECT i, ai_complete(CASE WHEN i < 2 THEN '{failing}' ELSE '{llm[0]}' END, 'p ' || i) AS a "
             "FROM range(5) t(i) ORDER BY i")  # fmt: skip
    res = run_cli(gateway, query, "--format", "json", "--progress", env={"MODELGATE_API_KEY": admin_key})
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [{"i": 0, "a": None}, {"i": 1, "a": None}] + [
        {"i": i, "a": f"echo: p {i}"} for i in range(2, 5)
    ]
    assert "ai_* calls" in res.stderr and "5 rows, 5 calls" in res.stderr  # the progress line
    assert "2 of 5 rows failed:" in res.stderr
    assert f"2 × ai_complete on '{failing}': upstream bad request [upstream_bad_request]" in res.stderr
    strict = run_cli(gateway, query, "--strict", env={"MODELGATE_API_KEY": admin_key})
    assert strict.returncode == 1
    assert (f"error: ai_complete on endpoint '{failing}' failed: upstream bad request (HTTP 400): Upstream of "
            f"endpoint '{failing}' answered 400: fake upstream error 400") in strict.stderr  # fmt: skip
    assert "ai_* calls" not in strict.stderr  # no progress bar unless asked for or on a terminal


def test_estimate_counts_calls_and_tokens_without_calling(gateway: GatewayProcess, upstream: FakeUpstream,
                                                          analyst: Analyst) -> None:  # fmt: skip
    name, version = unique("sql-est"), unique("mv")
    gateway.create_endpoint(name, upstream.base_url, model_version=version)
    gateway.cli("endpoints", "update", name, "--quota", "1000")
    gateway.cli("grants", "create", "--user", analyst.username, "--role", "ENDPOINT_USER", "--endpoint", name, "--json")
    gateway.wait_synced()
    tag = unique("est")
    prompts = [f"{tag} a b", f"{tag} a b", f"{tag} c d e", None]
    values = ", ".join("(NULL)" if p is None else f"('{p}')" for p in prompts)
    query = f"SELECT ai_complete('{name}', p, '{{\"max_tokens\": 10}}') FROM (VALUES {values}) t(p)"
    res = run_cli(gateway, "--estimate", "--format", "json", query, env={"MODELGATE_API_KEY": analyst.key})
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    expected_input = sum(estimate_input_tokens({"messages": [{"role": "user", "content": p}]})
                         for p in {p for p in prompts if p})  # fmt: skip
    assert (report["dry_run"], report["calls"], report["input_tokens"]) == (True, 2, expected_input)
    [row] = report["endpoints"]
    assert (row["endpoint"], row["rows"], row["calls"], row["output_tokens_max"]) == (name, 3, 2, 20)
    assert row["may_invoke"] is True and row["quota_checked"] is False and row["covered"] is None
    assert any("--token" in note for note in report["notes"])

    # with a personal access token, the endpoint's remaining quota is compared with the estimate
    token = gateway.cli("tokens", "create", "--user", analyst.username, "--json")["secret"]
    big = f"SELECT ai_complete('{name}', '{tag} number ' || i) FROM range(100) t(i)"
    env = {"MODELGATE_API_KEY": analyst.key, "MODELGATE_TOKEN": token}
    small_report = json.loads(run_cli(gateway, "--estimate", "-f", "json", query, env=env).stdout)
    big_res = run_cli(gateway, "--estimate", big, env=env)
    [small] = small_report["endpoints"]
    assert (small["quota_checked"], small["quota_remaining"], small["covered"]) == (True, 1000, True)
    assert big_res.returncode == 0, big_res.stderr
    assert "100 calls" in big_res.stdout and "NO" in big_res.stdout  # 100 × (~13 in + 256 out) > 1000
    assert "read with the personal access token" in big_res.stdout
    assert not sent(upstream, version)  # no dry run called the model
