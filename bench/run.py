"""Benchmark modelgate against a bare pass-through proxy (and LiteLLM), in the same run.

    .venv/bin/python bench/run.py [--duration 10] [--quick] [--litellm] [--skip-modelgate]

Why ratios and not absolute numbers: the machine is shared and small; what is stable is
how each proxy compares with the others measured minutes apart on the same cores. See
bench/README.md and DESIGN §5 (the budget this checks).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from procs import LOAD_CPU, can_pin
from rich.console import Console
from rich.table import Table
from targets import (
    DIRECT,
    LITELLM,
    MODEL,
    MODELGATE,
    MODELGATE_LIMITS,
    MODELGATE_REDIS,
    PASSTHROUGH,
    Target,
    check,
    start_litellm,
    start_modelgate,
    start_passthrough,
    start_upstream,
)
from wrkrun import WrkResult, ensure_wrk, run_wrk

RESULTS = Path(__file__).resolve().parent / "results"
BUSY_LOAD = 0.7  # 1-minute load average above which other work is likely disturbing the runs
CONNECTIONS = (1, 32)
MESSAGES = [{"role": "user", "content": "Say hello in five words."}]
BODIES = {
    "non-stream": json.dumps({"model": MODEL, "messages": MESSAGES}, separators=(",", ":")),
    "stream": json.dumps({"model": MODEL, "messages": MESSAGES, "stream": True}, separators=(",", ":")),
}


@dataclass(frozen=True)
class Row:
    scenario: str
    mode: str
    connections: int
    result: WrkResult


def measure(target: Target, seconds: float, warmup: float, console: Console) -> list[Row]:
    rows: list[Row] = []
    for mode, body in BODIES.items():
        check(target, body, stream=mode == "stream")
        for connections in CONNECTIONS:
            if warmup:
                run_wrk(
                    target.url,
                    connections=connections,
                    seconds=warmup,
                    body=body,
                    auth=target.auth,
                    cpu=LOAD_CPU,
                )
            target.drain()  # the warm-up's usage is written before the measured run starts
            result = run_wrk(
                target.url,
                connections=connections,
                seconds=seconds,
                body=body,
                auth=target.auth,
                cpu=LOAD_CPU,
            )
            lag = target.drain()
            if lag:
                result = replace(result, duration_us=result.duration_us + int(lag * 1e6))
            console.print(
                f"  {target.name:20} {mode:10} c={connections:<3} {result.rps:9.0f} req/s  "
                f"p50 {result.p50_us / 1000:.2f} ms  p99 {result.p99_us / 1000:.2f} ms"
                + (f"  [red]{result.errors} errors[/red]" if result.errors else "")
            )
            rows.append(Row(target.name, mode, connections, result))
    return rows


def report(rows: list[Row]) -> tuple[Table, list[dict[str, object]]]:
    """The table and its JSON form: added latency vs direct, throughput vs pass-through/LiteLLM."""
    index = {(r.scenario, r.mode, r.connections): r.result for r in rows}
    has_litellm = any(r.scenario == LITELLM for r in rows)
    table = Table(title="modelgate benchmark (one core for the proxy; wrk + upstream on the other)")
    for column in (
        "scenario",
        "mode",
        "conns",
        "req/s",
        "p50 ms",
        "p99 ms",
        "added p50",
        "added p99",
        "× pass-through",
        *(["× LiteLLM"] if has_litellm else []),
        "errors",
    ):
        table.add_column(column, justify="left" if column in ("scenario", "mode") else "right")
    records: list[dict[str, object]] = []
    for r in rows:
        res = r.result
        direct = index.get((DIRECT, r.mode, r.connections))
        floor = index.get((PASSTHROUGH, r.mode, r.connections))
        litellm = index.get((LITELLM, r.mode, r.connections))
        added50 = (res.p50_us - direct.p50_us) / 1000 if direct and r.scenario != DIRECT else None
        added99 = (res.p99_us - direct.p99_us) / 1000 if direct and r.scenario != DIRECT else None
        vs_floor = res.rps / floor.rps if floor and floor.rps else None
        vs_litellm = res.rps / litellm.rps if litellm and litellm.rps else None
        cells = [
            r.scenario,
            r.mode,
            str(r.connections),
            f"{res.rps:,.0f}",
            f"{res.p50_us / 1000:.2f}",
            f"{res.p99_us / 1000:.2f}",
            _ms(added50),
            _ms(added99),
            _ratio(vs_floor),
        ]
        if has_litellm:
            cells.append(_ratio(vs_litellm))
        cells.append(str(res.errors))
        table.add_row(*cells)
        records.append(
            {
                "scenario": r.scenario,
                "mode": r.mode,
                "connections": r.connections,
                **res.as_dict(),
                "added_p50_ms": added50,
                "added_p99_ms": added99,
                "ratio_vs_passthrough": vs_floor,
                "ratio_vs_litellm": vs_litellm,
            }
        )
    return table, records


def budget(rows: list[Row]) -> list[tuple[str, bool]]:
    """DESIGN §5's budget, as (check, passed) pairs: for modelgate as shipped and, when measured,
    with RPM/TPM/quota admission on (in-process counters: the budget is one process on one core)."""
    index = {(r.scenario, r.mode, r.connections): r.result for r in rows}
    checks: list[tuple[str, bool]] = []
    for scenario, tag in ((MODELGATE, "modelgate"), (MODELGATE_LIMITS, "+limits")):
        for mode in BODIES:
            for conns in CONNECTIONS:
                mg, floor = index.get((scenario, mode, conns)), index.get((PASSTHROUGH, mode, conns))
                if mg and floor:
                    ratio = mg.rps / floor.rps
                    checks.append((f"{tag} {mode} c={conns}: throughput ≥ 0.5 × pass-through ({ratio:.2f})",
                                   ratio >= 0.5))  # fmt: skip
        mg, direct = index.get((scenario, "non-stream", 1)), index.get((DIRECT, "non-stream", 1))
        if mg and direct:
            p50, p99 = (mg.p50_us - direct.p50_us) / 1000, (mg.p99_us - direct.p99_us) / 1000
            checks.append((f"{tag} non-stream c=1: added p50 ≤ 0.5 ms ({p50:.2f})", p50 <= 0.5))
            checks.append((f"{tag} non-stream c=1: added p99 ≤ 2 ms ({p99:.2f})", p99 <= 2.0))
    return checks


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:+.2f}"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="modelgate vs a bare pass-through proxy (and LiteLLM).")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1 s warm-up")
    parser.add_argument("--rounds", type=int, default=1, help="measure every scenario N times, keep the best")
    parser.add_argument("--litellm", action="store_true", help="also measure LiteLLM's proxy (slow; may install)")
    parser.add_argument("--skip-modelgate", action="store_true", help="only the upstream and pass-through rows")
    parser.add_argument("--limits", action="store_true",
                        help="also modelgate with RPM/TPM/quotas on, in-process and on Redis (issue 4's rows)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13", help="Redis for the (c3) row")
    return parser.parse_args(argv)


def start_targets(
    args: argparse.Namespace,
    upstream: Target,
    log_dir: Path,
    console: Console,
    failures: dict[str, str],
    targets: list[Target],
) -> None:
    """Start every proxy once into ``targets`` (they idle while others are measured); a failure skips that row.

    Appending as each one starts means the caller's ``finally`` stops them even on Ctrl-C.
    """
    starters: list[tuple[str, Callable[[], Target | None]]] = [
        (PASSTHROUGH, lambda: start_passthrough(upstream, log_dir))
    ]
    if not args.skip_modelgate:
        starters.append((MODELGATE, lambda: start_modelgate(upstream, log_dir, log_dir / "data")))
    if args.limits and not args.skip_modelgate:
        starters.append((MODELGATE_LIMITS, lambda: start_modelgate(upstream, log_dir, log_dir / "data-limits",
                                                                   MODELGATE_LIMITS, limits=True)))  # fmt: skip
        starters.append((MODELGATE_REDIS, lambda: start_modelgate(upstream, log_dir, log_dir / "data-redis",
                                                                  MODELGATE_REDIS, limits=True,
                                                                  redis_url=args.redis_url)))  # fmt: skip
    if args.litellm:
        starters.append((LITELLM, lambda: start_litellm(upstream, log_dir)))
    for name, starter in starters:
        try:
            target = starter()
        except (RuntimeError, OSError) as exc:
            failures[name] = str(exc)
            console.print(f"[red]{name}: skipped[/red]\n{exc}")
            continue
        if target is None:
            failures[name] = "not available"
        else:
            targets.append(target)


def best_of(rows: list[Row]) -> list[Row]:
    """Per scenario/mode/concurrency, the round with the highest throughput (least disturbed)."""
    best: dict[tuple[str, str, int], Row] = {}
    for row in rows:
        key = (row.scenario, row.mode, row.connections)
        if key not in best or row.result.rps > best[key].result.rps:
            best[key] = row
    return list(best.values())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 150)
    seconds, warmup = (3.0, 1.0) if args.quick else (args.duration, min(2.0, args.duration / 5))
    ensure_wrk()
    if not can_pin():
        console.print("[yellow]NOTE: fewer than 2 CPUs or no taskset: processes are not pinned.[/yellow]")
    load_start = os.getloadavg()[0]
    if load_start > BUSY_LOAD:
        console.print(
            f"[yellow]NOTE: load average {load_start:.2f}: other work is running, numbers will be "
            "noisy (consider --rounds 3).[/yellow]"
        )
    RESULTS.mkdir(exist_ok=True)
    rows: list[Row] = []
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="modelgate-bench-") as tmp:
        log_dir = Path(tmp)
        upstream = start_upstream(log_dir)
        targets = [upstream]
        try:
            start_targets(args, upstream, log_dir, console, failures, targets)
            for round_no in range(1, max(1, args.rounds) + 1):
                if args.rounds > 1:
                    console.print(f"round {round_no}/{args.rounds}")
                for target in targets:
                    try:
                        rows += measure(target, seconds, warmup, console)
                    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                        failures[target.name] = str(exc)
                        console.print(f"[red]{target.name}: failed[/red]\n{exc}")
        finally:
            for target in reversed(targets):
                target.stop()
    rows = best_of(rows)
    table, records = report(rows)
    console.print(table)
    checks = budget(rows)
    for text, passed in checks:
        console.print(("[green]PASS[/green] " if passed else "[red]FAIL[/red] ") + text)
    out = RESULTS / f"bench-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    summary = {
        "when": dt.datetime.now(dt.UTC).isoformat(),
        "host": platform.node(),
        "python": sys.version.split()[0],
        "pinned": can_pin(),
        "seconds_per_run": seconds,
        "warmup_seconds": warmup,
        "rounds": args.rounds,
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg()[0],
        "rows": records,
        "budget": [{"check": t, "passed": p} for t, p in checks],
        "skipped": failures,
    }
    out.write_text(json.dumps(summary, indent=2))
    console.print(f"results written to {out}")
    return 0 if not failures or set(failures) == {LITELLM} else 1


if __name__ == "__main__":
    sys.exit(main())
