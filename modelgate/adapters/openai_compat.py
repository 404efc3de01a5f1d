"""OpenAI-compatible upstreams (OpenAI, Azure's v1 API, DashScope, Ark, DeepSeek, vLLM, Ollama...).

The client's body goes upstream unchanged except: ``model`` becomes the endpoint's model
version, and streams ask for usage (``stream_options.include_usage``) so every call can be
billed; the usage chunk reaches the client only if the client asked for it. Responses come
back unchanged except that ``model`` names the endpoint.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelgate.adapters.base import PreparedRequest, Usage
from modelgate.runtime.snapshot import EndpointEntry

__all__ = ["OpenAICompatAdapter", "OpenAIStreamRelay", "parse_usage"]

_DONE = b"[DONE]"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def parse_usage(usage: Any) -> Usage | None:
    """Read both naming schemes: chat/completions (prompt/completion) and images (input/output)."""
    if not isinstance(usage, dict):
        return None
    inp = _int(usage.get("prompt_tokens")) or _int(usage.get("input_tokens"))
    out = _int(usage.get("completion_tokens")) or _int(usage.get("output_tokens"))
    if not out and not inp:
        total = _int(usage.get("total_tokens"))
        if not total:
            return Usage() if "total_tokens" in usage or "prompt_tokens" in usage else None
        inp = total
    details_in = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    details_out = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    cached = _int(details_in.get("cached_tokens")) if isinstance(details_in, dict) else 0
    reasoning = _int(details_out.get("reasoning_tokens")) if isinstance(details_out, dict) else 0
    return Usage(inp, out, cached, reasoning)


def _choice_text_len(choices: Any, key: str) -> int:
    n = 0
    if isinstance(choices, list):
        for c in choices:
            if isinstance(c, dict):
                holder = c.get(key) if key else c
                if isinstance(holder, dict):
                    content = holder.get("content")
                    if isinstance(content, str):
                        n += len(content)
                text = c.get("text")
                if isinstance(text, str):
                    n += len(text)
    return n


class OpenAIStreamRelay:
    """SSE relay: frames events, renames ``model``, captures usage, hides unrequested usage.

    Vendors differ: some send usage in a final chunk with empty ``choices`` (OpenAI), some on
    the last content chunk, some cumulatively on every chunk. The last usage seen wins, which
    is right for all three.
    """

    __slots__ = ("_buf", "_name", "_wants_usage", "error", "first_content_seen", "output_chars", "usage")

    def __init__(self, endpoint_name: str, client_wants_usage: bool) -> None:
        self._buf = b""
        self._name = endpoint_name
        self._wants_usage = client_wants_usage
        self.usage: Usage | None = None
        self.output_chars = 0
        self.first_content_seen = False
        self.error: str | None = None

    def feed(self, data: bytes) -> bytes:
        if self.error is not None:
            return b""
        buf = self._buf + data if self._buf else data
        if b"\r\n" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        out: list[bytes] = []
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            event = self._event(buf[start:end])
            if event:
                out.append(event)
            start = end + 2
            if self.error is not None:
                break
        self._buf = buf[start:]
        return b"".join(out)

    def finish(self) -> bytes:
        """Flush a last event that lacked its blank line."""
        rest, self._buf = self._buf.strip(), b""
        return self._event(rest) if rest and self.error is None else b""

    def _event(self, raw: bytes) -> bytes:
        payload = None
        if raw.startswith(b"data:") and b"\n" not in raw:  # one data line: what vendors send
            payload = raw[5:].strip()
        else:
            for line in raw.split(b"\n"):
                if line.startswith(b"data:"):
                    # SSE: an event's data may span several data lines, joined with newlines
                    part = line[5:].strip()
                    payload = part if payload is None else payload + b"\n" + part
        if payload is None:
            return raw + b"\n\n" if raw.strip() and not raw.startswith(b":") else b""
        if payload == _DONE:
            return b"data: [DONE]\n\n"
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.error = "the upstream sent a malformed stream chunk"
            return b""
        if not isinstance(obj, dict):
            self.error = "the upstream sent a malformed stream chunk"
            return b""
        if "error" in obj and "choices" not in obj:
            err = obj["error"]
            message = err.get("message") if isinstance(err, dict) else err
            self.error = message if isinstance(message, str) and message else "the upstream reported an error"
            return b"data: " + orjson.dumps(obj) + b"\n\n"  # one line, whatever the upstream's framing
        choices = obj.get("choices")
        if choices:
            n = _choice_text_len(choices, "delta")
            if n:
                self.output_chars += n
                self.first_content_seen = True
        if "usage" in obj:
            usage = parse_usage(obj["usage"])
            if usage is not None:
                self.usage = usage
            if not self._wants_usage:
                if not choices:
                    return b""
                del obj["usage"]
        if "model" in obj:
            obj["model"] = self._name
        return b"data: " + orjson.dumps(obj) + b"\n\n"


_PATHS = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
    "images": "/images/generations",
}


class OpenAICompatAdapter:
    def prepare(self, route: str, body: dict[str, Any], endpoint: EndpointEntry) -> PreparedRequest:
        body["model"] = endpoint.model_version
        is_stream = body.get("stream") is True and route in ("chat", "completions")
        wants_usage = False
        if is_stream:
            opts = body.get("stream_options")
            wants_usage = isinstance(opts, dict) and opts.get("include_usage") is True
            body["stream_options"] = {**opts, "include_usage": True} if isinstance(opts, dict) else {
                "include_usage": True
            }
        return PreparedRequest(endpoint.base_url + _PATHS[route], orjson.dumps(body), is_stream, wants_usage)

    def rewrite_response(self, raw: bytes, endpoint: EndpointEntry) -> tuple[bytes, Usage | None, int]:
        obj = orjson.loads(raw)  # JSONDecodeError is the caller's "malformed upstream" signal
        if not isinstance(obj, dict):
            raise ValueError("upstream response is not a JSON object")
        if "model" in obj:
            obj["model"] = endpoint.name
        return orjson.dumps(obj), parse_usage(obj.get("usage")), _choice_text_len(obj.get("choices"), "message")

    def stream_relay(self, endpoint: EndpointEntry, client_wants_usage: bool) -> OpenAIStreamRelay:
        return OpenAIStreamRelay(endpoint.name, client_wants_usage)

    def error_message(self, raw: bytes) -> str:
        """The upstream's own error text, for the client and for Test Connection."""
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            text = raw[:300].decode("utf-8", "replace").strip()
            return text or "no error text"
        if isinstance(obj, dict):
            err = obj.get("error", obj)
            if isinstance(err, dict) and isinstance(err.get("message"), str):
                return str(err["message"])[:1000]
            if isinstance(err, str):
                return err[:1000]
        return raw[:300].decode("utf-8", "replace")
