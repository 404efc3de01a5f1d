"""The concurrent, batched caller of the gateway's ``/v1`` API behind the SQL functions.

DuckDB hands an arrow UDF up to 2048 rows per call and never overlaps calls, so the batch's
concurrency has to come from here: the distinct requests of a batch go to one asyncio loop (a
background thread, so its connection pool survives between batches) and run under a
semaphore. Around that:

* **one endpoint, one canary**: the first call to each endpoint in a query goes alone; if the
  gateway refuses it for permission, quota, an unknown endpoint or a bad key, no other row is
  sent (every row would be refused alike) and the query fails fast;
* **429 rate limits** pause the whole endpoint until ``Retry-After`` (a limiter's answer is
  valid for every request to it), then the refused calls are retried; gateway/upstream 5xx
  and transport errors get a few retries with jittered exponential backoff;
* **quota exhausted mid-query**: calls to that endpoint stop, the remaining rows get the same
  error without being sent;
* **strict** mode aborts the batch (cancelling calls in flight) at the first failed row.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import aiohttp
import orjson

from modelgate.sql.errors import AiFunctionError, FailureSummary, RowError, classify
from modelgate.sql.requests import ApiRequest

__all__ = ["ClientConfig", "GatewayClient", "Mode", "Outcome", "QueryState"]

T = TypeVar("T")
Outcome = Any  # a value (str, list[float]) or a RowError
Mode = Literal["default", "strict", "detailed"]
_RATE_CODES = frozenset({"rate_limit_exceeded", "upstream_rate_limited"})
_TRANSIENT_STATUS = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class ClientConfig:
    """How to reach the gateway and how hard to push it."""

    base_url: str
    api_key: str
    concurrency: int = 32
    timeout: float = 120.0  # seconds per HTTP request
    retries: int = 2  # for 5xx and transport errors
    rate_limit_retries: int = 8  # for 429 rate_limit_exceeded
    max_retry_wait: float = 300.0  # give up on a row when Retry-After asks for longer
    backoff_base: float = 0.5
    backoff_cap: float = 30.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        base = self.base_url.rstrip("/")
        object.__setattr__(self, "base_url", base[:-3] if base.endswith("/v1") else base)


@dataclass
class _EndpointInQuery:
    opened: bool = False  # the canary call has completed
    succeeded: bool = False  # at least one call succeeded in this query
    fatal: RowError | None = None  # a refusal every further row would get too


@dataclass
class QueryState:
    """What one SQL query has learned: answers by request key, and each endpoint's standing."""

    txid: int | None
    cache: dict[bytes, Outcome] = field(default_factory=dict)
    endpoints: dict[str, _EndpointInQuery] = field(default_factory=dict)

    def endpoint(self, name: str) -> _EndpointInQuery:
        state = self.endpoints.get(name)
        if state is None:
            state = self.endpoints[name] = _EndpointInQuery()
        return state


class _Abort(Exception):
    def __init__(self, error: RowError) -> None:
        self.error = error


