"""The ai_* functions on a DuckDB connection.

Each public function is a temporary SQL macro over one vectorised (``type="arrow"``) Python
UDF. The macros exist for two reasons: DuckDB's Python ``create_function`` cannot overload a
name (``ai_complete`` takes 2 or 3 arguments), and a UDF cannot tell one query from the next —
so every macro also passes ``txid_current()``, which is constant within a query and new for the
next one. That gives "identical prompts in one query are sent once" and "stop after the first
refusal" a precise scope, without leaking de-duplication into the next run of the same
statement (inside an explicit ``BEGIN ... COMMIT`` the queries share one id, so they share
answers too).

=================================================  ===============================================
function                                           result
=================================================  ===============================================
``ai_complete(endpoint, prompt[, options])``       VARCHAR; NULL for NULL input or a failed row
``ai_complete_detailed(endpoint, prompt[, opts])`` STRUCT(value VARCHAR, error VARCHAR)
``ai_embed(endpoint, text)``                       FLOAT[]
``ai_embed_detailed(endpoint, text)``              STRUCT(value FLOAT[], error VARCHAR)
``ai_count_tokens(prompt[, options])``             BIGINT: the gateway's input-token estimate
=================================================  ===============================================

``options`` is JSON text or a STRUCT: ``system`` (or ``system_prompt``), ``temperature``,
``max_tokens``, ``top_p``, ``response_format`` ('json_object', 'text' or an object), ``stop``,
``seed``, ``presence_penalty``, ``frequency_penalty``, ``max_completion_tokens``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa
from duckdb.sqltypes import BIGINT, FLOAT, UBIGINT, VARCHAR

from modelgate.sql.client import ClientConfig, GatewayClient, Mode, QueryState
from modelgate.sql.errors import AiFunctionError, FailureSummary, RowError
from modelgate.sql.estimate import Estimate
from modelgate.sql.requests import ApiRequest, OptionsError, complete_request, embed_request, parse_options

__all__ = ["SqlSession"]

_STR_STRUCT = pa.struct([("value", pa.string()), ("error", pa.string())])
_VEC = pa.list_(pa.float32())
_VEC_STRUCT = pa.struct([("value", _VEC), ("error", pa.string())])

_MACROS = """
CREATE OR REPLACE TEMP MACRO ai_complete(endpoint, prompt) AS
    __mg_complete(endpoint::VARCHAR, prompt::VARCHAR, NULL::VARCHAR, txid_current()),
  (endpoint, prompt, options) AS
    __mg_complete(endpoint::VARCHAR, prompt::VARCHAR, to_json(options)::VARCHAR, txid_current());
CREATE OR REPLACE TEMP MACRO ai_complete_detailed(endpoint, prompt) AS
    __mg_complete_detailed(endpoint::VARCHAR, prompt::VARCHAR, NULL::VARCHAR, txid_current()),
  (endpoint, prompt, options) AS
    __mg_complete_detailed(endpoint::VARCHAR, prompt::VARCHAR, to_json(options)::VARCHAR, txid_current());
CREATE OR REPLACE TEMP MACRO ai_embed(endpoint, text) AS
    __mg_embed(endpoint::VARCHAR, text::VARCHAR, txid_current());
CREATE OR REPLACE TEMP MACRO ai_embed_detailed(endpoint, text) AS
    __mg_embed_detailed(endpoint::VARCHAR, text::VARCHAR, txid_current());
CREATE OR REPLACE TEMP MACRO ai_count_tokens(prompt) AS __mg_count_tokens(prompt::VARCHAR, NULL::VARCHAR),
  (prompt, options) AS __mg_count_tokens(prompt::VARCHAR, to_json(options)::VARCHAR);
