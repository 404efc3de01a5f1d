"""The web console: server-rendered pages (Jinja2) on the same services as the admin API.

``console_routes()`` is everything ``create_app`` mounts: ``/`` (redirects to the console),
``/console/*`` pages, the console's own static files, and the two third-party browser libraries
taken at run time from their Python packages (htmx from ``django-js-lib-htmx``, the Chart.js
bundle from ``chartkick``): nothing is loaded from a CDN and no third-party code is committed.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from modelgate.console.context import PageContext, page
from modelgate.console.routes import (
    access,
    audit,
    auth,
    endpoint_forms,
    endpoints,
    instance,
    keys,
    monitoring,
    overview,
    usage,
)
from modelgate.errors import NotFound

__all__ = ["console_routes"]

_STATIC = Path(__file__).parent / "static"


def _chart_js() -> Path:
    return Path(str(files("chartkick").joinpath("django/static/chartkick/Chart.bundle.js")))


async def chart_js(request: Request) -> Response:
    """Only the Chart.js bundle of the chartkick package (Chart.js 4 with its date adapter)."""
    return FileResponse(_chart_js(), media_type="text/javascript", headers={"cache-control": "public, max-age=3600"})


async def root(request: Request) -> Response:
    return RedirectResponse("/console", 307)


@page
async def not_found(ctx: PageContext) -> Response:
    raise NotFound(f"There is no console page at {ctx.request.url.path}.", code="not_found")


async def _not_found_anonymous(request: Request) -> Response:
    raise HTTPException(404)


def console_routes() -> list[BaseRoute]:
    pages: list[BaseRoute] = [
        *auth.routes,
        *overview.routes,
        *endpoint_forms.routes,  # before /endpoints/{name}
        *endpoints.routes,
        *monitoring.routes,
        *keys.routes,
        *access.routes,
        *usage.routes,
        *audit.routes,
        *instance.routes,
        Mount("/static", StaticFiles(directory=_STATIC), name="console-static"),
        Mount("/vendor/htmx", StaticFiles(packages=[("js_lib_htmx", "static/htmx")]), name="console-htmx"),
        Route("/vendor/chart.js", chart_js),
        Route("/{path:path}", not_found),
    ]
    return [Route("/", root), Route("/console", overview.overview, methods=["GET"]), Mount("/console", routes=pages)]
