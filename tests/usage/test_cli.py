"""``modelgate usage``: the statistics table, CSV and JSON, the monthly export and prune, run as
the operator runs them (subprocesses on a data directory) over the generated workload.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.harness import GatewayProcess
from tests.usage.workload import World, build_world, in_local_month, local_today, minute_rollups, month_of, stats_rows


@pytest.fixture(scope="module")
def cli_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, World]]:
    data = tmp_path_factory.mktemp("usage-cli")
    world = build_world(f"sqlite+aiosqlite:///{data / 'modelgate.db'}", data / "spool", span_days=45)
    # COLUMNS: rich renders the table for a wide terminal, so no cell is cut
    yield GatewayProcess(data, extra_env={"COLUMNS": "240"}), world


def test_usage_table_shows_the_statistics_and_their_total(cli_world: tuple[GatewayProcess, World]) -> None:
    gw, world = cli_world
    tid = world.tenant("tz-shanghai")
    today = local_today(world.tz(tid))
    out = gw.cli("usage", "--tenant", "tz-shanghai")
    want = stats_rows(world, tid, "endpoint", today - timedelta(days=6), today)
    assert f"Usage by endpoint, {today - timedelta(days=6)} to {today} (Asia/Shanghai)" in out.replace("\n", " ")
    lines = out.splitlines()
    for r in want:
        assert any(r["name"] in line and r["date"] in line and f" {r['calls']} " in line for line in lines), r
    total = next(line for line in lines if line.strip("│┃ ").startswith("total"))
    assert f" {sum(r['calls'] for r in want)} " in total
    assert f" {sum(r['total_tokens'] for r in want)} " in total


def test_usage_csv_and_json_equal_the_raw_events(cli_world: tuple[GatewayProcess, World], tmp_path: Path) -> None:
    gw, world = cli_world
    tid = world.tenant("tz-newyork")
    today = local_today(world.tz(tid))
    out = gw.cli("usage", "--tenant", "tz-newyork", "--dimension", "user", "--range", "last_month", "--csv", "-")
    want = stats_rows(world, tid, "user", today - timedelta(days=29), today)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["id"], r["name"], r["date"], r["calls"], r["input_tokens"], r["output_tokens"]) for r in rows] == [
        (str(w["id"]), w["name"], w["date"], str(w["calls"]), str(w["input_tokens"]), str(w["output_tokens"]))
        for w in want]  # fmt: skip
    first, last = month_of(today, 1)
    target = tmp_path / "stats.csv"
    out = gw.cli("usage", "--tenant", "tz-newyork", "--dimension", "api_key", "--range", "custom",
                 "--start", first.isoformat(), "--end", last.isoformat(), "--csv", str(target))  # fmt: skip
    want = stats_rows(world, tid, "api_key", first, last)
    assert f"Wrote {len(want)} rows" in out
    with target.open(newline="") as fh:
        assert [int(r["calls"]) for r in csv.DictReader(fh)] == [w["calls"] for w in want]
    got = gw.cli("usage", "--tenant", "tz-newyork", "--dimension", "tenant", "--range", "custom",
                 "--start", first.isoformat(), "--end", last.isoformat(), "--json")  # fmt: skip
    assert got["totals"]["calls"] == len(in_local_month(world, tid, first, last)) > 0
    bad = gw.cli_raw("usage", "--range", "custom", "--start", first.isoformat())
    assert bad.returncode != 0 and "custom range needs start and end" in bad.stderr.replace("\n", " ")


def test_usage_export_writes_the_month_and_refuses_older_months(
    cli_world: tuple[GatewayProcess, World], tmp_path: Path
) -> None:
    gw, world = cli_world
    tid = world.tenant("tz-shanghai")
    first, last = month_of(local_today(world.tz(tid)), 1)
    target = tmp_path / "month.csv"
    out = gw.cli("usage", "export", "--tenant", "tz-shanghai", "--month", f"{first:%Y-%m}", "-o", str(target))
    events = in_local_month(world, tid, first, last)
    assert f"Wrote {len(events)} requests" in out
    with target.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["request_id"] for r in rows} == {e.request_id for e in events}
    assert sum(int(r["total_tokens"]) for r in rows) == sum(e.input_tokens + e.output_tokens for e in events)
    too_old = month_of(local_today(world.tz(tid)), 12)[0]
    refused = tmp_path / "refused.csv"
    res = gw.cli_raw("usage", "export", "--tenant", "tz-shanghai", "--month", f"{too_old:%Y-%m}", "-o", str(refused))
    assert res.returncode != 0 and "last 12 months" in res.stderr.replace("\n", " ")
    assert not refused.exists()  # refused before anything is written


def test_usage_prune_removes_what_is_older_than_the_horizons(cli_world: tuple[GatewayProcess, World]) -> None:
    gw, world = cli_world
    n = int(gw.query("SELECT count(*) FROM usage_events")[0][0])
    assert n == len(world.events)
    out = gw.cli("usage", "prune")  # the defaults (365 days, 60 days) keep this 45-day workload whole
    assert "Removed 0 request rows" in out and "0 minute and 0 daily rollups" in out
    out = gw.cli("usage", "prune", "--detail-days", "20", "--rollup-days", "10").replace("\n", " ")
    horizons = re.findall(r"\(before (\S+)\)", out)
    detail_horizon, rollup_horizon = (datetime.fromisoformat(h).timestamp() for h in horizons)
    assert detail_horizon == pytest.approx(time.time() - 20 * 86400, abs=120)
    gone = sum(1 for e in world.events if e.ts < detail_horizon)
    assert f"Removed {gone} request rows" in out
    left = gw.query("SELECT min(ts), count(*) FROM usage_events")[0]
    assert left[1] == n - gone > 0
    oldest_minute = int(gw.query("SELECT min(minute) FROM usage_minute")[0][0])
    assert oldest_minute == min(m for _, m, _ in minute_rollups(world) if m + 60 > rollup_horizon)
    kept_minutes = sum(1 for _, m, _ in minute_rollups(world) if m + 60 > rollup_horizon)
    assert int(gw.query("SELECT count(*) FROM usage_minute")[0][0]) == kept_minutes
