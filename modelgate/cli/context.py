"""What every CLI command shares: settings, a database session in one transaction, output and errors."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.errors import GatewayError
from modelgate.secrets_box import SecretBox, load_master_key
from modelgate.settings import Settings, load_settings
from modelgate.storage.engine import make_engine, make_sessionmaker

__all__ = ["CliState", "console", "err_console", "fail", "print_json", "run_tx"]

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True)


class CliState:
    config: Path | None = None

    @classmethod
    def settings(cls) -> Settings:
        try:
            return load_settings(cls.config)
        except (OSError, ValueError) as exc:
            fail(f"Cannot load configuration: {exc}")


def fail(message: str, code: int = 1) -> Any:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def print_json(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def run_tx(fn: Callable[[AsyncSession, SecretBox, Settings], Awaitable[T]], *, migrate: bool = True) -> T:
    """Run one service call in one transaction against the configured database."""
    settings = CliState.settings()

    async def main() -> T:
        if migrate:
            from modelgate.storage.migrate import upgrade

            settings.data_dir.mkdir(parents=True, exist_ok=True)
            upgrade(settings.effective_database_url)
        box = SecretBox(load_master_key(settings.master_key, settings.master_key_file))
        engine = make_engine(settings.effective_database_url)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                result = await fn(session, box, settings)
        finally:
            await engine.dispose()
        if settings.redis_url:
            await _announce(settings.redis_url)
        return result

    try:
        return asyncio.run(main())
    except GatewayError as exc:
        fail(exc.message)
    except OSError as exc:
        fail(f"{exc}")
    raise AssertionError("unreachable")


async def _announce(url: str) -> None:
    """Wake the running gateways (they would otherwise notice within one poll interval)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        await client.publish("mg:config", "cli")
    except (OSError, aioredis.RedisError):
        pass
    finally:
        await client.aclose()
