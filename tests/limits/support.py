"""Helpers of the limits tests: the admin API of a tenant, request bursts, Redis databases.

Configuration goes through the real admin API with a personal access token (one CLI call per
gateway to mint the first token; every tenant after that is created, logged in to and given a
token over HTTP), so a test can afford a tenant of its own: tenant quotas never leak between
tests that share a gateway.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import redis

from tests.fakes.upstream import FakeUpstream, words
from tests.harness import GatewayProcess, free_port
from tests.services import REDIS_HOST, REDIS_PORT, require_redis

__all__ = [
    "PROMPT_14",
    "Burst",
    "PrivateRedis",
    "TenantAdmin",
    "chat_body",
    "error_code",
    "flush_worker_redis",
    "insert_usage",
    "login_token",
    "poll",
    "quota_key",
    "recorded_tokens",
    "root_admin",
    "start_gateway",
    "uid",
    "upstream_calls",
    "wait_usage",
    "watch_logs",
    "worker_redis_url",
]

# 14 one-letter words: the gateway's estimate of this prompt (3 + 4 + ceil(27 bytes / 4)) equals
# the fake upstream's count (14 words), so with max_tokens <= 15 a call records exactly what was
# reserved for it and the counters are the same whatever the order of settles.
PROMPT_14 = "a b c d e f g h i j k l m n"


def uid() -> str:
    return uuid.uuid4().hex[:10]


def chat_body(model: str, content: str = PROMPT_14, max_tokens: int | None = 6, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


def recorded_tokens(content: str, max_tokens: int) -> int:
    """What the fake upstream reports for ``chat_body(content, max_tokens)``: prompt + reply words."""
    return len(words(content)) + min(max_tokens, len(words("echo: " + content)))


def poll(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = "condition") -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def upstream_calls(up: FakeUpstream, model_version: str) -> int:
    return sum(1 for r in up.requests if r.model == model_version)


def wait_usage(gw: GatewayProcess, request_ids: Iterable[str]) -> list[dict[str, Any]]:
    return [gw.usage_for(rid) for rid in request_ids]


def start_gateway(gw: GatewayProcess, timeout: float = 180.0) -> GatewayProcess:
    """``gw.start()``, with more patience than the harness's 30 s on a loaded machine: a server
    still starting (process alive, not yet answering) is waited for; anything else is raised."""
    try:
        return gw.start()
    except RuntimeError as exc:
        if "did not start" not in str(exc) or gw.proc is None or gw.proc.poll() is not None:
            raise

    def healthy() -> bool:
        assert gw.proc is not None and gw.proc.poll() is None, f"gateway exited:\n{gw.log_text()}"
        try:
            return httpx.get(gw.base_url + "/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    poll(healthy, timeout=timeout, interval=0.1, what="the gateway to start")
    return gw


# ----------------------------------------------------------------------------- Redis


def worker_redis_db() -> int:
    """A database of the shared Redis owned by this xdist worker: 15, 14, ... for gw0, gw1, ...
    (counted from the top, away from the low numbers other suites pick first; 0 is left alone).
    Modules of one worker run one after the other, so they can share it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    n = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    return 15 - n % 15


def worker_redis_url() -> str:
    require_redis()
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{worker_redis_db()}"


def quota_key(gw: GatewayProcess, kind: str, subject_id: int, cycle: str = "monthly", tz: str = "UTC") -> str:
    """The Redis key of the current quota counter of a tenant (``kind="t"``) or an endpoint
    (``"e"``): ``mg:q:<kind>:<id>:<quota epoch>:<cycle id>``, the epoch read from the database
    (every quota edit starts a new counter)."""
    from modelgate.limits.windows import cycle_id

    table = "tenants" if kind == "t" else "endpoints"
    mark = "$1" if (gw.database_url or "").startswith("postgresql") else "?"
    epoch = gw.query(f"SELECT quota_epoch FROM {table} WHERE id = {mark}", subject_id)[0][0]
    return f"mg:q:{kind}:{subject_id}:{epoch}:{cycle_id(cycle, tz, time.time())[0]}"


