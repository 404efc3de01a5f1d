"""Admission: which limits apply to a request, one atomic reserve, the rate-limit headers.

The estimate reserved up front is the prompt's estimated tokens plus ``max_tokens`` (or
``max_completion_tokens``, or the endpoint's default output estimate); ``settle`` replaces it
with the tokens actually recorded for the call, so TPM windows and quotas count real usage.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from modelgate.errors import QuotaExceeded, RateLimited
from modelgate.limits import Decision, Limiter, Plan, QuotaScope, RateScope
from modelgate.limits.windows import cycle_id
from modelgate.runtime.snapshot import EndpointEntry, KeyEntry, Snapshot

__all__ = ["admit", "plan_for", "rate_headers"]

_LLM_ROUTES = frozenset({"chat", "completions"})


def _output_estimate(body: dict[str, Any], endpoint: EndpointEntry, route: str) -> int:
    if route not in _LLM_ROUTES:
        return 0
    for field in ("max_completion_tokens", "max_tokens"):
        v = body.get(field)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return endpoint.default_output_tokens


def _scopes(
    snap: Snapshot, key: KeyEntry | None, tenant_id: int, endpoint: EndpointEntry, now: float
) -> tuple[list[RateScope], list[QuotaScope], float, float]:
    """The rate and quota scopes of (key, endpoint), and from and until when they hold (the quota
    cycles: a new cycle is a new counter key)."""
    rates: list[RateScope] = []
    if endpoint.rpm is not None or endpoint.tpm is not None:
        rates.append(RateScope(f"ep:{endpoint.id}", endpoint.rpm, endpoint.tpm))
    if key is not None and (key.rpm is not None or key.tpm is not None):
        rates.append(RateScope(f"key:{key.id}", key.rpm, key.tpm))
    quotas: list[QuotaScope] = []
    tenant = snap.tenants.get(tenant_id)
    tz = tenant.timezone if tenant else "UTC"
    since, until = float("-inf"), float("inf")
    if tenant is not None and tenant.quota_tokens is not None:
        cid, start, end = cycle_id(tenant.quota_cycle, tz, now)
        quotas.append(QuotaScope(f"t:{tenant.id}:{tenant.quota_epoch}:{cid}", tenant.quota_tokens, start, end, "tenant", tenant.id))
        since, until = max(since, start), min(until, end)
    if endpoint.quota_tokens is not None:
        cid, start, end = cycle_id(endpoint.quota_cycle, tz, now)
        quotas.append(QuotaScope(f"e:{endpoint.id}:{endpoint.quota_epoch}:{cid}", endpoint.quota_tokens, start, end, "endpoint", endpoint.id))
        since, until = max(since, start), min(until, end)
    return rates, quotas, since, until


class _ScopeCache:
    """Scopes per (key, endpoint) for one snapshot: every request of a caller needs the same ones,
    so the key strings and scope objects are built once per snapshot and quota cycle."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: dict[tuple[int | None, int], tuple[list[RateScope], list[QuotaScope], float, float]] = {}

    def get(
        self, snap: Snapshot, key: KeyEntry | None, tenant_id: int, endpoint: EndpointEntry, now: float
    ) -> tuple[list[RateScope], list[QuotaScope], float, float]:
        if snap is not self.snapshot or len(self.entries) > 100_000:
            self.snapshot, self.entries = snap, {}
        ck = (None if key is None else key.id, endpoint.id)
        hit = self.entries.get(ck)
        if hit is None or not hit[2] <= now < hit[3]:
            hit = self.entries[ck] = _scopes(snap, key, tenant_id, endpoint, now)
        return hit


_CACHE = _ScopeCache()


def plan_for(
    snap: Snapshot, key: KeyEntry | None, tenant_id: int, endpoint: EndpointEntry, input_estimate: int,
    body: dict[str, Any], route: str, now: float,
) -> Plan | None:  # fmt: skip
    """The limits that apply, or None when none does (then the store is not consulted at all)."""
    rates, quotas, _, _ = _CACHE.get(snap, key, tenant_id, endpoint, now)
    if not rates and not quotas:
        return None
    return Plan(rates, quotas, input_estimate + _output_estimate(body, endpoint, route), now)


def rate_headers(d: Decision) -> dict[str, str]:
    h: dict[str, str] = {}
    if d.limit_requests is not None:
        h["x-ratelimit-limit-requests"] = str(d.limit_requests)
        h["x-ratelimit-remaining-requests"] = str(max(0, d.remaining_requests or 0))
    if d.limit_tokens is not None:
        h["x-ratelimit-limit-tokens"] = str(d.limit_tokens)
        h["x-ratelimit-remaining-tokens"] = str(max(0, d.remaining_tokens or 0))
    return h


async def admit(limiter: Limiter, plan: Plan, endpoint: EndpointEntry, snap: Snapshot) -> dict[str, str]:
    """Reserve or raise the 429 the client should see; returns the headers for an admitted request."""
    d = await limiter.reserve(plan)
    headers = rate_headers(d)
    if d.allowed:
        return headers
    headers["retry-after"] = str(d.retry_after)
    if d.reason == "quota":
        q = next(q for q in plan.quotas if q.key == d.scope)
        owner = f"tenant '{snap.tenants[q.subject_id].name}'" if q.kind == "tenant" else f"endpoint '{endpoint.name}'"
        renews = datetime.fromtimestamp(q.expires_at, UTC).isoformat(timespec="seconds")
        raise QuotaExceeded(f"The token quota of {owner} ({q.limit} tokens this cycle) is exhausted; it renews at "
                            f"{renews}.", headers=headers)  # fmt: skip
    if d.reason == "tpm" and d.limit_tokens is not None and plan.tokens > d.limit_tokens:
        # waiting cannot help: say so instead of inviting a retry that can never be admitted
        del headers["retry-after"]
        raise RateLimited(f"This request needs about {plan.tokens} tokens (prompt estimate + max_tokens), more than "
                          f"the whole limit of {d.limit_tokens} tokens per minute; lower max_tokens or raise the "
                          "limit.", code="request_exceeds_tpm_limit", headers=headers)  # fmt: skip
    what = "requests" if d.reason == "rpm" else "tokens"
    limit = d.limit_requests if d.reason == "rpm" else d.limit_tokens
    scope = f"endpoint '{endpoint.name}'" if (d.scope or "").startswith("ep:") else "this API key"
    raise RateLimited(f"Rate limit reached for {scope}: {limit} {what} per minute. Retry after {d.retry_after} s.",
                      headers=headers)  # fmt: skip
