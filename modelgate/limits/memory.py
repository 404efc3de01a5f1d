"""In-process counters: exact within one process (the event loop makes each call atomic)."""

from __future__ import annotations

from bisect import insort
from collections import deque

from modelgate.limits.base import CounterStore, Decision, Plan, QuotaScope, QuotaUnknown
from modelgate.limits.windows import WINDOW, retry_after

__all__ = ["MemoryStore"]


class _Window:
    """Per-second buckets of requests and tokens over the last 60 seconds, with running totals
    (summing 60 buckets twice per request was a measurable part of admission)."""

    __slots__ = ("order", "req", "req_total", "tok", "tok_total")

    def __init__(self) -> None:
        self.req: dict[int, int] = {}
        self.tok: dict[int, int] = {}
        self.order: deque[int] = deque()  # the seconds held, oldest first
        self.req_total = 0
        self.tok_total = 0

    def totals(self, now_sec: int) -> tuple[int, int]:
        floor = now_sec - WINDOW
        order = self.order
        while order and order[0] <= floor:
            sec = order.popleft()
            self.req_total -= self.req.pop(sec, 0)
            self.tok_total -= self.tok.pop(sec, 0)
        return self.req_total, self.tok_total

    def add(self, sec: int, requests: int, tokens: int) -> None:
        if sec not in self.req:
            self.req[sec] = self.tok[sec] = 0
            if not self.order or sec > self.order[-1]:
                self.order.append(sec)
            else:  # a request stamped a little earlier, admitted a little later
                insort(self.order, sec)
        self.req[sec] += requests
        self.tok[sec] += tokens
        self.req_total += requests
        self.tok_total += tokens

    def adjust_tokens(self, sec: int, delta: int) -> None:
        if sec in self.tok:
            self.tok[sec] += delta
            self.tok_total += delta


class MemoryStore(CounterStore):
    name = "memory"

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._quotas: dict[str, list[int]] = {}  # key → [used, reserved]

    async def reserve(self, plan: Plan) -> Decision:
        return self.reserve_now(plan)

    def reserve_now(self, plan: Plan) -> Decision:
        now_sec = int(plan.now)
        missing = [q for q in plan.quotas if q.key not in self._quotas]
        if missing:
            raise QuotaUnknown(missing)
        d = Decision(True)
        tokens = plan.tokens
        windows = []
        for scope in plan.rates:
            w = self._windows.get(scope.key)
            if w is None:
                w = self._windows[scope.key] = _Window()
            req, tok = w.totals(now_sec)
            if scope.rpm is not None:
                if req + 1 > scope.rpm:
                    return Decision(False, "rpm", scope.key, retry_after(list(w.req.items()), req, 1, scope.rpm, now_sec),
                                    scope.rpm, 0, scope.tpm, None if scope.tpm is None else max(0, scope.tpm - tok))  # fmt: skip
                if d.remaining_requests is None or scope.rpm - req - 1 < d.remaining_requests:
                    d.limit_requests, d.remaining_requests = scope.rpm, scope.rpm - req - 1
            if scope.tpm is not None:
                if tok + tokens > scope.tpm:
                    return Decision(False, "tpm", scope.key,
                                    retry_after(list(w.tok.items()), tok, tokens, scope.tpm, now_sec)
                                    if tokens <= scope.tpm else WINDOW,
                                    scope.rpm, None if scope.rpm is None else max(0, scope.rpm - req),
                                    scope.tpm, max(0, scope.tpm - tok))  # fmt: skip
                if d.remaining_tokens is None or scope.tpm - tok - tokens < d.remaining_tokens:
                    d.limit_tokens, d.remaining_tokens = scope.tpm, scope.tpm - tok - tokens
            windows.append(w)
        for q in plan.quotas:
            used, reserved = self._quotas[q.key]
            remaining = q.limit - used - reserved
            if remaining <= 0:
                return Decision(False, "quota", q.key, max(1, int(q.expires_at - plan.now)), quota_remaining=0,
                                extra={"quota_limit": q.limit})  # fmt: skip
            if d.quota_remaining is None or remaining < d.quota_remaining:
                d.quota_remaining = remaining
        for w in windows:
            w.add(now_sec, 1, tokens)
        for q in plan.quotas:
            self._quotas[q.key][1] += tokens
        return d

    async def settle(self, plan: Plan, actual_tokens: int) -> None:
        self.settle_now(plan, actual_tokens)

    def settle_now(self, plan: Plan, actual_tokens: int) -> None:
        sec = int(plan.now)
        delta = actual_tokens - plan.tokens
        if delta:
            for scope in plan.rates:
                w = self._windows.get(scope.key)
                if w is not None:
                    w.adjust_tokens(sec, delta)
        for q in plan.quotas:
            counter = self._quotas.get(q.key)
            if counter is not None:
                counter[0] += actual_tokens
                counter[1] -= plan.tokens

    async def load_quota(self, scope: QuotaScope, used: int) -> None:
        self._quotas.setdefault(scope.key, [used, 0])

    async def quota_used(self, key: str) -> tuple[int, int] | None:
        c = self._quotas.get(key)
        return (c[0], c[1]) if c is not None else None