def flush_worker_redis(url: str) -> None:
    """FLUSHDB of this worker's database only (never the shared server as a whole)."""
    with redis.Redis.from_url(url) as r:
        r.flushdb()


class PrivateRedis:
    """A redis-server of the test's own on a free port, without persistence: killing it loses
    everything, as a crashed or replaced Redis does."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        exe = shutil.which("redis-server")
        if exe is None:
            require_redis()  # skips or fails with the usual message
            raise RuntimeError("redis-server is not installed")
        self.exe = exe

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> PrivateRedis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        poll(self.ping, timeout=10, what=f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        try:
            with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5) as r:
                return bool(r.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
        with socket.socket() as s:  # the port must be closed before the test goes on
            assert s.connect_ex(("127.0.0.1", self.port)) != 0

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=2)


# ----------------------------------------------------------------------------- admin API


@dataclass
class TenantAdmin:
    """The admin API of one tenant, as its Gateway Admin (a personal access token)."""

    gw: GatewayProcess
    token: str
    username: str
    tenant_id: int
    tenant_name: str | None = None
    _credential: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.gw.base_url + "/api/v1",
                                 headers={"authorization": f"Bearer {self.token}"}, timeout=60)  # fmt: skip

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, expect: int = 200, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    # -- tenants (the first tenant's admin is the Instance Admin)
    def new_tenant(self, timezone: str = "UTC", prefix: str = "lim") -> TenantAdmin:
        name, user = f"{prefix}-{uid()}", f"adm-{uid()}"
        out = self.call("POST", "/tenants", 201, json={"name": name, "admin_username": user, "timezone": timezone})
        token = login_token(self.gw, user, out["admin"]["password"], name)
        return TenantAdmin(self.gw, token, user, int(out["id"]), name)

    # -- endpoints
    def credential(self) -> int:
        if self._credential is None:
            out = self.call("POST", "/credentials", 201, json={"name": f"up-{uid()}", "secret": "sk-vendor"})
            self._credential = int(out["id"])
        return self._credential

    def endpoint(self, up: FakeUpstream, behaviour: str = "fake-model", **fields: Any) -> dict[str, Any]:
        """A new endpoint whose upstream model id is unique, so its upstream calls can be counted."""
        name = f"ep-{uid()}"
        out = self.call("POST", "/endpoints", 201, json={
            "name": name, "base_url": up.base_url, "model_version": f"{behaviour}-{name}",
            "credential_id": self.credential(), **fields})  # fmt: skip
        return dict(out)

    def patch_endpoint(self, name: str, **fields: Any) -> dict[str, Any]:
        return dict(self.call("PATCH", f"/endpoints/{name}", json=fields))

    def endpoint_quota(self, name: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/endpoints/{name}/quota"))

    # -- keys and quota
    def key(self, **fields: Any) -> tuple[int, str]:
        out = self.call("POST", "/api-keys", 201, json={"owner": self.username, **fields})
        return int(out["id"]), str(out["secret"])

    def set_quota(self, tokens: int | None, cycle: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"tokens": tokens}
        if cycle is not None:
            body["cycle"] = cycle
        return dict(self.call("PUT", "/quota", json=body))

    def quota(self) -> dict[str, Any]:
        return dict(self.call("GET", "/quota"))


def login_token(gw: GatewayProcess, username: str, password: str, tenant: str | None = None) -> str:
    """A personal access token minted through a console login (POST /auth/login, /me/tokens)."""
    with httpx.Client(base_url=gw.base_url + "/api/v1", timeout=60) as anon:
        body = {"username": username, "password": password, **({"tenant": tenant} if tenant else {})}
        r = anon.post("/auth/login", json=body)
        assert r.status_code == 200, r.text
        r = anon.post("/me/tokens", json={"name": "limits-tests"}, headers={"x-csrf-token": r.json()["csrf_token"]})
        assert r.status_code == 201, r.text
        return str(r.json()["secret"])


_LIVE_GATEWAYS: list[GatewayProcess] = []  # gateways whose logs a failing burst assertion shows


def watch_logs(gw: GatewayProcess) -> None:
    """Show this gateway's log tail when an assertion on a burst's status codes fails."""
    if gw not in _LIVE_GATEWAYS:
        _LIVE_GATEWAYS.append(gw)


def root_admin(gw: GatewayProcess) -> TenantAdmin:
    """The bootstrap admin of ``gw`` (Instance Admin, Gateway Admin of the first tenant): logged in
    with the password ``init`` printed, or else given a token by ``modelgate tokens create``."""
    if gw.admin_password:
        token = login_token(gw, "admin", gw.admin_password)
    else:
        token = gw.cli("tokens", "create", "--user", "admin", "--json")["secret"]
    tid = int(gw.query("SELECT id FROM tenants ORDER BY id LIMIT 1")[0][0])
    watch_logs(gw)
    return TenantAdmin(gw, token, "admin", tid)


# ----------------------------------------------------------------------------- bursts


class CodeCounts(dict[int, int]):
    """Status code -> count; its repr carries what the gateways logged, for a failing assertion."""

    logs: str = ""

    def __repr__(self) -> str:
        return super().__repr__() + (f"\n--- gateway logs (tail) ---\n{self.logs}" if self.logs else "")


@dataclass
class Burst:
    """The responses of many concurrent requests, with what the tests ask of them."""

    responses: list[httpx.Response]
    seconds: float

    def status(self, code: int) -> list[httpx.Response]:
        return [r for r in self.responses if r.status_code == code]

    def codes(self) -> CodeCounts:
        out = CodeCounts()
        for r in self.responses:
            out[r.status_code] = out.get(r.status_code, 0) + 1
        out.logs = "\n".join(gw.log_text()[-1500:] for gw in _LIVE_GATEWAYS if gw.proc is not None)
        return out

    @staticmethod
    async def run(targets: list[tuple[str, str, dict[str, Any]]], timeout: float = 60) -> Burst:
        """POST every (base_url, key, body) at once to /v1/chat/completions; one connection each."""
        limits = httpx.Limits(max_connections=len(targets) + 10, max_keepalive_connections=len(targets) + 10)
        start = time.monotonic()
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            gate = asyncio.Event()

            async def one(base: str, key: str, body: dict[str, Any]) -> httpx.Response:
                await gate.wait()
                return await client.post(base + "/v1/chat/completions", json=body,
                                         headers={"authorization": f"Bearer {key}"})  # fmt: skip

            tasks = [asyncio.ensure_future(one(*t)) for t in targets]
            await asyncio.sleep(0)
            gate.set()
            responses = await asyncio.gather(*tasks)
        return Burst(list(responses), time.monotonic() - start)


def error_code(r: httpx.Response) -> str | None:
    try:
        return r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def insert_usage(gw: GatewayProcess, *, ts: float, tenant_id: int, endpoint_id: int | None, tokens: int) -> None:
    """A usage record written straight into the gateway's SQLite database (as a process that
    recorded a call at ``ts`` would have), with the timestamp format the ORM stores."""
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with gw._db() as conn:
        conn.execute(
            "INSERT INTO usage_events (ts, request_id, tenant_id, endpoint_id, user_id, api_key_id, channel, route, "
            "is_stream, status_code, error_type, input_tokens, output_tokens, cached_tokens, reasoning_tokens, "
            "is_estimated, latency_ms, ttft_ms, upstream_status, cost) "
            "VALUES (?, ?, ?, ?, NULL, NULL, 'api', 'chat', 0, 200, NULL, ?, ?, 0, 0, 0, 1.0, NULL, 200, 0.0)",
            (stamp, f"req_inserted_{uid()}", tenant_id, endpoint_id, tokens // 2, tokens - tokens // 2),
        )
