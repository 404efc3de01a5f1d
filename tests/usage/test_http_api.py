"""The usage surface of a real gateway process, driven over HTTP as a client and a script would:
role scoping of /api/v1/usage (JSON and CSV), the monthly export (Gateway Admins only), endpoint
metrics (404 for an endpoint one may not see), Prometheus /metrics behind its token, and the
retention job the server runs on start and then every interval.

Traffic is real: OpenAI-style calls through /v1 to the fake upstream, recorded by the gateway's
own recorder and flusher. The expected numbers are computed from the stored usage_events rows.
"""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelgate.storage.engine import make_engine, make_sessionmaker
from modelgate.storage.migrate import upgrade
from modelgate.usage.events import UsageEvent
from modelgate.usage.flusher import UsageFlusher
from modelgate.usage.recorder import UsageRecorder
from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess
from tests.usage.workload import month_of

METRICS_TOKEN = "metrics-" + secrets.token_hex(8)
OLD_TENANT = 999  # seeded history of a tenant that is gone: invisible to every statistics view
DAY = 86400


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def write_events(db: Path, events: list[UsageEvent]) -> None:
    """Through the real recorder and flusher (another writer of the same SQLite file, as a second process would)."""

    async def run() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{db}")
        try:
            recorder = UsageRecorder(db.parent / "test-spool")
            for e in events:
                recorder.record(e)
            assert await UsageFlusher(recorder, make_sessionmaker(engine), 60.0).flush_once() == len(events)
        finally:
            await engine.dispose()

    asyncio.run(run())


def history(now: float, prefix: str, *ages_days: float) -> list[UsageEvent]:
    return [UsageEvent(ts=now - age * DAY, request_id=f"{prefix}-{age}", route="chat", status_code=200,
                       tenant_id=OLD_TENANT, endpoint_id=OLD_TENANT, user_id=1, input_tokens=7)
            for age in ages_days]  # fmt: skip


@dataclass
class Caller:
    username: str
    user_id: int
    token: str
    key: str = ""
    key_id: int = 0

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Env:
    gw: GatewayProcess
    http: httpx.Client
    admin: Caller
    users: dict[str, Caller]
    endpoints: dict[str, int]
    seeded_at: float
    request_ids: list[str] = field(default_factory=list)

    def api(self, who: Caller, path: str, **params: Any) -> httpx.Response:
        return self.http.get("/api/v1" + path, params=params, headers=who.headers())

    def ok(self, who: Caller, path: str, **params: Any) -> Any:
        resp = self.api(who, path, **params)
        assert resp.status_code == 200, f"{who.username} GET {path}: {resp.status_code} {resp.text}"
        return resp.json() if resp.headers["content-type"].startswith("application/json") else resp.text

    def events(self) -> list[dict[str, Any]]:
        cols = ("request_id", "tenant_id", "endpoint_id", "user_id", "api_key_id", "status_code", "error_type",
                "input_tokens", "output_tokens", "cost", "ts")  # fmt: skip
        return [dict(zip(cols, r, strict=True)) for r in self.gw.query(f"SELECT {', '.join(cols)} FROM usage_events")]


def login(http: httpx.Client, username: str, password: str) -> str:
    with httpx.Client(base_url=str(http.base_url), timeout=30) as browser:
        resp = browser.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert resp.status_code == 200, resp.text
        resp = browser.post("/api/v1/me/tokens", json={"name": "usage-tests"},
                            headers={"X-CSRF-Token": resp.json()["csrf_token"]})  # fmt: skip
        assert resp.status_code == 201, resp.text
        return str(resp.json()["secret"])


