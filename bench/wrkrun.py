"""Run Debian's wrk and parse what bench/post.lua prints.

Why wrk: a Python load generator on the same two cores mostly measures itself; wrk (C,
one thread, pinned to the other core) leaves the core under test to the proxy alone.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from procs import pinned

LUA = Path(__file__).resolve().with_name("post.lua")
RESULT_RE = re.compile(r"^BENCH_RESULT (.*)$", re.MULTILINE)


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_us: int
    p50_us: int
    p90_us: int
    p99_us: int
    mean_us: float
    max_us: int
    errors: int  # non-2xx + socket errors

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "rps": round(self.rps, 1)}


def ensure_wrk() -> str:
    """Return wrk's path, installing Debian's package if needed (apt-get update on failure)."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: running `apt-get install -y wrk`", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "wrk"], env=env).returncode != 0:
        print("install failed: running `apt-get update`, then the install again", flush=True)
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], env=env, check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is still not on PATH after apt-get install")
    return found


def parse(output: str) -> WrkResult:
    match = RESULT_RE.search(output)
    if not match:
        raise RuntimeError(f"wrk printed no BENCH_RESULT line:\n{output}")
    fields = dict(item.split("=", 1) for item in match.group(1).split())
    errors = sum(
        int(fields[k]) for k in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeout_errors")
    )
    return WrkResult(
        requests=int(fields["requests"]),
        duration_us=int(fields["duration_us"]),
        p50_us=int(fields["p50_us"]),
        p90_us=int(fields["p90_us"]),
        p99_us=int(fields["p99_us"]),
        mean_us=float(fields["mean_us"]),
        max_us=int(fields["max_us"]),
        errors=errors,
    )


def run_wrk(url: str, *, connections: int, seconds: float, body: str, auth: str | None, cpu: int | None) -> WrkResult:
    """One wrk run (-t1), pinned to ``cpu``; the timeout is generous so slow proxies still finish."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
    ]
    env = {**os.environ, "BENCH_BODY": body, "BENCH_AUTH": auth or ""}
    done = subprocess.run(pinned(command, cpu), env=env, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse(done.stdout)
