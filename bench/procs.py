"""Start, pin, wait for and stop the benchmark's server processes.

Why pinning: on a 2-core machine the proxy under test gets CPU 0 to itself while wrk and
the fake upstream share CPU 1, so "one process on one core" (DESIGN §5) is what we measure
and runs are comparable with each other.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PROXY_CPU = 0
LOAD_CPU = 1


def can_pin() -> bool:
    return shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2


def pinned(command: Sequence[str], cpu: int | None) -> list[str]:
    """Prefix ``taskset -c <cpu>`` when pinning is possible."""
    if cpu is None or not can_pin():
        return list(command)
    return ["taskset", "-c", str(cpu), *command]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A started server process (its own session, so stopping it stops its children too)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start(
    name: str, command: Sequence[str], *, cpu: int | None, log_dir: Path, env: Mapping[str, str] | None = None
) -> Server:
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            pinned(command, cpu),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    return Server(name, process, log)


def wait_http(server: Server, url: str, timeout: float = 60.0, ok: tuple[int, ...] = (200,)) -> None:
    """Poll ``url`` until it answers one of ``ok`` (any status if ``ok`` is empty); stop the server on failure."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited ({server.process.returncode}):\n{server.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if not ok or resp.status in ok:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            exc.close()
            if not ok or exc.code in ok:
                return
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    server.stop()  # never leave a half-started server behind
    raise RuntimeError(f"{server.name} not ready at {url} after {timeout:.0f}s ({last}):\n{server.tail()}")
