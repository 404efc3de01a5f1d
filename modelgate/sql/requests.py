"""From SQL arguments to ``/v1`` request bodies: endpoint names, options, de-duplication keys.

Kept free of DuckDB and aiohttp so the same rules serve the real calls, the ``--estimate`` dry
run and ``ai_count_tokens``: whatever is counted is exactly what would be sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from modelgate.gateway.tokens import estimate_input_tokens

__all__ = ["COMPLETE_OPTIONS", "ApiRequest", "OptionsError", "complete_request", "embed_request", "endpoint_name",
           "parse_options"]  # fmt: skip

# option name → chat/completions field (``system`` becomes a system message instead)
COMPLETE_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_completion_tokens",
    "response_format": "response_format",
    "stop": "stop",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
_SYSTEM_KEYS = ("system", "system_prompt")
_FORMATS = {"text", "json_object", "json"}


class OptionsError(ValueError):
    """Options that cannot be sent: a query-level mistake, so the query fails (like a bad cast)."""


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One /v1 call: ``key`` identifies identical calls (same endpoint, route and body)."""

    endpoint: str
    route: str  # "chat" | "embeddings"
    body: dict[str, Any]
    key: bytes

    @property
    def path(self) -> str:
        return "/v1/chat/completions" if self.route == "chat" else "/v1/embeddings"

    def input_tokens(self) -> int:
        """The gateway's own admission estimate of the prompt (bytes/4 plus message overhead)."""
        return estimate_input_tokens(self.body)

    def output_tokens(self) -> int | None:
        """Output tokens the call may spend, when the options bound it (None: the endpoint's default)."""
        if self.route != "chat":
            return 0
        for name in ("max_completion_tokens", "max_tokens"):
            value = self.body.get(name)
            if isinstance(value, int):
                return value
        return None


def endpoint_name(value: str) -> str:
    """``endpoint:NAME`` or ``NAME`` → ``NAME`` (the gateway accepts both; one form keeps keys equal)."""
    value = value.strip()
    return value[9:] if value.startswith("endpoint:") else value


def parse_options(raw: str | None) -> dict[str, Any]:
    """Options as JSON text, or as DuckDB's ``to_json`` of a STRUCT/MAP/VARCHAR (a JSON string of JSON)."""
    if raw is None:
        return {}
    try:
        value = orjson.loads(raw)
        if isinstance(value, str):  # to_json('{"temperature": 0}') quotes the text once more
            value = orjson.loads(value) if value.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise OptionsError(f"options must be a JSON object or a STRUCT: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OptionsError(f"options must be a JSON object or a STRUCT, not {type(value).__name__}")
    unknown = sorted(k for k in value if k not in COMPLETE_OPTIONS and k not in _SYSTEM_KEYS)
    if unknown:
        allowed = ", ".join(sorted([*COMPLETE_OPTIONS, *_SYSTEM_KEYS]))
        raise OptionsError(f"unknown option(s) {', '.join(unknown)}; allowed: {allowed}")
    return {k: v for k, v in value.items() if v is not None}


def _response_format(value: Any) -> Any:
    if isinstance(value, str):
        if value not in _FORMATS:
            raise OptionsError(f"response_format must be one of {sorted(_FORMATS)} or an object, not {value!r}")
        return {"type": "json_object" if value == "json" else value}
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return value
    raise OptionsError("response_format must be 'text', 'json_object' or an object with a 'type'")


def _key(endpoint: str, route: str, body: dict[str, Any]) -> bytes:
    return orjson.dumps([endpoint, route, body], option=orjson.OPT_SORT_KEYS)


def complete_request(endpoint: str, prompt: str, options: dict[str, Any]) -> ApiRequest:
    """A chat/completions call: optional system message, the prompt as the user message, options."""
    name = endpoint_name(endpoint)
    messages: list[dict[str, str]] = []
    system = next((options[k] for k in _SYSTEM_KEYS if k in options), None)
    if system is not None:
        messages.append({"role": "system", "content": str(system)})
    messages.append({"role": "user", "content": prompt})
    body: dict[str, Any] = {"model": name, "messages": messages}
    for option, field in COMPLETE_OPTIONS.items():
        if option in options:
            value = options[option]
            body[field] = _response_format(value) if option == "response_format" else value
    return ApiRequest(name, "chat", body, _key(name, "chat", body))


def embed_request(endpoint: str, text: str) -> ApiRequest:
    name = endpoint_name(endpoint)
    body = {"model": name, "input": text}
    return ApiRequest(name, "embeddings", body, _key(name, "embeddings", body))
