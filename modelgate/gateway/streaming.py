"""SSE relay as a raw ASGI response: each upstream chunk is passed on as it arrives.

A listener on ``receive`` notices a client that went away even while the upstream is silent,
cancels the relay, and so closes the upstream request at once; usage is settled and recorded
in every outcome (end, upstream failure, client abort).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from modelgate.adapters.base import StreamRelay
from modelgate.errors import openai_error_body

__all__ = ["StreamOutcome", "StreamResponse"]

Scope = dict[str, Any]


class StreamOutcome:
    __slots__ = ("error_type", "first_byte_at", "message")

    def __init__(self) -> None:
        self.error_type: str | None = None
        self.message: str | None = None
        self.first_byte_at: float | None = None


def _error_event(message: str, type_: str, code: str) -> bytes:
    return b"data: " + openai_error_body(message, type_, None, code) + b"\n\n"


class StreamResponse:
    __slots__ = ("_client_gone", "_finished", "headers", "on_done", "outcome", "relay", "upstream")

    def __init__(
        self,
        upstream: aiohttp.ClientResponse,
        relay: StreamRelay,
        headers: list[tuple[bytes, bytes]],
        on_done: Callable[[StreamOutcome], None],
    ) -> None:
        self.upstream = upstream
        self.relay = relay
        self.headers = headers
        self.on_done = on_done
        self.outcome = StreamOutcome()
        self._finished = False  # the last body message is being sent: a disconnect now is the normal end
        self._client_gone = False

    async def _pump(self, send: Callable[[dict[str, Any]], Any]) -> None:
        relay, outcome = self.relay, self.outcome
        try:
            async for chunk in self.upstream.content.iter_any():
                out = relay.feed(chunk)
                if out:
                    if outcome.first_byte_at is None and relay.first_content_seen:
                        outcome.first_byte_at = time.perf_counter()
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                if relay.error is not None:
                    break
            else:
                tail = relay.finish()
                if tail:
                    await send({"type": "http.response.body", "body": tail, "more_body": True})
            if relay.error is not None:
                outcome.error_type, outcome.message = "upstream_5xx", relay.error
                body = _error_event(relay.error, "upstream_error", "upstream_error")
                await send({"type": "http.response.body", "body": body, "more_body": True})
        except TimeoutError:
            outcome.error_type, outcome.message = "upstream_timeout", "the upstream stopped sending in time"
            body = _error_event(outcome.message, "timeout_error", "upstream_timeout")
            await send({"type": "http.response.body", "body": body, "more_body": True})
        except (aiohttp.ClientError, asyncio.IncompleteReadError):
            outcome.error_type, outcome.message = "upstream_5xx", "the upstream closed the stream early"
            body = _error_event(outcome.message, "upstream_error", "upstream_stream_interrupted")
            await send({"type": "http.response.body", "body": body, "more_body": True})
        self._finished = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _watch(self, receive: Callable[[], Any], relaying: asyncio.Task[Any]) -> None:
        """Cancel the relay when the client goes away, even while the upstream is silent."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not self._finished:
                    self._client_gone = True
                    relaying.cancel()
                return

    async def __call__(self, scope: Scope, receive: Callable[[], Any], send: Callable[[dict[str, Any]], Any]) -> None:
        # The relay runs in the server's own task; one watcher task cancels it on a disconnect
        # (two tasks and asyncio.wait per stream cost ~5 % of a stream's CPU).
        outcome = self.outcome
        relaying = asyncio.current_task()
        assert relaying is not None
        watcher = asyncio.get_running_loop().create_task(self._watch(receive, relaying))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.headers})
            await self._pump(send)
        except asyncio.CancelledError:
            if not self._client_gone:
                outcome.error_type = outcome.error_type or "client_disconnected"
                raise
            relaying.uncancel()  # our own cancellation: the client left, nothing else asked to stop
            outcome.error_type = outcome.error_type or "client_disconnected"
        except OSError:  # the server reported the client gone while we were sending
            outcome.error_type = outcome.error_type or "client_disconnected"
        except Exception:  # a bug of ours must not be recorded as a successful call
            outcome.error_type = outcome.error_type or "internal_error"
            raise
        finally:
            watcher.cancel()
            self.upstream.close()  # never return a half-read connection to the pool
            self.on_done(outcome)
