"""Benchmark the SQL functions: rows/s of ``ai_complete`` over 1,000 rows, sequential vs concurrent.

    .venv/bin/python bench/sql_bench.py [--rows 1000] [--latency-ms 50] [--concurrency 32 64]

A real ``modelgate serve`` (its own data directory, authentication, permission check and usage
recording on) in front of the fake upstream (``tests/fakes/upstream.py``, its own process),
whose model ``slow-<ms>`` answers each call after <ms> milliseconds. Each run is one query over
a table of distinct prompts (so de-duplication cannot help), through ``modelgate.sql.connect``
exactly as an analyst would run it. Sequential means concurrency 1: the floor a per-row UDF
gives (DuckDB calls a plain scalar UDF row by row). The budget (issue 7): concurrent ≥ 20×
sequential. Results print as a table and go to ``bench/results/sql-bench-*.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import modelgate.sql  # noqa: E402
from tests.harness import GatewayProcess, free_port  # noqa: E402

RESULTS = REPO / "bench" / "results"
REQUIRED_SPEEDUP = 20.0


def start_upstream(port: int, log: Path) -> subprocess.Popen[bytes]:
    """The fake upstream in its own process, so its work does not share our interpreter."""
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "fakes" / "upstream.py"), "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=REPO)  # fmt: skip
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1).read()  # noqa: S310
            return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.terminate()
    raise RuntimeError(f"fake upstream did not start:\n{log.read_text(errors='replace')}")


def run_once(base_url: str, key: str, endpoint: str, rows: int, concurrency: int, tag: str) -> dict[str, float]:
    con = modelgate.sql.connect(base_url=base_url, api_key=key, concurrency=concurrency)
    try:
        con.execute(f"CREATE TABLE prompts AS SELECT i, '{tag} question ' || i AS q FROM range({rows}) t(i)")
        started = time.perf_counter()
        result = con.sql(f"SELECT count(ai_complete('{endpoint}', q)) FROM prompts").fetchall()
        seconds = time.perf_counter() - started
        summary = modelgate.sql.session(con).summary
        answered = int(result[0][0])
        if answered != rows or summary.failed_rows:
            raise RuntimeError(f"{rows - answered} rows unanswered: {summary.lines()}")
        return {"concurrency": concurrency, "rows": rows, "seconds": seconds, "rows_per_s": rows / seconds,
                "calls": summary.calls}  # fmt: skip
    finally:
        modelgate.sql.close(con)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=50, help="the fake upstream's time per call")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 64])
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="on a busy machine: run every case N times and keep the fastest (least disturbed)",
    )
    args = parser.parse_args(argv)
    if os.getloadavg()[0] > 1.0:
        print(
            f"warning: 1-minute load average {os.getloadavg()[0]:.1f}: other work is running; concurrent runs are "
            "CPU-bound (gateway, upstream and client share the cores), so use --rounds N",
            file=sys.stderr,
        )
    console = Console()
    with tempfile.TemporaryDirectory(prefix="mg-sql-bench-") as tmp:
        work = Path(tmp)
        port = free_port()
        upstream = start_upstream(port, work / "upstream.log")
        gateway = GatewayProcess(work / "gateway")
        try:
            gateway.start()
            endpoint = "bench-slow"
            gateway.create_endpoint(endpoint, f"http://127.0.0.1:{port}/v1", model_version=f"slow-{args.latency_ms}")
            key = str(gateway.create_key("admin", name="sql-bench")["secret"])
            run_once(gateway.base_url, key, endpoint, 20, 8, "warmup")
            best: dict[int, dict[str, float]] = {}
            for n in range(args.rounds):
                for c in [1, *args.concurrency]:
                    r = run_once(gateway.base_url, key, endpoint, args.rows, c, f"r{n}c{c}")
                    if c not in best or r["rows_per_s"] > best[c]["rows_per_s"]:
                        best[c] = r
            results = [best[c] for c in [1, *args.concurrency]]
        finally:
            gateway.stop()
            upstream.terminate()
            upstream.wait(10)
    base = results[0]["rows_per_s"]
    table = Table(title=f"ai_complete over {args.rows} rows, upstream {args.latency_ms} ms per call")
    for column in ("mode", "concurrency", "rows", "seconds", "rows/s", "× sequential"):
        table.add_column(column, justify="right" if column != "mode" else "left")
    for r in results:
        r["speedup"] = r["rows_per_s"] / base
        mode = "sequential" if r["concurrency"] == 1 else "concurrent"
        table.add_row(mode, str(r["concurrency"]), str(r["rows"]), f"{r['seconds']:.2f}", f"{r['rows_per_s']:.1f}",
                      f"{r['speedup']:.1f}×")  # fmt: skip
    console.print(table)
    best = max(r["speedup"] for r in results[1:])
    ok = best >= REQUIRED_SPEEDUP
    verdict = "[green]PASS[/]" if ok else "[red]FAIL[/]"
    console.print(f"{verdict}: best concurrent run is {best:.1f}× sequential (budget ≥ {REQUIRED_SPEEDUP:.0f}×); "
                  f"1-minute load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"sql-bench-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps({"rows": args.rows, "latency_ms": args.latency_ms, "results": results,
                               "required_speedup": REQUIRED_SPEEDUP, "pass": ok}, indent=2))  # fmt: skip
    console.print(f"Written to {out.relative_to(REPO)}.")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
