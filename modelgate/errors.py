"""One error hierarchy for the whole gateway.

Each class carries its HTTP status, the OpenAI error ``type``/``code`` used on ``/v1`` and the
usage ``error_type`` label used in usage records and monitoring. Domain code raises; the edge
renders once (OpenAI JSON on ``/v1``, problem details on ``/api/v1``, a message on the CLI).
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

__all__ = [
    "AuthenticationFailed",
    "BadRequest",
    "Conflict",
    "GatewayError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "QuotaExceeded",
    "RateLimited",
    "ServiceUnavailable",
    "UpstreamError",
    "UpstreamTimeout",
    "openai_error_body",
]


class GatewayError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None
    error_type: str = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if error_type is not None:
            self.error_type = error_type
        self.headers = headers or {}
        self.plan: Any = None  # the limiter reservation to settle, when one was taken

    def openai_body(self) -> bytes:
        return openai_error_body(self.message, self.type, self.param, self.code)


def openai_error_body(message: str, type_: str, param: str | None, code: str | None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


class BadRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    error_type = "bad_request"
    title = "Bad request"


class PayloadTooLarge(BadRequest):
    status = 413
    code = "request_too_large"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"
    error_type = "auth_failed"
    title = "Authentication required"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "permission_denied"
    error_type = "permission_denied"
    title = "Forbidden"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"
    error_type = "not_found"
    title = "Not found"


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"
    error_type = "bad_request"
    title = "Conflict"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    error_type = "rate_limited"
    title = "Too many requests"


class QuotaExceeded(GatewayError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"
    error_type = "quota_exceeded"
    title = "Quota exhausted"


class UpstreamError(GatewayError):
    """The upstream answered with an error or garbage; the client sees a 502 unless mapped."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"
    error_type = "upstream_5xx"
    title = "Bad gateway"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"
    error_type = "upstream_timeout"
    title = "Gateway timeout"


class ServiceUnavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "service_unavailable"
    error_type = "internal_error"
    title = "Service unavailable"
