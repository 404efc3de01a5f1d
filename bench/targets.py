"""The benchmark's scenarios: how to start each server and how to call it.

(a) the fake upstream directly, (b) the bare pass-through proxy, (c) modelgate,
(d) LiteLLM's proxy (optional). Each returns a Target with the URL and key wrk uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from procs import LOAD_CPU, PROXY_CPU, Server, free_port, start, wait_http

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
VENV_BIN = REPO / ".venv" / "bin"
LITELLM_VENV = BENCH_DIR / ".litellm-venv"
MODEL = "bench-llm"
CLIENT_KEY = "sk-bench"
VENDOR_KEY = "sk-fake"
# Scenario names, as printed in the table.
DIRECT = "(a) upstream"
PASSTHROUGH = "(b) pass-through"
MODELGATE = "(c) modelgate"
LITELLM = "(d) LiteLLM"


@dataclass
class Target:
    name: str
    url: str  # the chat completions URL
    auth: str | None  # the Authorization header value
    servers: list[Server] = field(default_factory=list)
    # modelgate only: the readiness URL, whose usage_buffer says how many usage events still wait
    ready_url: str | None = None

    def drain(self, timeout: float = 120.0) -> float:
        """Seconds until every usage event recorded so far is written (0 for other proxies).

        A gateway whose writer fell behind during a run has not finished that run's work: the
        benchmark adds this time to the run, so requests/s means requests *recorded* per second.
        """
        if self.ready_url is None:
            return 0.0
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            with urllib.request.urlopen(self.ready_url, timeout=10) as resp:
                waiting = json.loads(resp.read())["checks"]["usage_buffer"]
            if waiting == 0:
                return time.perf_counter() - started
            time.sleep(0.02)
        raise RuntimeError(f"usage buffer not drained after {timeout:.0f} s")

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()


def python() -> str:
    venv_python = VENV_BIN / "python"
    return str(venv_python) if venv_python.exists() else sys.executable


def start_upstream(log_dir: Path) -> Target:
    port = free_port()
    server = start(
        "upstream",
        [python(), str(BENCH_DIR / "fast_upstream.py"), "--port", str(port)],
        cpu=LOAD_CPU,
        log_dir=log_dir,
    )
    wait_http(server, f"http://127.0.0.1:{port}/v1/models")
    return Target(DIRECT, f"http://127.0.0.1:{port}/v1/chat/completions", None, [server])


def origin(upstream: Target) -> str:
    return upstream.url.split("/v1/", 1)[0]


def start_passthrough(upstream: Target, log_dir: Path) -> Target:
    port = free_port()
    command = [
        python(),
        str(BENCH_DIR / "passthrough.py"),
        "--port",
        str(port),
        "--upstream",
        origin(upstream),
        "--key",
        CLIENT_KEY,
        "--upstream-key",
        VENDOR_KEY,
    ]
    server = start("passthrough", command, cpu=PROXY_CPU, log_dir=log_dir)
    wait_http(server, f"http://127.0.0.1:{port}/", ok=())
    return Target(PASSTHROUGH, f"http://127.0.0.1:{port}/v1/chat/completions", f"Bearer {CLIENT_KEY}", [server])


# ---------------------------------------------------------------------- modelgate


def modelgate_cli(args: Sequence[str], data_dir: Path) -> str:
    """Run ``modelgate <args>`` with the bench's data dir; return stdout, fail loudly."""
    command = [str(VENV_BIN / "modelgate"), *args]
    env = {**os.environ, "MODELGATE_DATA_DIR": str(data_dir)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"`modelgate {' '.join(args)}` failed ({done.returncode}):\n{done.stderr}{done.stdout}")
    return done.stdout


def json_from(stdout: str) -> dict[str, object]:
    """The JSON object a ``--json`` command printed (tolerating lines before it)."""
    start = stdout.find("{")
    if start < 0:
        raise RuntimeError(f"expected JSON on stdout, got:\n{stdout}")
    value = json.loads(stdout[start:])
    if not isinstance(value, dict):
        raise RuntimeError(f"expected a JSON object, got: {value!r}")
    return value


MODELGATE_LIMITS = "(c2) modelgate + limits, in-process"
MODELGATE_REDIS = "(c3) modelgate + limits, Redis"
NO_LIMIT = str(10**15)  # limits that never bind: the admission work is measured, not refusals


