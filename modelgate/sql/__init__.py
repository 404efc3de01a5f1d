"""SQL invocation: ``ai_complete`` / ``ai_embed`` in DuckDB, every call governed by the gateway.

>>> import modelgate.sql
>>> con = modelgate.sql.connect(base_url="http://127.0.0.1:8080", api_key="mg-...")
>>> con.sql("select ai_complete('endpoint:qwen', 'What is the capital of China?')").fetchall()

The functions call the gateway's ``/v1`` API with the API key (declaring usage channel
``sql``), so permissions, rate limits, quotas and usage attribution are those of the key's
owner, exactly as for REST clients. Needs the optional extra: ``pip install 'modelgate[sql]'``.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from modelgate.sql.client import ClientConfig
from modelgate.sql.errors import AiFunctionError, FailureSummary, RowError

if TYPE_CHECKING:
    import duckdb

    from modelgate.sql.duckdb_udf import SqlSession

__all__ = ["AiFunctionError", "ClientConfig", "FailureSummary", "RowError", "close", "config_from", "connect",
           "session"]  # fmt: skip

_SESSIONS: dict[int, SqlSession] = {}
_LOCK = threading.Lock()


def config_from(base_url: str | None = None, api_key: str | None = None, **options: Any) -> ClientConfig:
    """A ClientConfig from arguments, falling back to ``MODELGATE_BASE_URL`` / ``MODELGATE_API_KEY``."""
    base_url = base_url or os.environ.get("MODELGATE_BASE_URL")
    api_key = api_key or os.environ.get("MODELGATE_API_KEY")
    if not base_url:
        raise ValueError("no gateway URL: pass base_url or set MODELGATE_BASE_URL")
    if not api_key:
        raise ValueError("no API key: pass api_key or set MODELGATE_API_KEY")
    return ClientConfig(base_url=base_url, api_key=api_key, **options)


def connect(
    base_url: str | None = None,
    api_key: str | None = None,
    *,
    database: str = ":memory:",
    connection: duckdb.DuckDBPyConnection | None = None,
    strict: bool = False,
    dry_run: bool = False,
    **options: Any,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection (new, or ``connection``) with the ai_* functions registered.

    ``strict=True`` fails a query at its first failed row; by default failed rows are NULL and
    :func:`session` (``.summary``) tells why. ``dry_run=True`` sends nothing and collects an
    estimate instead. Further ``options`` go to :class:`ClientConfig` (``concurrency``,
    ``timeout``, ``retries``, ``rate_limit_retries``, ``max_retry_wait``).
    """
    try:
        import duckdb
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError("modelgate.sql needs DuckDB: pip install 'modelgate[sql]'") from exc
    from modelgate.sql.duckdb_udf import SqlSession

    config = config_from(base_url, api_key, **options)
    conn = connection if connection is not None else duckdb.connect(database)
    sql_session = SqlSession(config, strict=strict, dry_run=dry_run)
    sql_session.register(conn)
    key = id(conn)
    with _LOCK:
        old = _SESSIONS.pop(key, None)
        _SESSIONS[key] = sql_session
    if old is not None:
        old.close()
    import weakref

    weakref.finalize(conn, _forget, key, sql_session)
    return conn


def session(conn: duckdb.DuckDBPyConnection) -> SqlSession:
    """The SqlSession behind a connection from :func:`connect`: its ``summary`` and ``estimate``."""
    with _LOCK:
        found = _SESSIONS.get(id(conn))
    if found is None:
        raise KeyError("this connection was not made by modelgate.sql.connect")
    return found


def close(conn: duckdb.DuckDBPyConnection) -> None:
    """Close the connection and the HTTP pool behind its functions."""
    with _LOCK:
        found = _SESSIONS.pop(id(conn), None)
    conn.close()
    if found is not None:
        found.close()


def _forget(key: int, sql_session: SqlSession) -> None:
    with _LOCK:
        if _SESSIONS.get(key) is sql_session:
            del _SESSIONS[key]
    sql_session.close()
