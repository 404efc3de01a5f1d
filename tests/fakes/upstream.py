"""A fake OpenAI-compatible upstream: a real HTTP server on 127.0.0.1 for gateway tests.

Why a real server and not a mocked client: the gateway's hot path is its pooled aiohttp
client, its SSE relay and its handling of transport failures (timeouts, cut streams,
client disconnects). Only real sockets exercise those.

Behaviour is chosen by the request's ``model`` (prefix match), so the server is stateless
and parallel tests never interfere:

====================  ================================================================
model                 behaviour
====================  ================================================================
``fail-<status>``     that HTTP status with an OpenAI-shaped error body
                      (``fail-429`` also sends ``Retry-After: 1``)
``slow-<ms>``         waits <ms> before sending the response headers
``slowstream-<ms>``   as ``slow-<ms>``, and for streams also <ms> between chunks
``malformed``         200 with a non-JSON body; streams send one good chunk, then a
                      chunk that is not JSON, then ``[DONE]``
``cut-stream``        streams 2 chunks then aborts the connection without ``[DONE]``
                      (non-stream: half the body, then abort)
``no-usage``          never any ``usage`` field, even if a stream asks for it
``cumulative-usage``  streams: every chunk carries a cumulative ``usage``; the last
                      content chunk carries the final usage with its choices; no
                      usage-only chunk
``usage-in-last``     streams: the final usage rides on the chunk with
                      ``finish_reason`` instead of a separate ``choices: []`` chunk
``hang-stream``       streams one chunk, then sleeps 60 s (non-stream: sleeps before the
                      headers); ``.disconnects`` counts clients that went away
anything else         normal
====================  ================================================================

Deterministic content: the reply is ``"echo: " + <last user message>`` truncated to
``max_tokens`` (or ``max_completion_tokens``) words; prompt_tokens is the number of
whitespace-separated words across all message contents (or prompt/input) and
completion_tokens the number of words of the reply.

Command line (serves until Ctrl-C)::

    python tests/fakes/upstream.py --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import re
import struct
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["FakeUpstream", "Headers", "RecordedRequest", "RequestLog", "main", "words"]

HANG_SECONDS = 60.0
SYSTEM_FINGERPRINT = "fp_fake"
MODELS = ("fake-model", "fake-embedding", "fake-image")


# --------------------------------------------------------------------------- records


class Headers(dict[str, str]):
    """A plain dict of request headers with case-insensitive lookup.

    Keys are stored lower-cased; ``h["Authorization"]``, ``h.get("authorization")`` and
    ``"X-Api-Key" in h`` all work, and it still prints and compares like a dict.
    """

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        super().__init__()
        for key, value in (items or {}).items():
            super().__setitem__(key.lower(), value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake upstream received it (what the gateway actually sent)."""

    method: str
    path: str
    headers: Headers
    json: Any  # the parsed JSON body, or None if the body was empty or not JSON
    body: bytes = b""
    query: dict[str, str] = field(default_factory=dict)

    @property
    def model(self) -> str | None:
        return self.json.get("model") if isinstance(self.json, dict) else None


class RequestLog:
    """A thread-safe list of RecordedRequest: the server thread appends, tests read.

    Supports ``len``, indexing (``log[-1]``), iteration (over a snapshot), ``clear()`` and
    ``wait_for(n)`` because the gateway may call the upstream after the test's own call
    returned (retries, background work).
    """

    def __init__(self) -> None:
        self._items: list[RecordedRequest] = []
        self._cond = threading.Condition()

    def append(self, item: RecordedRequest) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._items.clear()

    def snapshot(self) -> list[RecordedRequest]:
        with self._cond:
            return list(self._items)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests were received; return the snapshot."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._items) >= count, timeout):
                raise TimeoutError(f"expected {count} upstream requests, got {len(self._items)}")
            return list(self._items)

    def for_path(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.snapshot() if r.path == path]

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def __getitem__(self, index: int) -> RecordedRequest:
        with self._cond:
            return self._items[index]

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.snapshot())

    def __repr__(self) -> str:
        return f"RequestLog({self.snapshot()!r})"


class Counter:
    """A thread-safe counter tests can wait on (client disconnects seen by the server)."""

    def __init__(self) -> None:
        self._value = 0
        self._cond = threading.Condition()

    def increment(self) -> None:
        with self._cond:
            self._value += 1
            self._cond.notify_all()

    @property
    def value(self) -> int:
        with self._cond:
            return self._value

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._value >= count, timeout)

    def reset(self) -> None:
        with self._cond:
            self._value = 0


# ------------------------------------------------------------------------ behaviours