def start_modelgate(
    upstream: Target, log_dir: Path, data_dir: Path, name: str = MODELGATE, *, limits: bool = False,
    redis_url: str | None = None,
) -> Target:
    """modelgate with key auth, permission check and usage recording; with ``limits`` also RPM, TPM,
    an endpoint quota and a tenant quota on every request (in-process counters, or Redis)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    modelgate_cli(["init"], data_dir)
    modelgate_cli(
        [
            "endpoints",
            "create",
            MODEL,
            "--base-url",
            origin(upstream) + "/v1",
            "--model-version",
            "fake-model",
            "--api-key",
            VENDOR_KEY,
            "--json",
        ],
        data_dir,
    )
    secret = json_from(modelgate_cli(["keys", "create", "--owner", "admin", "--name", "bench", "--json"], data_dir))[
        "secret"
    ]
    if limits:
        modelgate_cli(["endpoints", "update", MODEL, "--rpm", "1000000000", "--tpm", NO_LIMIT, "--quota", NO_LIMIT],
                      data_dir)  # fmt: skip
        modelgate_cli(["quota", "set", "--tokens", NO_LIMIT], data_dir)
    env = {"MODELGATE_DATA_DIR": str(data_dir)}
    if redis_url:
        env["MODELGATE_REDIS_URL"] = redis_url
    port = free_port()
    server = start(
        name.split(")")[0].strip("("),
        [str(VENV_BIN / "modelgate"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cpu=PROXY_CPU,
        log_dir=log_dir,
        env=env,
    )
    wait_http(server, f"http://127.0.0.1:{port}/healthz")
    return Target(name, f"http://127.0.0.1:{port}/v1/chat/completions", f"Bearer {secret}", [server],
                  ready_url=f"http://127.0.0.1:{port}/readyz")  # fmt: skip


# ------------------------------------------------------------------------ LiteLLM


LITELLM_CONFIG = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/fake-model
      api_base: {api_base}
      api_key: {vendor_key}
general_settings:
  master_key: {master_key}
litellm_settings:
  telemetry: false
  drop_params: true
"""
LITELLM_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOG": "ERROR",
    "DISABLE_SCHEMA_UPDATE": "True",
}


def ensure_litellm() -> Path | None:
    """The litellm executable in bench/.litellm-venv, creating the venv if needed; None on failure."""
    executable = LITELLM_VENV / "bin" / "litellm"
    if executable.exists():
        return executable
    print(f"creating {LITELLM_VENV} and installing 'litellm[proxy]' (one time)...", flush=True)
    steps = [
        [sys.executable, "-m", "venv", str(LITELLM_VENV)],
        [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"],
    ]
    for step in steps:
        if subprocess.run(step).returncode != 0:
            print(f"NOTE: `{' '.join(step)}` failed; skipping the LiteLLM row.", flush=True)
            return None
    return executable if executable.exists() else None


def start_litellm(upstream: Target, log_dir: Path) -> Target | None:
    executable = ensure_litellm()
    if executable is None:
        return None
    master_key = "sk-litellm-master"
    config = log_dir / "litellm.yaml"
    config.write_text(
        LITELLM_CONFIG.format(
            model=MODEL, api_base=origin(upstream) + "/v1", vendor_key=VENDOR_KEY, master_key=master_key
        )
    )
    port = free_port()
    command = [
        str(executable),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
        "--telemetry",
        "False",
    ]
    server = start("litellm", command, cpu=PROXY_CPU, log_dir=log_dir, env=LITELLM_ENV)
    try:
        wait_http(server, f"http://127.0.0.1:{port}/health/liveliness", timeout=180)
    except RuntimeError as exc:
        server.stop()
        print(f"NOTE: LiteLLM did not start; skipping its row.\n{exc}", flush=True)
        return None
    return Target(LITELLM, f"http://127.0.0.1:{port}/v1/chat/completions", f"Bearer {master_key}", [server])


# ----------------------------------------------------------------- correctness


def check(target: Target, body: str, stream: bool) -> None:
    """One request before measuring: a 200 with a real completion, or the row is void."""
    headers = {"Content-Type": "application/json"}
    if target.auth:
        headers["Authorization"] = target.auth
    request = urllib.request.Request(target.url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            payload = resp.read().decode()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        exc.close()
        raise RuntimeError(f"{target.name}: HTTP {exc.code}: {detail[:500]}") from None
    if stream:
        if "data: [DONE]" not in payload or "chat.completion.chunk" not in payload:
            raise RuntimeError(f"{target.name}: not an OpenAI event stream:\n{payload[:500]}")
    elif json.loads(payload).get("object") != "chat.completion":
        raise RuntimeError(f"{target.name}: not a chat.completion:\n{payload[:500]}")
