"""The admin REST API (``/api/v1``): thin routes over services, errors as problem details (RFC 9457)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from modelgate.api.routes import auth, endpoints, grants, instance, keys, quota, usage, users
from modelgate.errors import GatewayError

__all__ = ["admin_routes", "build_api", "problem"]

log = logging.getLogger("modelgate.api")
_PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, code: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": f"urn:modelgate:problem:{code or 'error'}", "title": title, "status": status,
                            "detail": detail}  # fmt: skip
    if code:
        body["code"] = code
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status, media_type=_PROBLEM)


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    resp = problem(exc.status, exc.title, exc.message, exc.code or exc.error_type, param=exc.param)
    resp.headers.update(exc.headers)
    return resp


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [{"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")} for e in exc.errors()]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:10])
    return problem(400, "Invalid request", detail, "validation_failed", errors=errors)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, str(exc.detail), f"{request.method} {request.url.path}: {exc.detail}",
                   "not_found" if exc.status_code == 404 else "http_error")  # fmt: skip


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "Internal error", "The gateway hit an internal error; it has been logged.", "internal_error")


def build_api() -> FastAPI:
    api = FastAPI(
        title="modelgate admin API",
        version="1",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        exception_handlers={
            GatewayError: _gateway_error,
            RequestValidationError: _validation_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    for module in (auth, instance, users, endpoints, keys, grants, quota, usage):
        api.include_router(module.router)
    return api


def admin_routes(api: FastAPI) -> list[Any]:
    """``/api/v1`` (the API), ``/api/docs`` (Swagger UI from the swagger-ui-py package, offline)."""

    async def docs(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/api/v1/openapi.json",
            title="modelgate admin API",
            swagger_js_url="/api/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/api/docs/static/swagger-ui.css",
            swagger_favicon_url="/api/docs/static/favicon-32x32.png",
        )

    return [
        Route("/api/docs", docs),
        Mount("/api/docs/static", StaticFiles(packages=[("swagger_ui", "static")]), name="swagger-static"),
        Mount("/api/v1", api),
    ]