"""


class SqlSession:
    """The state behind the functions of one connection: the client, the current query, the summary.

    ``strict``: the first failed row fails the query. ``dry_run``: nothing is sent; the requests
    that would be are collected in ``estimate``. ``on_rows`` is a progress hook (rows finished).
    """

    def __init__(self, config: ClientConfig, *, strict: bool = False, dry_run: bool = False) -> None:
        self.summary = FailureSummary()
        self.client = GatewayClient(config, self.summary)
        self.strict = strict
        self.estimate: Estimate | None = Estimate() if dry_run else None
        self.on_rows: Callable[[int], None] | None = None
        self._query = QueryState(txid=None)
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    # -- registration
    def register(self, conn: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        vec = duckdb.list_type(FLOAT)
        udfs: list[tuple[str, Callable[..., pa.Array], list[Any], Any, bool]] = [
            ("__mg_complete", self._complete, [VARCHAR, VARCHAR, VARCHAR, UBIGINT], VARCHAR, True),
            ("__mg_complete_detailed", self._complete_detailed, [VARCHAR, VARCHAR, VARCHAR, UBIGINT],
             duckdb.struct_type({"value": VARCHAR, "error": VARCHAR}), True),
            ("__mg_embed", self._embed, [VARCHAR, VARCHAR, UBIGINT], vec, True),
            ("__mg_embed_detailed", self._embed_detailed, [VARCHAR, VARCHAR, UBIGINT],
             duckdb.struct_type({"value": vec, "error": VARCHAR}), True),
            ("__mg_count_tokens", self._count_tokens, [VARCHAR, VARCHAR], BIGINT, False),
        ]  # fmt: skip
        for name, fn, params, returns, side_effects in udfs:
            with contextlib.suppress(duckdb.InvalidInputException):
                conn.remove_function(name)  # connecting the same connection again replaces the functions
            conn.create_function(name, fn, params, returns, type="arrow", null_handling="special",
                                 side_effects=side_effects)  # fmt: skip
        conn.execute(_MACROS)
        return conn

    # -- the UDFs (DuckDB calls them with arrow arrays, one batch at a time)
    def _complete(self, endpoints: pa.Array, prompts: pa.Array, options: pa.Array, txids: pa.Array) -> pa.Array:
        out = self._batch("ai_complete", "strict" if self.strict else "default", txids,
                          self._complete_requests(endpoints, prompts, options))  # fmt: skip
        return pa.array([None if isinstance(v, RowError) else v for v in out], pa.string())

    def _complete_detailed(self, endpoints: pa.Array, prompts: pa.Array, options: pa.Array,
                           txids: pa.Array) -> pa.Array:  # fmt: skip
        out = self._batch("ai_complete_detailed", "detailed", txids,
                          self._complete_requests(endpoints, prompts, options))  # fmt: skip
        return pa.array([_detailed(v) for v in out], _STR_STRUCT)

    def _embed(self, endpoints: pa.Array, texts: pa.Array, txids: pa.Array) -> pa.Array:
        out = self._batch("ai_embed", "strict" if self.strict else "default", txids,
                          self._embed_requests(endpoints, texts))  # fmt: skip
        return pa.array([None if isinstance(v, RowError) else v for v in out], _VEC)

    def _embed_detailed(self, endpoints: pa.Array, texts: pa.Array, txids: pa.Array) -> pa.Array:
        out = self._batch("ai_embed_detailed", "detailed", txids, self._embed_requests(endpoints, texts))
        return pa.array([_detailed(v) for v in out], _VEC_STRUCT)

    @staticmethod
    def _count_tokens(prompts: pa.Array, options: pa.Array) -> pa.Array:
        counts: list[int | None] = []
        parsed: dict[str | None, dict[str, Any]] = {}
        for prompt, raw in zip(prompts.to_pylist(), options.to_pylist(), strict=True):
            if prompt is None:
                counts.append(None)
                continue
            if raw not in parsed:
                parsed[raw] = _options(raw, "ai_count_tokens")
            opts = parsed[raw]
            counts.append(complete_request("count", prompt, opts).input_tokens())
        return pa.array(counts, pa.int64())

    # -- shared batch logic
    @staticmethod
    def _complete_requests(endpoints: pa.Array, prompts: pa.Array, options: pa.Array) -> list[ApiRequest | None]:
        parsed: dict[str | None, dict[str, Any]] = {}
        out: list[ApiRequest | None] = []
        for ep, prompt, raw in zip(endpoints.to_pylist(), prompts.to_pylist(), options.to_pylist(), strict=True):
            if ep is None or prompt is None:
                out.append(None)
                continue
            if raw not in parsed:
                parsed[raw] = _options(raw, "ai_complete")
            opts = parsed[raw]
            out.append(complete_request(ep, prompt, opts))
        return out

    @staticmethod
    def _embed_requests(endpoints: pa.Array, texts: pa.Array) -> list[ApiRequest | None]:
        return [None if ep is None or text is None else embed_request(ep, text)
                for ep, text in zip(endpoints.to_pylist(), texts.to_pylist(), strict=True)]  # fmt: skip

    def _batch(self, function: str, mode: Mode, txids: pa.Array, requests: list[ApiRequest | None]) -> list[Any]:
        """Answers per row (value, RowError or None), sending each distinct uncached request once."""
        with self._lock:
            txid = txids[0].as_py() if len(txids) else None
            if txid != self._query.txid:
                self._query = QueryState(txid)  # a new query: forget the last one's answers and refusals
            query = self._query
            rows = sum(r is not None for r in requests)
            self.summary.add_rows(rows)
            if self.estimate is not None:
                self.estimate.add(requests)
                self._advance(len(requests))
                return [None] * len(requests)
            todo: dict[bytes, ApiRequest] = {}
            for req in requests:
                if req is not None and req.key not in query.cache and req.key not in todo:
                    todo[req.key] = req
            self.summary.count_unique(len(todo))
            try:
                self.client.run(function, list(todo.values()), query, mode)
            except AiFunctionError as exc:
                if exc.error is not None:
                    self.summary.add_failure(function, exc.error)
                raise
            out = [None if req is None else query.cache[req.key] for req in requests]
            for value in out:
                if isinstance(value, RowError):
                    self.summary.add_failure(function, value)
            self._advance(len(requests))
            return out

    def _advance(self, rows: int) -> None:
        if self.on_rows is not None:
            self.on_rows(rows)


def _options(raw: str | None, function: str) -> dict[str, Any]:
    try:
        return parse_options(raw)
    except OptionsError as exc:
        raise AiFunctionError(f"{function}: {exc}") from None


def _detailed(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, RowError):
        return {"value": None, "error": str(value)}
    return {"value": value, "error": None}
