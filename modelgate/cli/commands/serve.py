"""``modelgate serve``: migrate, bootstrap an empty database, then run the server."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from modelgate.cli.commands.db import announce_bootstrap
from modelgate.cli.context import CliState, fail

__all__ = ["serve"]


def serve(
    host: Annotated[str | None, typer.Option("--host", help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port to listen on.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes.")] = None,
) -> None:
    """Start the gateway (first start: migrates, creates a tenant and prints its admin password)."""
    import uvicorn

    from modelgate.app import create_app
    from modelgate.services.tenants import bootstrap
    from modelgate.settings import load_settings
    from modelgate.storage.engine import make_engine, make_sessionmaker
    from modelgate.storage.migrate import upgrade

    settings = load_settings(CliState.config, host=host, port=port, workers=workers)
    if settings.workers > 1 and not settings.redis_url:
        fail("--workers above 1 needs MODELGATE_REDIS_URL: without a shared counter store every worker would "
             "enforce the rate limits and quotas alone, so together they would admit several times the limit.")  # fmt: skip
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)

    async def first_start() -> None:
        engine = make_engine(settings.effective_database_url)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                created = await bootstrap(session)
        finally:
            await engine.dispose()
        if created is not None:
            announce_bootstrap(created)

    asyncio.run(first_start())
    common = dict(host=settings.host, port=settings.port, log_level=settings.log_level,
                  access_log=settings.access_log, proxy_headers=False, server_header=False)  # fmt: skip
    if settings.workers > 1:
        os.environ["MODELGATE_HOST"], os.environ["MODELGATE_PORT"] = settings.host, str(settings.port)
        if CliState.config is not None:
            os.environ["MODELGATE_CONFIG"] = str(CliState.config)
        uvicorn.run("modelgate.app:app_from_environment", factory=True, workers=settings.workers, **common)
    else:
        uvicorn.run(create_app(settings), **common)