@dataclass(frozen=True)
class Behaviour:
    """What the ``model`` string asks the fake to do."""

    fail_status: int | None = None
    delay: float = 0.0  # seconds before the headers
    chunk_delay: float = 0.0  # seconds between stream chunks
    malformed: bool = False
    cut: bool = False
    usage: str = "normal"  # normal | none | cumulative | in-last
    hang: bool = False

    @classmethod
    def parse(cls, model: str) -> Behaviour:
        if m := re.match(r"fail-(\d{3})", model):
            return cls(fail_status=int(m.group(1)))
        if m := re.match(r"slowstream-(\d+)", model):
            seconds = int(m.group(1)) / 1000
            return cls(delay=seconds, chunk_delay=seconds)
        if m := re.match(r"slow-(\d+)", model):
            return cls(delay=int(m.group(1)) / 1000)
        prefixes: dict[str, Behaviour] = {
            "malformed": cls(malformed=True),
            "cut-stream": cls(cut=True),
            "no-usage": cls(usage="none"),
            "cumulative-usage": cls(usage="cumulative"),
            "usage-in-last": cls(usage="in-last"),
            "hang-stream": cls(hang=True),
        }
        for prefix, behaviour in prefixes.items():
            if model.startswith(prefix):
                return behaviour
        return cls()


ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
}


def error_response(status: int, message: str | None = None, param: str | None = None) -> web.Response:
    """An OpenAI-shaped error (validates against ErrorResponse)."""
    err_type, code = ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error", "error"))
    body = {
        "error": {
            "message": message or f"fake upstream error {status}",
            "type": err_type,
            "param": param,
            "code": code,
        }
    }
    headers = {"Retry-After": "1"} if status == 429 else None
    return web.json_response(body, status=status, headers=headers)


# ------------------------------------------------------------------- content helpers


def words(text: str) -> list[str]:
    """The fake's tokenizer: whitespace-separated words."""
    return text.split()


def content_text(content: Any) -> str:
    """Text of a message ``content``: a string or a list of parts (only text parts count)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def input_texts(value: Any) -> list[str]:
    """Normalise a prompt/input (string, list of strings, token array(s)) into texts."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        if all(isinstance(v, int) for v in value):
            return [" ".join(str(v) for v in value)]  # one token array: one word per token
        return [t for v in value for t in input_texts(v)]
    return []


def reply_for(prompt: str, body: Mapping[str, Any]) -> tuple[list[str], str]:
    """Reply words and finish_reason: ``echo: <prompt>`` truncated to max_tokens words."""
    reply = words("echo: " + prompt)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(limit, int) and 0 <= limit < len(reply):
        return reply[:limit], "length"
    return reply, "stop"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """Deterministic floats in [-1, 1) derived from SHA-256 of the text."""
    out: list[float] = []
    counter = 0
    while len(out) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        out.extend(round(b / 128 - 1, 6) for b in digest)
        counter += 1
    return out[:dimensions]


def sse(payload: Any) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


DONE = b"data: [DONE]\n\n"


# ----------------------------------------------------------------------- the server


@dataclass
class ChatLike:
    """What differs between /chat/completions and /completions when generating."""

    prompt_tokens: int
    reply: list[str]
    finish_reason: str
    id_prefix: str
    object_full: str
    object_chunk: str
    chat: bool

    def choice_full(self) -> dict[str, Any]:
        text = " ".join(self.reply)
        if self.chat:
            message = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
            return {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}
        return {"index": 0, "text": text, "logprobs": None, "finish_reason": self.finish_reason}

    def choice_delta(self, i: int | None) -> dict[str, Any]:
        """The chunk choice for word ``i``, or the closing one (finish_reason) if None."""
        if i is None:
            if self.chat:
                return {"index": 0, "delta": {}, "logprobs": None, "finish_reason": self.finish_reason}
            return {"index": 0, "text": "", "logprobs": None, "finish_reason": self.finish_reason}
        piece = self.reply[i] if i == 0 else " " + self.reply[i]
        if self.chat:
            delta: dict[str, Any] = {"content": piece}
            if i == 0:
                delta["role"] = "assistant"
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        return {"index": 0, "text": piece, "logprobs": None, "finish_reason": None}


