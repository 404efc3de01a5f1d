"""Alembic migrations on SQLite and PostgreSQL: up, all the way down, up again; the migrated
schema is exactly what the SQLAlchemy models describe; and a gateway runs on PostgreSQL.

PostgreSQL tests use the machine's server (tests.services): skipped when it is absent, a
failure under MODELGATE_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from modelgate.storage.engine import make_engine
from modelgate.storage.migrate import alembic_config, downgrade, upgrade
from modelgate.storage.tables import Base
from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess, drop_pg_database, new_pg_database
from tests.services import require_postgres

MODEL_TABLES = set(Base.metadata.tables)


def _run(url: str, fn: Any) -> Any:
    """Run ``fn(sync_connection)`` on the database (through the async engine the app uses)."""

    async def go() -> Any:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(fn)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def partitions(conn: Connection) -> set[str]:
    """PostgreSQL partitions (of usage_events): tables of their own to the catalog, not models."""
    if conn.dialect.name != "postgresql":
        return set()
    return set(conn.execute(text("SELECT relname FROM pg_class WHERE relispartition")).scalars())


def user_tables(url: str) -> set[str]:
    return set(_run(url, lambda conn: set(inspect(conn).get_table_names()) - partitions(conn)))


def revision(url: str) -> str | None:
    return _run(url, lambda conn: MigrationContext.configure(conn).get_current_revision())  # type: ignore[no-any-return]


def schema_diff(url: str) -> list[Any]:
    def diff(conn: Connection) -> list[Any]:
        skip = partitions(conn)

        def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
            table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
            return table not in skip

        opts = {"compare_type": True, "compare_server_default": False, "include_object": include}
        return list(compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata))

    return list(_run(url, diff))


def head() -> str:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"the migration history has several heads: {heads}"
    return heads[0]


def round_trip(url: str) -> None:
    upgrade(url)
    assert revision(url) == head()
    assert user_tables(url) == MODEL_TABLES | {"alembic_version"}
    assert schema_diff(url) == []
    downgrade(url, "base")
    assert revision(url) is None
    assert user_tables(url) <= {"alembic_version"}, "downgrade to base leaves no table behind"
    upgrade(url)
    assert revision(url) == head()
    assert schema_diff(url) == [], "the schema after down and up again matches the models"


def test_history_is_linear() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    revisions = list(script.walk_revisions())
    assert [r.down_revision for r in revisions][-1] is None
    assert len({r.revision for r in revisions}) == len(revisions)
    assert head() == revisions[0].revision


def test_sqlite_up_down_up(tmp_path: Path) -> None:
    round_trip(f"sqlite+aiosqlite:///{tmp_path / 'modelgate.db'}")


def test_the_schema_comparison_sees_drift(tmp_path: Path) -> None:
    """The no-diff assertions above are not vacuous: a column missing from the database shows."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'drift.db'}"
    upgrade(url)

    def drop(conn: Connection) -> None:
        conn.execute(text("ALTER TABLE usage_events DROP COLUMN cost"))
        conn.commit()

    _run(url, drop)
    diffs = schema_diff(url)
    assert [(d[0], d[2], d[3].name) for d in diffs] == [("add_column", "usage_events", "cost")]


def test_sqlite_step_by_step(tmp_path: Path) -> None:
    """Every revision downgrades to its predecessor and upgrades again on its own."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'steps.db'}"
    script = ScriptDirectory.from_config(alembic_config(url))
    chain = [r.revision for r in reversed(list(script.walk_revisions()))]
    for rev in chain:
        upgrade(url, rev)
        assert revision(url) == rev
    for rev in reversed(chain):
        down = script.get_revision(rev).down_revision
        downgrade(url, down if isinstance(down, str) else "base")
        upgrade(url, rev)
        assert revision(url) == rev
        downgrade(url, down if isinstance(down, str) else "base")
    assert revision(url) is None


@pytest.fixture
def pg_url() -> Iterator[str]:
    require_postgres()
    url, name = new_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.mark.postgres
def test_postgres_up_down_up(pg_url: str) -> None:
    round_trip(pg_url)


@pytest.mark.postgres
def test_gateway_on_postgres_records_usage_there(pg_url: str, tmp_path: Path, upstream: FakeUpstream) -> None:
    gw = GatewayProcess(tmp_path / "gw", database_url=pg_url).start()
    try:
        assert revision(pg_url) == head(), "serve migrated the PostgreSQL database"
        gw.create_endpoint("pg-llm", upstream.base_url)
        key = gw.create_key("admin")["secret"]
        resp = httpx.post(
            gw.base_url + "/v1/chat/completions",
            timeout=30,
            json={"model": "pg-llm", "messages": [{"role": "user", "content": "stored in postgres"}]},
            headers={"authorization": f"Bearer {key}"},
        )
        assert resp.status_code == 200, resp.text
        event = gw.usage_for(resp.headers["x-request-id"])  # read from PostgreSQL
        assert (event["input_tokens"], event["output_tokens"], event["status_code"]) == (3, 4, 200)
        assert event["route"] == "chat" and event["error_type"] is None
        assert not (tmp_path / "gw" / "modelgate.db").exists(), "no SQLite file on the side"
    finally:
        gw.stop()