def chat(env: Env, key: str, model: str, stream: bool = False) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "tell me four words"}],
                            "max_tokens": 3}  # fmt: skip
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    resp = env.http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
    env.request_ids.append(resp.headers["x-request-id"])
    return resp


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Env]:
    data = tmp_path_factory.mktemp("usage-http")
    gw = GatewayProcess(data, extra_env={"MODELGATE_METRICS_TOKEN": METRICS_TOKEN,
                                         "MODELGATE_RETENTION_INTERVAL": "0.25"})  # fmt: skip
    # history older than the horizons (365 days of details, 60 of rollups), written before the server starts
    upgrade(f"sqlite+aiosqlite:///{data / 'modelgate.db'}")
    seeded_at = time.time()
    write_events(data / "modelgate.db", history(seeded_at, "old", 400, 366, 100, 63, 10, 1))
    gw.start()  # `modelgate init` (the organisation is still empty), then `modelgate serve`
    password = gw.admin_password
    assert password
    try:
        with httpx.Client(base_url=gw.base_url, timeout=60) as http:
            admin = Caller("admin", 0, login(http, "admin", password))
            me = http.get("/api/v1/me", headers=admin.headers()).json()
            admin.user_id = int(me["user_id"])
            env = Env(gw, http, admin, {}, {}, seeded_at)
            post = lambda path, body: http.post("/api/v1" + path, json=body, headers=admin.headers())  # noqa: E731
            for name, model, price in (("ep-a", "fake-model", 2.0), ("ep-b", "fake-model", 5.0),
                                       ("ep-fail", "fail-503", 1.0)):  # fmt: skip
                r = post("/endpoints", {"name": name, "base_url": upstream.base_url, "model_version": model,
                                        "price_input_per_m": price, "price_output_per_m": price * 3})  # fmt: skip
                assert r.status_code == 201, r.text
                env.endpoints[name] = int(r.json()["id"])
            for name in ("alice", "bob", "carol"):
                pw = "pw-" + secrets.token_urlsafe(12)
                r = post("/users", {"username": name, "password": pw})
                assert r.status_code == 201, r.text
                env.users[name] = Caller(name, int(r.json()["id"]), login(http, name, pw))
            for name, ep in (("alice", "ep-a"), ("bob", "ep-b")):
                r = post("/grants", {"username": name, "role": "ENDPOINT_USER", "endpoints": [ep]})
                assert r.status_code == 201, r.text
            for c in (admin, *env.users.values()):
                r = post("/api-keys", {"owner": c.username, "name": f"{c.username}-key"})
                assert r.status_code == 201, r.text
                c.key, c.key_id = r.json()["secret"], int(r.json()["id"])
            gw.wait_synced()
            _traffic(env)
            yield env
    finally:
        gw.stop()


def _traffic(env: Env) -> None:
    alice, bob, carol, admin = env.users["alice"], env.users["bob"], env.users["carol"], env.admin
    expect = [(alice, "ep-a", 200)] * 3 + [(alice, "ep-b", 403), (bob, "ep-b", 200), (bob, "ep-b", 200),
              (bob, "ep-a", 403), (carol, "ep-a", 403), (admin, "ep-a", 200), (admin, "ep-b", 200),
              (admin, "ep-fail", 502), (admin, "no-such-model", 404)]  # fmt: skip
    for who, model, status in expect:
        assert chat(env, who.key, model).status_code == status
    resp = chat(env, alice.key, "ep-a", stream=True)
    assert resp.status_code == 200 and "[DONE]" in resp.text
    assert chat(env, "mg-not-a-real-key", "ep-a").status_code == 401
    for rid in env.request_ids:
        env.gw.usage_for(rid)


# --------------------------------------------------------------------------- statistics


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tin, tout = sum(r["input_tokens"] for r in rows), sum(r["output_tokens"] for r in rows)
    return {"calls": len(rows), "input_tokens": tin, "output_tokens": tout, "total_tokens": tin + tout,
            "cost": pytest.approx(sum(r["cost"] for r in rows), abs=1e-6)}  # fmt: skip


def test_regular_users_see_only_their_own_calls_on_their_endpoints(env: Env) -> None:
    events = [e for e in env.events() if e["tenant_id"] == 1]
    alice, bob, carol = env.users["alice"], env.users["bob"], env.users["carol"]
    for who, granted in ((alice, "ep-a"), (bob, "ep-b"), (carol, None)):
        mine = [e for e in events if e["user_id"] == who.user_id and e["endpoint_id"] == env.endpoints.get(granted)]
        hidden = [e for e in events if e not in mine]
        assert hidden  # others' calls, and this user's own calls on endpoints they may not monitor
        for dimension, ids in (("endpoint", {env.endpoints.get(granted)}), ("user", {who.user_id}),
                               ("api_key", {who.key_id}), ("tenant", {1})):  # fmt: skip
            for range_ in ("last_week", "last_month"):
                got = env.ok(who, "/usage", dimension=dimension, range=range_)
                assert got["scoped_to_self"] is True
                assert got["totals"] == totals(mine), (who.username, dimension)
                assert {r["id"] for r in got["rows"]} == (ids if mine else set())
        if granted is not None:
            assert len(mine) >= 2 and any(e["endpoint_id"] != env.endpoints[granted] and e["user_id"] == who.user_id
                                          for e in events)  # fmt: skip
    # alice's stream and her three calls on ep-a count; bob's denied call on ep-a does not show to her
    assert env.ok(alice, "/usage", dimension="endpoint")["totals"]["calls"] == 4