class _LoopThread:
    """An event loop in a daemon thread; ``run`` submits a coroutine from any other thread and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="modelgate-sql", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    @staticmethod
    def shutdown(loop: asyncio.AbstractEventLoop, thread: threading.Thread, http: list[aiohttp.ClientSession]) -> None:
        if loop.is_closed():
            return
        if http and thread.is_alive():
            asyncio.run_coroutine_threadsafe(http[0].close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


class GatewayClient:
    """Sends batches of distinct requests concurrently; thread-safe to call from DuckDB's threads."""

    def __init__(self, config: ClientConfig, summary: FailureSummary | None = None) -> None:
        self.config = config
        self.summary = summary or FailureSummary()
        self.on_call: Callable[[bool], None] | None = None  # progress hook: called per finished call (failed?)
        self._resume_at: dict[str, float] = {}  # endpoint → monotonic time before which nothing is sent
        self._runner: _LoopThread | None = None
        self._http: list[aiohttp.ClientSession] = []  # created lazily on the loop
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None  # type: ignore[type-arg]

    # -- lifecycle
    def _loop(self) -> _LoopThread:
        with self._lock:
            if self._runner is None:
                self._runner = _LoopThread()
                self._finalizer = weakref.finalize(self, _LoopThread.shutdown, self._runner.loop, self._runner.thread,
                                                   self._http)  # fmt: skip
            return self._runner

    def close(self) -> None:
        """Close the HTTP pool and stop the loop thread (also done at exit or garbage collection)."""
        if self._finalizer is not None:
            self._finalizer()

    def _session(self) -> aiohttp.ClientSession:
        if not self._http:
            connector = aiohttp.TCPConnector(limit=self.config.concurrency, limit_per_host=self.config.concurrency)
            self._http.append(aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                headers={"Authorization": f"Bearer {self.config.api_key}", "x-modelgate-channel": "sql",
                         "Content-Type": "application/json", "User-Agent": "modelgate-sql"},
            ))  # fmt: skip
        return self._http[0]

    # -- batches
    def run(self, function: str, requests: list[ApiRequest], query: QueryState, mode: Mode) -> None:
        """Answer every request into ``query.cache``; raises AiFunctionError when the query must fail."""
        if requests:
            self._loop().run(self._run(function, requests, query, mode))

    async def _run(self, function: str, requests: list[ApiRequest], query: QueryState, mode: Mode) -> None:
        sem = asyncio.Semaphore(self.config.concurrency)
        groups: dict[str, list[ApiRequest]] = {}
        for req in requests:
            groups.setdefault(req.endpoint, []).append(req)
        try:
            # a TaskGroup, not gather: when one call aborts the query, every other call is cancelled
            async with asyncio.TaskGroup() as tg:
                for reqs in groups.values():
                    tg.create_task(self._group(function, reqs, query, mode, sem))
        except* _Abort as group:
            error = _first_abort(group).error
            raise AiFunctionError(self._abort_message(function, error, mode), error) from None

    @staticmethod
    def _abort_message(function: str, error: RowError, mode: Mode) -> str:
        text = error.describe(function)
        if mode != "strict":
            text += (" — the query stopped at the first refusal instead of trying every row "
                     f"(use {function}_detailed to get a per-row error instead)")  # fmt: skip
        return text

    async def _group(self, function: str, reqs: list[ApiRequest], query: QueryState, mode: Mode,
                     sem: asyncio.Semaphore) -> None:  # fmt: skip
        state = query.endpoint(reqs[0].endpoint)
        rest = reqs
        if not state.opened:  # the canary: learn about permission and quota from one call
            await self._one(function, reqs[0], query, state, mode, sem)
            state.opened = True
            rest = reqs[1:]
        async with asyncio.TaskGroup() as tg:
            for req in rest:
                tg.create_task(self._one(function, req, query, state, mode, sem))

    async def _one(self, function: str, req: ApiRequest, query: QueryState, state: _EndpointInQuery, mode: Mode,
                   sem: asyncio.Semaphore) -> None:  # fmt: skip
        attempt, rate_attempt = 0, 0
        while True:
            if state.fatal is not None:
                outcome: Outcome = state.fatal
                self.summary.count_skipped()
                break
            await self._wait_resume(req.endpoint)
            async with sem:
                if state.fatal is not None:
                    continue
                outcome, retry_after = await self._post(req, retry=attempt + rate_attempt > 0)
            if not isinstance(outcome, RowError):
                state.succeeded = True
                break
            if outcome.code in _RATE_CODES and rate_attempt < self.config.rate_limit_retries:
                delay = retry_after if retry_after is not None else self._backoff(rate_attempt)
                if delay <= self.config.max_retry_wait:
                    rate_attempt += 1
                    self._pause(req.endpoint, delay)
                    continue
            elif self._transient(outcome) and attempt < self.config.retries:
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            if outcome.fatal and state.fatal is None:
                state.fatal = outcome
            break
        query.cache[req.key] = outcome
        failed = isinstance(outcome, RowError)
        if self.on_call is not None:
            self.on_call(failed)
        if failed and (mode == "strict" or (mode == "default" and outcome.fatal and not state.succeeded)):
            raise _Abort(outcome)

    async def _post(self, req: ApiRequest, retry: bool) -> tuple[Outcome, float | None]:
        """One HTTP request: (value or RowError, Retry-After seconds if the gateway sent one)."""
        self.summary.count_call(retry)
        try:
            async with self._session().post(self.config.base_url + req.path, data=orjson.dumps(req.body)) as resp:
                raw = await resp.read()
                status, retry_header = resp.status, resp.headers.get("retry-after")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return RowError(req.endpoint, "connection_error", f"{type(exc).__name__}: {exc}".rstrip(": ")), None
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        if status >= 400:
            retry_after = None
            if retry_header is not None:
                try:
                    retry_after = max(0.0, float(retry_header))
                except ValueError:
                    retry_after = None
            return classify(req.endpoint, status, body), retry_after
        return _value(req, status, body), None

    @staticmethod
    def _transient(error: RowError) -> bool:
        return error.code == "connection_error" or (error.status in _TRANSIENT_STATUS)

    def _backoff(self, attempt: int) -> float:
        return min(self.config.backoff_cap, self.config.backoff_base * 2**attempt) * (0.5 + random.random() / 2)

    def _pause(self, endpoint: str, seconds: float) -> None:
        until = time.monotonic() + seconds
        if until > self._resume_at.get(endpoint, 0.0):
            self._resume_at[endpoint] = until

    async def _wait_resume(self, endpoint: str) -> None:
        while (delay := self._resume_at.get(endpoint, 0.0) - time.monotonic()) > 0:
            await asyncio.sleep(delay)


def _first_abort(group: BaseExceptionGroup) -> _Abort:  # type: ignore[type-arg]
    """The _Abort that ended the batch, however deep the TaskGroups nested it."""
    for exc in group.exceptions:
        if isinstance(exc, _Abort):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            return _first_abort(exc)
    raise AssertionError("no _Abort in the group")


def _value(req: ApiRequest, status: int, body: Any) -> Outcome:
    """The useful part of a successful response, or a RowError when it is not what the route promises."""
    try:
        if req.route == "chat":
            content = body["choices"][0]["message"]["content"]
            if isinstance(content, str):
                return content
            refusal = body["choices"][0]["message"].get("refusal")
            if refusal:
                return RowError(req.endpoint, "refusal", str(refusal), status)
        else:
            vector = body["data"][0]["embedding"]
            if isinstance(vector, list) and all(isinstance(x, int | float) for x in vector):
                return [float(x) for x in vector]
    except (KeyError, IndexError, TypeError, AttributeError):
        pass
    return RowError(req.endpoint, "malformed_response", f"the gateway answered {status} without a usable result",
                    status)  # fmt: skip
