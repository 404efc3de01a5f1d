"""Fixtures of the usage tests: the generated workload written to SQLite and to PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelgate.storage.engine import make_engine, make_sessionmaker
from tests.harness import drop_pg_database, new_pg_database
from tests.services import require_postgres
from tests.usage.workload import World, build_world


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The workload, written through the real flusher, on a freshly migrated database (read-only to tests)."""
    tmp = tmp_path_factory.mktemp(f"usage-{request.param}")
    if request.param == "sqlite":
        yield build_world(f"sqlite+aiosqlite:///{tmp / 'usage.db'}", tmp / "spool")
        return
    require_postgres()
    url, name = new_pg_database()
    try:
        yield build_world(url, tmp / "spool")
    finally:
        drop_pg_database(name)


@pytest.fixture
async def sessions(world: World) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(world.url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()