def test_gateway_admin_sees_everything_of_the_tenant(env: Env) -> None:
    events = [e for e in env.events() if e["tenant_id"] == 1]
    got = env.ok(env.admin, "/usage", dimension="user", range="last_week")
    assert got["scoped_to_self"] is False and got["totals"] == totals(events)
    by_user = {r["name"]: r["calls"] for r in got["rows"]}
    assert by_user == {c.username: sum(1 for e in events if e["user_id"] == c.user_id)
                       for c in (env.admin, *env.users.values())}  # fmt: skip
    got = env.ok(env.admin, "/usage", dimension="endpoint", range="last_month")
    assert {r["name"]: r["calls"] for r in got["rows"]} == {
        "ep-a": 7, "ep-b": 4, "ep-fail": 1, "(none)": 1}  # the unknown model resolved no endpoint  # fmt: skip


def test_statistics_download_as_csv(env: Env) -> None:
    for who in (env.admin, env.users["alice"]):
        resp = env.api(who, "/usage", dimension="api_key", range="last_month", format="csv")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
        assert "attachment" in resp.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(resp.text)))
        as_json = env.ok(who, "/usage", dimension="api_key", range="last_month")["rows"]
        assert [(r["name"], r["date"], int(r["calls"]), int(r["total_tokens"])) for r in rows] == [
            (r["name"], r["date"], r["calls"], r["total_tokens"]) for r in as_json]  # fmt: skip
        assert rows
    assert env.api(env.admin, "/usage", format="xml").status_code in (400, 422)
    assert env.api(env.admin, "/usage", dimension="model").status_code == 400


def test_monthly_export_is_for_gateway_admins_only_and_its_totals_match(env: Env) -> None:
    month = datetime.now(UTC).strftime("%Y-%m")  # tenant "default" lives in UTC
    for who in env.users.values():
        resp = env.api(who, "/usage/export", month=month)
        assert resp.status_code == 403 and resp.headers["content-type"].startswith("application/problem+json")
    resp = env.api(env.admin, "/usage/export", month=month)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text, newline="")))
    first, last = month_of(datetime.now(UTC).date())
    start = datetime.combine(first, datetime.min.time(), UTC).timestamp()
    events = [e for e in env.events()
              if e["tenant_id"] == 1 and datetime.fromisoformat(e["ts"]).replace(tzinfo=UTC).timestamp() >= start]
    assert {r["request_id"] for r in rows} == {e["request_id"] for e in events} and len(rows) == len(events)
    stats = env.ok(env.admin, "/usage", dimension="tenant", range="custom", start=str(first), end=str(last))
    assert stats["totals"]["calls"] == len(rows)
    assert stats["totals"]["total_tokens"] == sum(int(r["total_tokens"]) for r in rows)
    assert stats["totals"]["cost"] == pytest.approx(sum(float(r["cost"]) for r in rows), abs=1e-6)
    assert {r["user"] for r in rows} == {"admin", "alice", "bob", "carol"}
    too_old = month_of(datetime.now(UTC).date(), 12)[0].strftime("%Y-%m")
    assert env.api(env.admin, "/usage/export", month=too_old).status_code == 400
    assert env.api(env.admin, "/usage/export", month="2024-1").status_code in (400, 422)


def test_endpoint_metrics_need_a_grant_and_count_the_whole_endpoint(env: Env) -> None:
    events = env.events()
    on_a = [e for e in events if e["endpoint_id"] == env.endpoints["ep-a"]]
    alice, bob, carol = env.users["alice"], env.users["bob"], env.users["carol"]
    got = env.ok(alice, "/endpoints/ep-a/metrics", range="1h")
    assert got["granularity"] == "minute" and len(got["series"]) in (60, 61)
    ov = got["overview"]
    assert ov["requests"] == len(on_a) == 7  # the endpoint's numbers: every caller's calls on it
    assert ov["errors_by_type"]["permission_denied"] == 2 and ov["errors"] == 2 and ov["successes"] == 5
    assert ov["input_tokens"] == sum(e["input_tokens"] for e in on_a)
    assert ov["ttft_avg_ms"] is not None and ov["latency_p99_ms"] >= ov["latency_p50_ms"]
    failing = env.ok(env.admin, "/endpoints/ep-fail/metrics", range="15m")["overview"]
    assert failing["errors_by_type"]["upstream_5xx"] == 1
    for who, name in ((alice, "ep-b"), (alice, "ep-fail"), (bob, "ep-a"), (carol, "ep-a")):
        resp = env.api(who, f"/endpoints/{name}/metrics", range="1h")
        assert resp.status_code == 404, (who.username, name, resp.text)
    assert env.api(alice, "/endpoints/ep-a/metrics", range="61d").status_code == 400
    got = env.ok(env.admin, "/endpoints/ep-b/metrics", range="30d")
    assert got["granularity"] == "hour" and got["overview"]["requests"] == 4
    # an explicit window and granularity: UTC-aligned buckets from the one holding start
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=2, minutes=7)
    got = env.ok(env.admin, "/endpoints/ep-b/metrics", start=start.isoformat(), end=end.isoformat(), granularity="day")
    assert got["granularity"] == "day" and got["series"][0]["t"] == f"{start.date()}T00:00:00+00:00"
    assert len(got["series"]) == (end.date() - start.date()).days + 1 and got["overview"]["requests"] == 4
    assert env.api(env.admin, "/endpoints/ep-b/metrics", range="30d", granularity="minute").status_code == 400


