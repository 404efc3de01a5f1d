"""The dry run behind ``modelgate sql --estimate``: what a query would spend, before it spends it.

In dry-run mode the ai_* functions send nothing; they collect the exact requests they would
send (after the same de-duplication) and return NULL. The report counts calls and estimated
input tokens with the gateway's own admission rule (bytes/4 plus message overhead), adds the
output the gateway would reserve (``max_tokens`` or the endpoint's default), and compares the
total with the remaining quota.

Whose quota: ``GET /api/v1/quota`` (the tenant's) is for Gateway Admins only, and an API key
cannot read ``/api/v1`` at all. A key holder can see which endpoints their key may invoke
(``GET /v1/models``); given a personal access token they can also read each endpoint's quota
status (``GET /api/v1/endpoints/NAME/quota``: the effective remaining is the smaller of the
endpoint's and the tenant's). The report says which of these it could check.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelgate.sql.requests import ApiRequest

__all__ = ["EndpointEstimate", "Estimate", "GATEWAY_DEFAULT_OUTPUT"]

GATEWAY_DEFAULT_OUTPUT = 256  # what the gateway reserves when neither max_tokens nor the endpoint sets one


@dataclass
class EndpointEstimate:
    endpoint: str
    rows: int = 0
    keys: set[bytes] = field(default_factory=set)
    input_tokens: int = 0
    output_tokens: int = 0  # bounded by max_tokens
    open_outputs: int = 0  # calls whose output is bounded only by the endpoint's default
    # filled by check()
    may_invoke: bool | None = None
    default_output: int | None = None
    quota_remaining: int | None = None  # None: no quota applies (when quota_checked)
    quota_checked: bool = False
    note: str | None = None

    @property
    def calls(self) -> int:
        return len(self.keys)

    def total_tokens(self) -> int:
        default = self.default_output or GATEWAY_DEFAULT_OUTPUT
        return self.input_tokens + self.output_tokens + self.open_outputs * default

    def covered(self) -> bool | None:
        if not self.quota_checked:
            return None
        return self.quota_remaining is None or self.quota_remaining >= self.total_tokens()


class Estimate:
    """Collects the requests a dry run would send; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.endpoints: dict[str, EndpointEstimate] = {}

    def add(self, requests: list[ApiRequest | None]) -> None:
        with self._lock:
            for req in requests:
                if req is None:
                    continue
                est = self.endpoints.get(req.endpoint)
                if est is None:
                    est = self.endpoints[req.endpoint] = EndpointEstimate(req.endpoint)
                est.rows += 1
                if req.key in est.keys:
                    continue
                est.keys.add(req.key)
                est.input_tokens += req.input_tokens()
                out = req.output_tokens()
                if out is None:
                    est.open_outputs += 1
                else:
                    est.output_tokens += out

    def check(self, base_url: str, api_key: str | None, token: str | None, timeout: float = 10.0) -> None:
        """Ask the gateway what this key may invoke and, with a personal access token, each quota."""
        base = base_url.rstrip("/").removesuffix("/v1")
        invocable: set[str] | None = None
        if api_key:
            models = _get(base + "/v1/models", api_key, timeout)
            if isinstance(models, dict) and isinstance(models.get("data"), list):
                invocable = {m.get("id") for m in models["data"] if isinstance(m, dict)}
        for est in self.endpoints.values():
            if invocable is not None:
                est.may_invoke = est.endpoint in invocable
            if not token:
                continue
            name = urllib.parse.quote(est.endpoint, safe="")
            status = _get(f"{base}/api/v1/endpoints/{name}/quota", token, timeout)
            if isinstance(status, dict) and "remaining" in status:
                est.quota_checked = True
                remaining = status.get("effective_remaining", status.get("remaining"))
                est.quota_remaining = remaining if isinstance(remaining, int) else None
            else:
                est.note = _problem(status)
            info = _get(f"{base}/api/v1/endpoints/{name}", token, timeout)
            if isinstance(info, dict) and isinstance(info.get("default_output_tokens"), int):
                est.default_output = info["default_output_tokens"]


class _HttpProblem(dict[str, Any]):
    """An error answer of a GET, kept to explain why a check was not possible."""


def _get(url: str, bearer: str, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {bearer}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - the configured gateway URL
            return orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            body = orjson.loads(exc.read())
        except orjson.JSONDecodeError:
            body = {}
        return _HttpProblem(status=exc.code, body=body)
    except (urllib.error.URLError, OSError, orjson.JSONDecodeError) as exc:
        return _HttpProblem(status=None, body={"detail": str(exc)})


def _problem(answer: Any) -> str:
    if isinstance(answer, _HttpProblem):
        body = answer.get("body") or {}
        detail = body.get("detail") or (body.get("error") or {}).get("message") if isinstance(body, dict) else None
        return f"quota not readable (HTTP {answer.get('status')}): {detail or 'no detail'}"
    return "quota not readable: unexpected answer"
