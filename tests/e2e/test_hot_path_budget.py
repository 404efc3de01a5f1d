"""The hot path makes no database round trip (DESIGN.md §5, issue 2 "Hot path without database
round trips"): keys, endpoints and grants come from the in-memory snapshot; usage goes to a
buffer that a background task writes in batches.

The app runs in process (the real ``create_app`` with its lifespan: snapshot refresher, usage
flusher, pooled upstream client) so that a SQLAlchemy ``before_cursor_execute`` listener sees
every statement the process issues, together with the asyncio task that issued it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import event

from modelgate.app import create_app
from modelgate.settings import Settings
from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess

FLUSHER_TASK = "usage-flusher"
REFRESHER_TASK = "snapshot-refresher"


@dataclass(frozen=True)
class Statement:
    task: str
    sql: str
    many: bool


@dataclass(frozen=True)
class Configured:
    data_dir: Path
    key: str


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Configured:
    """A data directory set up with the CLI, as an operator would, before the app starts."""
    gw = GatewayProcess(tmp_path_factory.mktemp("hotpath"))
    gw.data_dir.mkdir(parents=True, exist_ok=True)
    gw.cli("init", "--json")
    gw.cli(
        "endpoints",
        "create",
        "hp-llm",
        "--base-url",
        upstream.base_url,
        "--model-version",
        "fake-model",
        "--api-key",
        "sk-vendor",
        "--json",
    )
    gw.cli(
        "endpoints",
        "create",
        "hp-emb",
        "--base-url",
        upstream.base_url,
        "--model-version",
        "fake-embedding",
        "--api-key",
        "sk-vendor",
        "--category",
        "embedding",
        "--json",
    )
    key = gw.cli("keys", "create", "--owner", "admin", "--json")["secret"]
    return Configured(gw.data_dir, key)


def _task_name() -> str:
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return "<no loop>"
    return task.get_name() if task is not None else "<no task>"


async def _calls(client: httpx.AsyncClient, key: str, rounds: int) -> list[int]:
    """One round: non-stream and stream chat, an embedding, a bad key, an unknown endpoint."""
    auth = {"authorization": f"Bearer {key}"}
    chat = {"model": "hp-llm", "messages": [{"role": "user", "content": "hello hot path"}]}

    async def one(i: int) -> int:
        kind = i % 5
        if kind == 0:
            resp = await client.post("/v1/chat/completions", json=chat, headers=auth)
        elif kind == 1:
            resp = await client.post("/v1/chat/completions", json={**chat, "stream": True}, headers=auth)
            assert resp.text.rstrip().endswith("data: [DONE]")
        elif kind == 2:
            resp = await client.post("/v1/embeddings", json={"model": "hp-emb", "input": "x y"}, headers=auth)
        elif kind == 3:
            resp = await client.post("/v1/chat/completions", json=chat, headers={"authorization": "Bearer mg-bad"})
        else:
            resp = await client.post("/v1/chat/completions", json={**chat, "model": "hp-none"}, headers=auth)
        return resp.status_code

    codes: list[int] = []
    for r in range(rounds):
        codes += await asyncio.gather(*(one(r * 10 + i) for i in range(10)))
    return codes


async def test_no_database_round_trip_per_request(configured: Configured) -> None:
    settings = Settings(data_dir=configured.data_dir, usage_flush_interval=0.2, snapshot_poll_interval=0.05)
    app = create_app(settings)
    services = app.state.services
    statements: list[Statement] = []

    def on_execute(conn: Any, cursor: Any, sql: str, params: Any, context: Any, executemany: bool) -> None:
        statements.append(Statement(_task_name(), " ".join(sql.split()), executemany))

    event.listen(services.engine.sync_engine, "before_cursor_execute", on_execute)
    # on an SQLite file the flusher writes through its own connection (usage/sqlite_direct.py)
    assert services.flusher.direct is not None
    services.flusher.direct.on_statement = lambda sql, rows: statements.append(
        Statement(_task_name(), " ".join(sql.split()), rows > 1)
    )
    transport = httpx.ASGITransport(app=app)
    async with app.control.router.lifespan_context(app.control), httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        # warm up: first requests, first flush, a few version polls
        assert set(await _calls(client, configured.key, 1)) == {200, 401, 404}
        await _wait(lambda: services.flusher.flushed >= 10)
        statements.clear()
        flushed_before = services.flusher.flushed
        started = time.monotonic()

        codes: list[int] = []
        for _ in range(6):  # six rounds of ten concurrent calls, each round flushed before the next
            codes += await _calls(client, configured.key, 1)
            want = flushed_before + len(codes)
            await _wait(lambda want=want: services.flusher.flushed >= want)
        n = len(codes)
        assert codes.count(200) == 36 and codes.count(401) == 12 and codes.count(404) == 12
        elapsed = time.monotonic() - started
        seen = list(statements)

    by_task: dict[str, list[Statement]] = {}
    for s in seen:
        by_task.setdefault(s.task if s.task in (FLUSHER_TASK, REFRESHER_TASK) else "other", []).append(s)

    # 1. nothing but the two background tasks touched the database while serving
    assert by_task.get("other", []) == [], "statements issued on the request path"
    # 2. the refresher only polled the version (nothing changed, so it never reloaded)
    polls = by_task.get(REFRESHER_TASK, [])
    assert polls, "the version poll ran"
    assert all(s.sql.startswith("SELECT") and "config_state" in s.sql and "version" in s.sql for s in polls), {
        s.sql for s in polls
    }
    assert len(polls) <= elapsed / settings.snapshot_poll_interval + 5, "one cheap poll per interval"
    # 3. the flusher wrote the usage events in batches, not one INSERT per request
    writes = by_task.get(FLUSHER_TASK, [])
    inserts = [s for s in writes if s.sql.startswith("INSERT INTO usage_events")]
    assert 1 <= len(inserts) < n / 4, f"{len(inserts)} usage INSERTs for {n} requests"
    assert len(writes) < n, f"{len(writes)} flusher statements for {n} requests: not batched"
    assert all(s.sql.startswith(("INSERT", "UPDATE")) for s in writes), {s.sql[:60] for s in writes}


async def _wait(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)
