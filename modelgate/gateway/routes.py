"""The /v1 route table (DESIGN.md §7). Raw Starlette routes: no per-request validation models."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelgate.gateway.pipeline import Gateway

__all__ = ["v1_routes"]


def v1_routes(gateway: Gateway) -> list[BaseRoute]:
    def route(name: str) -> Any:
        async def handler(request: Request) -> Any:
            return await gateway.invoke(request, name)

        return handler

    async def models(request: Request) -> Response:
        return gateway.list_models(request)

    return [
        Route("/v1/chat/completions", route("chat"), methods=["POST"]),
        Route("/v1/completions", route("completions"), methods=["POST"]),
        Route("/v1/embeddings", route("embeddings"), methods=["POST"]),
        Route("/v1/images/generations", route("images"), methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
    ]