class FakeUpstream:
    """The fake upstream server, run in a background thread with its own event loop.

    >>> with FakeUpstream() as up:
    ...     client.base_url = up.base_url           # http://127.0.0.1:<port>/v1
    ...     assert up.requests[-1].headers["authorization"] == "Bearer sk-vendor"

    ``api_key``: if given, requests without ``Authorization: Bearer <api_key>`` get a 401,
    so tests can prove the gateway sends the vendor secret.
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1", api_key: str | None = None) -> None:
        self.host = host
        self._requested_port = port
        self.api_key = api_key
        self.port = 0
        self.requests = RequestLog()
        self.disconnects = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    # -- lifecycle

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self, timeout: float = 10.0) -> FakeUpstream:
        if self._thread is not None:
            raise RuntimeError("FakeUpstream already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            except BaseException as exc:  # surfaced to start() below
                failure.append(exc)
                ready.set()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"fake-upstream-{self._requested_port}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("fake upstream did not start")
        if failure:
            raise RuntimeError("fake upstream failed to start") from failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopped.set)
        self._thread.join(timeout)
        self._thread = None

    def clear(self) -> None:
        """Forget recorded requests and disconnects (between tests sharing one server)."""
        self.requests.clear()
        self.disconnects.reset()

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self, ready: threading.Event) -> None:
        self._stopped = asyncio.Event()
        # handler_cancellation: a handler is cancelled when its client goes away, which is
        # how hang-stream notices a disconnect while sleeping.
        runner = web.AppRunner(self.app(), handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]
        ready.set()
        try:
            await self._stopped.wait()
        finally:
            await runner.cleanup()

    # -- routes

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/images/generations", self._images)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    async def _record(self, request: web.Request) -> Any:
        body = await request.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                headers=Headers(request.headers),
                json=parsed,
                body=body,
                query=dict(request.query),
            )
        )
        return parsed

    async def _preamble(self, request: web.Request) -> tuple[dict[str, Any], Behaviour] | web.Response:
        """Record, check auth and body, apply fail/slow. Returns a Response to send as is."""
        body = await self._record(request)
        if (denied := self._check_key(request)) is not None:
            return denied
        if not isinstance(body, dict):
            return error_response(400, "We could not parse the JSON body of your request.")
        if not isinstance(body.get("model"), str):
            return error_response(400, "you must provide a model parameter", param="model")
        behaviour = Behaviour.parse(body["model"])
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if behaviour.fail_status is not None:
            return error_response(behaviour.fail_status)
        return body, behaviour

    def _check_key(self, request: web.Request) -> web.Response | None:
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return error_response(401, "Incorrect API key provided.")
        return None

    async def _not_found(self, request: web.Request) -> web.Response:
        await self._record(request)
        return error_response(404, f"Invalid URL ({request.method} {request.path})")

    async def _models(self, request: web.Request) -> web.Response:
        await self._record(request)
        if (denied := self._check_key(request)) is not None:
            return denied
        data = [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "fake"} for m in MODELS]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        pre = await self._preamble(request)
        if isinstance(pre, web.Response):
            return pre
        body, behaviour = pre
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
        texts = [content_text(m.get("content")) for m in messages if isinstance(m, dict)]
        last_user = next(
            (
                content_text(m.get("content"))
                for m in reversed(messages)
                if isinstance(m, dict) and m.get("role") == "user"
            ),
            "",
        )
        reply, finish = reply_for(last_user, body)
        gen = ChatLike(
            sum(len(words(t)) for t in texts),
            reply,
            finish,
            "chatcmpl-",
            "chat.completion",
            "chat.completion.chunk",
            chat=True,
        )
        return await self._generate(request, body, behaviour, gen)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        pre = await self._preamble(request)
        if isinstance(pre, web.Response):
            return pre
        body, behaviour = pre
        prompt = " ".join(input_texts(body.get("prompt", "")))
        reply, finish = reply_for(prompt, body)
        gen = ChatLike(len(words(prompt)), reply, finish, "cmpl-", "text_completion", "text_completion", chat=False)
        return await self._generate(request, body, behaviour, gen)

    async def _generate(
        self, request: web.Request, body: dict[str, Any], behaviour: Behaviour, gen: ChatLike
    ) -> web.StreamResponse:
        base = {
            "id": gen.id_prefix + uuid.uuid4().hex[:24],
            "object": gen.object_full,
            "created": int(time.time()),
            "model": body["model"],
        }
        if gen.chat:
            base["system_fingerprint"] = SYSTEM_FINGERPRINT
        if behaviour.hang and body.get("stream") is not True:
            try:
                await self._hang(request)
            except (ConnectionError, asyncio.CancelledError):
                self.disconnects.increment()
                raise
        if body.get("stream") is True:
            return await self._stream(request, body, behaviour, gen, {**base, "object": gen.object_chunk})
        payload = {**base, "choices": [gen.choice_full()]}
        if behaviour.usage != "none":
            payload["usage"] = usage(gen.prompt_tokens, len(gen.reply))
        if behaviour.malformed:
            return web.Response(body=b"<html>this is not json", content_type="application/json")
        if behaviour.cut:
            return await self._cut_body(request, json.dumps(payload).encode())
        return web.json_response(payload)

    async def _cut_body(self, request: web.Request, data: bytes) -> web.StreamResponse:
        """Announce the full Content-Length, send half, then abort the connection."""
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = len(data)
        await resp.prepare(request)
        await resp.write(data[: len(data) // 2])
        self._abort(request)
        return resp

    @staticmethod
    def _abort(request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        behaviour: Behaviour,
        gen: ChatLike,
        base: dict[str, Any],
    ) -> web.StreamResponse:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        n = len(gen.reply)

        def chunk(
            choices: list[dict[str, Any]], completion_tokens: int | None = None, final: bool = False
        ) -> dict[str, Any]:
            out = {**base, "choices": choices}
            if behaviour.usage == "cumulative":
                out["usage"] = usage(gen.prompt_tokens, completion_tokens or 0)
            elif behaviour.usage == "in-last" and final:
                out["usage"] = usage(gen.prompt_tokens, n)
            elif include_usage and behaviour.usage == "normal" and gen.chat:
                # As OpenAI: null on every chat chunk but the usage-only one (the legacy
                # completions schema does not allow null, so those chunks omit it).
                out["usage"] = None
            return out

        # Content chunks, one per word; the chunk carrying finish_reason closes the choice.
        events: list[dict[str, Any]] = [chunk([gen.choice_delta(i)], i + 1) for i in range(n)]
        events.append(chunk([gen.choice_delta(None)], n, final=True))
        if behaviour.usage == "cumulative" and n:
            # The last content chunk carries usage together with non-empty choices.
            events[-2]["choices"][0]["finish_reason"] = gen.finish_reason
            events.pop()
        if include_usage and behaviour.usage == "normal":
            events.append({**base, "choices": [], "usage": usage(gen.prompt_tokens, n)})

        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        try:
            for index, event in enumerate(events):
                if index and behaviour.chunk_delay:
                    await asyncio.sleep(behaviour.chunk_delay)
                await resp.write(sse(event))
                if behaviour.malformed:
                    await resp.write(b"data: {this is not json\n\n")
                    break
                if behaviour.cut and index == 1:
                    self._abort(request)
                    return resp
                if behaviour.hang:
                    await self._hang(request)
            await resp.write(DONE)
        except asyncio.CancelledError:
            self.disconnects.increment()
            raise
        except ConnectionError:
            self.disconnects.increment()
        return resp

    async def _hang(self, request: web.Request) -> None:
        """Sleep HANG_SECONDS, noticing a client that goes away (cancellation or poll)."""
        deadline = time.monotonic() + HANG_SECONDS
        while time.monotonic() < deadline:
            transport = request.transport
            if transport is None or transport.is_closing():
                raise ConnectionResetError("client went away")
            await asyncio.sleep(0.05)

    async def _embeddings(self, request: web.Request) -> web.Response:
        pre = await self._preamble(request)
        if isinstance(pre, web.Response):
            return pre
        body, behaviour = pre
        if behaviour.malformed:
            return web.Response(body=b"<html>this is not json", content_type="application/json")
        texts = input_texts(body.get("input"))
        dims = body.get("dimensions") if isinstance(body.get("dimensions"), int) else 8
        data = []
        for index, text in enumerate(texts):
            vector = embedding_vector(text, dims)
            encoded: Any = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        payload: dict[str, Any] = {"object": "list", "model": body["model"], "data": data}
        tokens = sum(len(words(t)) for t in texts)
        if behaviour.usage != "none":
            payload["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return web.json_response(payload)

    async def _images(self, request: web.Request) -> web.Response:
        pre = await self._preamble(request)
        if isinstance(pre, web.Response):
            return pre
        body, behaviour = pre
        if behaviour.malformed:
            return web.Response(body=b"<html>this is not json", content_type="application/json")
        count = body.get("n") if isinstance(body.get("n"), int) and body["n"] > 0 else 1
        if body.get("response_format") == "b64_json":
            png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
            data = [{"b64_json": png} for _ in range(count)]
        else:
            data = [{"url": "http://127.0.0.1/fake.png"} for _ in range(count)]
        payload: dict[str, Any] = {"created": int(time.time()), "data": data}
        if behaviour.usage != "none":
            prompt_tokens = len(words(str(body.get("prompt", ""))))
            payload["usage"] = {
                "input_tokens": prompt_tokens,
                "output_tokens": 100 * count,
                "total_tokens": prompt_tokens + 100 * count,
                "input_tokens_details": {"text_tokens": prompt_tokens, "image_tokens": 0},
            }
        return web.json_response(payload)


# ---------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible upstream for modelgate tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--api-key", default=None, help="if set, require Authorization: Bearer <key>")
    args = parser.parse_args(argv)
    upstream = FakeUpstream(port=args.port, host=args.host, api_key=args.api_key).start()
    print(f"fake upstream listening on {upstream.base_url} (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        upstream.stop()


if __name__ == "__main__":
    main()
