"""Shared fixtures: the fake upstream and a real gateway process (one of each per xdist worker)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(tmp_path_factory.mktemp("gateway")).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="session")
def admin_key(gateway: GatewayProcess) -> str:
    return str(gateway.create_key("admin", name="e2e-admin")["secret"])


@pytest.fixture
def fresh_gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    """A gateway of one's own, for tests that stop or restart it."""
    gw = GatewayProcess(tmp_path / "gw").start()
    try:
        yield gw
    finally:
        gw.stop()
