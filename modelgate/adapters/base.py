"""What every adapter produces: the upstream request and the usage it reports.

Adapters are pure translators: no I/O, no settings, no globals. ``forward`` does the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from modelgate.runtime.snapshot import EndpointEntry

__all__ = ["Adapter", "PreparedRequest", "StreamRelay", "Usage"]


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(slots=True)
class PreparedRequest:
    url: str
    body: bytes
    is_stream: bool
    client_wants_usage: bool


class StreamRelay(Protocol):
    """Turns upstream stream bytes into client stream bytes, noting usage on the way."""

    usage: Usage | None
    output_chars: int
    first_content_seen: bool
    error: str | None

    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class Adapter(Protocol):
    def prepare(self, route: str, body: dict[str, Any], endpoint: EndpointEntry) -> PreparedRequest: ...

    def rewrite_response(self, raw: bytes, endpoint: EndpointEntry) -> tuple[bytes, Usage | None, int]:
        """Client body, reported usage (None if absent) and output characters (for estimates)."""
        ...

    def stream_relay(self, endpoint: EndpointEntry, client_wants_usage: bool) -> StreamRelay: ...

    def error_message(self, raw: bytes) -> str: ...