# --------------------------------------------------------------------------- Prometheus


def scrape(env: Env, token: str | None = METRICS_TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return env.http.get("/metrics", headers=headers)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}  # fmt: skip


def test_prometheus_metrics_need_the_token_and_count_the_traffic(env: Env) -> None:
    assert scrape(env, None).status_code == 401
    assert scrape(env, "wrong").status_code == 401
    n = len(env.request_ids)

    def requests_seen() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        got = samples(scrape(env).text)
        total = sum(v for (name, _), v in got.items() if name == "modelgate_requests_total")
        return got if total >= n else None

    got = wait_for(requests_seen, "the flusher to feed the counters")

    def value(name: str, **labels: str) -> float:
        return sum(v for (k, lab), v in got.items() if k == name and set(labels.items()) <= lab)

    events = [e for e in env.events() if e["request_id"] in set(env.request_ids)]
    assert value("modelgate_requests_total") == n == len(events)
    assert value("modelgate_requests_total", route="chat", status="403") == 3
    assert value("modelgate_errors_total", type="permission_denied") == 3
    assert value("modelgate_errors_total", type="upstream_5xx") == 1
    assert value("modelgate_errors_total", type="auth_failed") == 1
    assert value("modelgate_errors_total", type="bad_request") == 1  # the unknown model
    assert value("modelgate_upstream_responses_total", code="503") == 1
    assert value("modelgate_upstream_responses_total", code="200") == sum(e["status_code"] == 200 for e in events)
    assert value("modelgate_request_duration_seconds_count", route="chat") == n
    assert value("modelgate_request_duration_seconds_bucket", route="chat", le="+Inf") == n
    assert value("modelgate_time_to_first_token_seconds_count") == 1
    assert value("modelgate_tokens_total", direction="input") == sum(e["input_tokens"] for e in events)
    assert value("modelgate_tokens_total", direction="output") == sum(e["output_tokens"] for e in events)
    assert ("modelgate_usage_buffer_depth", frozenset()) in got
    assert 0 <= got[("modelgate_snapshot_age_seconds", frozenset())] < 60


# --------------------------------------------------------------------------- retention in the server


def test_server_prunes_on_start_and_then_every_interval(env: Env) -> None:
    def ages() -> set[str]:
        return {r[0] for r in env.gw.query("SELECT request_id FROM usage_events WHERE tenant_id = ?", OLD_TENANT)}

    # details older than 365 days went on start; the younger ones stay
    wait_for(lambda: ages() == {"old-100", "old-63", "old-10", "old-1"}, "the start-up prune")
    minute_days = {round((env.seeded_at - m) / DAY) for (m,) in
                   env.gw.query("SELECT minute FROM usage_minute WHERE endpoint_id = ?", OLD_TENANT)}  # fmt: skip
    assert minute_days == {10, 1}  # rollups older than 60 days went
    assert env.gw.query("SELECT count(*) FROM usage_daily WHERE tenant_id = ?", OLD_TENANT)[0][0] == 2
    # written while the server runs: the next scheduled run removes it
    now = time.time()
    write_events(env.gw.data_dir / "modelgate.db", history(now, "late", 370, 70, 5))
    wait_for(lambda: "late-370" not in ages() and {"late-70", "late-5"} <= ages(), "the periodic prune")
    wait_for(lambda: env.gw.query("SELECT count(*) FROM usage_daily WHERE tenant_id = ?", OLD_TENANT)[0][0] == 3,
             "the periodic prune of daily rollups")  # fmt: skip
    assert "usage retention run failed" not in env.gw.log_text()
