"""Rendering console pages: the Jinja2 environment, the sidebar (each entry tied to a
permission), one-shot flash messages and the error page.

Every page is rendered with a title and a breadcrumb (a list of (label, url) pairs ending with
the page itself); the base template refuses to render without them.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.responses import HTMLResponse, RedirectResponse, Response

from modelgate.console.context import PageContext
from modelgate.errors import GatewayError
from modelgate.rbac import Permission

__all__ = ["NAV", "error_page", "redirect", "render", "templates"]

FLASH_COOKIE = "mg_flash"
_HERE = Path(__file__).parent

# (label, url, permission needed anywhere — tenant-wide or through a grant —, icon)
NAV: tuple[tuple[str, str, Permission | None, str], ...] = (
    ("Overview", "/console", None, "home"),
    ("Endpoints", "/console/endpoints", None, "box"),
    ("Monitoring", "/console/monitoring", Permission.ENDPOINT_MONITOR, "activity"),
    ("API keys", "/console/keys", Permission.KEYS_VIEW_OWN, "key"),
    ("Vendor credentials", "/console/credentials", Permission.CREDENTIALS_MANAGE, "lock"),
    ("Endpoint permissions", "/console/grants", None, "shield"),
    ("Gateway Admins", "/console/admins", Permission.GATEWAY_ADMINS_MANAGE, "star"),
    ("Users", "/console/users", Permission.USERS_MANAGE, "users"),
    ("Usage", "/console/usage", None, "bar"),
    ("Audit log", "/console/audit", Permission.ENDPOINT_AUDIT, "list"),
)


def _number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{round(value):,}" if isinstance(value, float) else f"{value:,}"


def _percent(value: Any) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def _ms(value: Any) -> str:
    return "—" if value is None else (f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms")


def _when(value: Any) -> str:
    if not value:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return str(value.strftime("%Y-%m-%d %H:%M:%S UTC"))


def _json_script(value: Any, element_id: str) -> Markup:
    """Data for a script, safe inside a <script type="application/json"> element."""
    text = json.dumps(value, default=str).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(f'<script type="application/json" id="{element_id}">{text}</script>')  # noqa: S704


templates = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(
    pairs=lambda xs: [(x, x) for x in xs],
    number=_number,
    percent=_percent,
    ms=_ms,
    when=_when,
    json_script=_json_script,
)
templates.globals.update(Permission=Permission)


def _nav(ctx: PageContext) -> list[dict[str, Any]]:
    path = ctx.request.url.path.rstrip("/") or "/console"
    items = []
    for label, url, permission, icon in NAV:
        if permission is not None and not ctx.can_any(permission):
            continue
        active = path == url or (url != "/console" and path.startswith(url + "/"))
        if url == "/console/monitoring" and path.endswith("/monitoring"):
            active = True
        items.append({"label": label, "url": url, "icon": icon, "active": active})
    return items


def render(
    ctx: PageContext,
    template: str,
    *,
    title: str,
    breadcrumb: list[tuple[str, str | None]],
    status: int = 200,
    **values: Any,
) -> Response:
    flash = ctx.request.cookies.get(FLASH_COOKIE)
    body = templates.get_template(template).render(
        ctx=ctx,
        title=title,
        breadcrumb=breadcrumb,
        nav=_nav(ctx),
        csrf_token=ctx.csrf_token,
        flash=unquote(flash) if flash else None,
        **values,
    )
    response = HTMLResponse(body, status)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/console")
    _no_store(response)
    return response


def render_public(template: str, *, title: str, status: int = 200, **values: Any) -> HTMLResponse:
    """A page for signed-out visitors (the login page)."""
    response = HTMLResponse(templates.get_template(template).render(title=title, **values), status)
    _no_store(response)
    return response


def _no_store(response: Response) -> None:
    response.headers["cache-control"] = "no-store"
    response.headers["x-frame-options"] = "DENY"
    response.headers["referrer-policy"] = "same-origin"
    response.headers["x-content-type-options"] = "nosniff"


def redirect(url: str, flash: str | None = None) -> RedirectResponse:
    """Post/redirect/get; ``flash`` is shown once on the next page."""
    response = RedirectResponse(url, 303)
    if flash:
        response.set_cookie(FLASH_COOKIE, quote(flash), max_age=60, httponly=True, samesite="strict", path="/console")
    return response


def error_page(ctx: PageContext, exc: GatewayError) -> Response:
    return render(
        ctx,
        "error.html",
        title=exc.title,
        breadcrumb=[("Home", "/console"), (exc.title, None)],
        status=exc.status,
        error=exc,
    )
