"""Per-row errors and the end-of-query summary of the SQL functions.

Why per-row: a warehouse query over a million rows should not die because row 734 hit an
upstream hiccup (Snowflake's AI functions and BigQuery's ``AI.GENERATE`` return a per-row
result for the same reason). So a failed call becomes a :class:`RowError`; the function
yields NULL (or the error in the detailed variant) and the summary tells how many rows failed
and why. Refusals that would hit every row alike (no permission, quota exhausted, unknown
endpoint, bad key) are *fatal* for their endpoint: the caller stops calling it.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

__all__ = ["FATAL_CODES", "AiFunctionError", "FailureSummary", "RowError", "classify"]

# codes after which no further call to the same endpoint can succeed within the query
FATAL_CODES = frozenset({"permission_denied", "insufficient_quota", "model_not_found", "model_not_supported",
                         "invalid_api_key"})  # fmt: skip
# what a human reads for each code (the gateway's own message follows)
LABELS = {
    "permission_denied": "permission denied",
    "insufficient_quota": "quota exhausted",
    "model_not_found": "endpoint not found",
    "model_not_supported": "wrong endpoint category",
    "invalid_api_key": "API key refused",
    "rate_limit_exceeded": "rate limited (retries exhausted)",
    "upstream_rate_limited": "upstream rate limited (retries exhausted)",
    "upstream_timeout": "upstream timeout",
    "connection_error": "gateway unreachable",
    "malformed_response": "malformed response",
}


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one call failed: the gateway's error ``code`` (OpenAI style), HTTP status and message."""

    endpoint: str
    code: str
    message: str
    status: int | None = None

    @property
    def fatal(self) -> bool:
        return self.code in FATAL_CODES

    @property
    def label(self) -> str:
        return LABELS.get(self.code, self.code.replace("_", " "))

    def __str__(self) -> str:
        """The text the detailed variant returns in its ``error`` field: code first, for filtering."""
        return f"{self.code}: {self.message}"

    def describe(self, function: str) -> str:
        """The strict-mode / fail-fast message: names the function, the endpoint and the gateway's error."""
        status = f" (HTTP {self.status})" if self.status else ""
        return f"{function} on endpoint '{self.endpoint}' failed: {self.label}{status}: {self.message}"


def classify(endpoint: str, status: int, body: object) -> RowError:
    """A RowError from a gateway error response (OpenAI-shaped ``{"error": {...}}`` or anything else)."""
    message, code = f"HTTP {status}", None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        message = str(err.get("message") or message)
        code = err.get("code") or err.get("type")
    if not isinstance(code, str) or not code:
        code = {401: "invalid_api_key", 403: "permission_denied", 404: "model_not_found",
                429: "rate_limit_exceeded", 504: "upstream_timeout"}.get(status, "upstream_error" if status >= 500
                                                                          else "bad_request")  # fmt: skip
    return RowError(endpoint, code, message, status)


class AiFunctionError(RuntimeError):
    """Raised inside a UDF to fail the query (strict mode, or a refusal that hits every row)."""

    def __init__(self, message: str, error: RowError | None = None) -> None:
        super().__init__(message)
        self.error = error


class FailureSummary:
    """Counts of failed rows by (function, endpoint, code, message); thread-safe, cumulative."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failures: Counter[tuple[str, str, str, str]] = Counter()
        self.rows = 0  # rows with non-NULL inputs handed to an ai_* function
        self.calls = 0  # HTTP requests sent, retries included
        self.unique = 0  # distinct requests (after de-duplication within each query)
        self.retries = 0
        self.skipped = 0  # rows answered from a fatal refusal without a call

    def add_rows(self, rows: int) -> None:
        with self._lock:
            self.rows += rows

    def add_failure(self, function: str, error: RowError, rows: int = 1) -> None:
        with self._lock:
            self.failures[(function, error.endpoint, error.code, error.message)] += rows

    def count_call(self, retry: bool) -> None:
        with self._lock:
            self.calls += 1
            self.retries += int(retry)

    def count_unique(self, n: int) -> None:
        with self._lock:
            self.unique += n

    def count_skipped(self) -> None:
        with self._lock:
            self.skipped += 1

    @property
    def failed_rows(self) -> int:
        with self._lock:
            return sum(self.failures.values())

    def lines(self) -> list[str]:
        """The human summary: one headline, then one line per distinct failure, most frequent first."""
        with self._lock:
            total = sum(self.failures.values())
            head = (f"{_n(self.rows, 'row')} through ai_* functions: {_n(self.unique, 'distinct call')} "
                    f"({_n(self.calls, 'HTTP request')}, {_n(self.retries, 'retry', 'retries')})")  # fmt: skip
            if not total:
                return [head + "; no row failed."]
            out = [head + f"; {total} of {_n(self.rows, 'row')} failed:"]
            for (function, endpoint, code, message), n in self.failures.most_common():
                label = LABELS.get(code, code.replace("_", " "))
                out.append(f"  {n} × {function} on '{endpoint}': {label} [{code}]: {message}")
            if self.skipped:
                out.append(f"  ({_n(self.skipped, 'distinct call')} not sent: the endpoint had already refused "
                           "for permission or quota)")  # fmt: skip
            return out


def _n(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else plural or singular + 's'}"
