"""The limiter the data plane talks to: primary store, fallback policy, quota rebuilds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from modelgate.errors import ServiceUnavailable
from modelgate.limits.base import CounterStore, Decision, Plan, QuotaScope, QuotaUnknown, StoreUnavailable
from modelgate.limits.memory import MemoryStore

__all__ = ["Limiter"]

log = logging.getLogger("modelgate.limits")
QuotaSource = Callable[[QuotaScope], Awaitable[int]]
_MAX_UNSETTLED = 100_000  # settles kept for replay while the shared store is unreachable


class Limiter:
    def __init__(self, primary: CounterStore, quota_source: QuotaSource, *, policy: str = "open") -> None:
        self.primary = primary
        self.local = primary if isinstance(primary, MemoryStore) else MemoryStore()
        self.policy = policy
        self.quota_source = quota_source
        self.healthy = True
        self._loading: dict[str, asyncio.Future[None]] = {}
        self._probe: asyncio.Task[None] | None = None
        self._to_settle: list[tuple[Plan, int]] = []
        self._settler: asyncio.Task[None] | None = None
        self._unsettled: list[tuple[CounterStore, Plan, int]] = []

    @property
    def state(self) -> str:
        if self.primary is self.local:
            return "memory"
        return f"{self.primary.name}:{'up' if self.healthy else 'down'}"

    async def reserve(self, plan: Plan) -> Decision:
        store = self.primary if self.healthy else self._fallback()
        try:
            decision = await self._reserve_on(store, plan)
        except StoreUnavailable as exc:
            self._mark_down(exc)
            store = self._fallback()
            decision = await self._reserve_on(store, plan)
        plan.store = store
        return decision

    def _fallback(self) -> CounterStore:
        if self.policy == "closed":
            raise ServiceUnavailable("The rate-limit store (Redis) is unreachable and this gateway fails closed; "
                                     "try again shortly.", code="limiter_unavailable")  # fmt: skip
        return self.local

    async def _reserve_on(self, store: CounterStore, plan: Plan) -> Decision:
        if store is self.local and isinstance(store, MemoryStore):
            try:
                return store.reserve_now(plan)
            except QuotaUnknown as missing:
                await self._load(store, missing.scopes)
                return store.reserve_now(plan)
        try:
            return await store.reserve(plan)
        except QuotaUnknown as missing:
            await self._load(store, missing.scopes)
            return await store.reserve(plan)

    async def _load(self, store: CounterStore, scopes: list[QuotaScope]) -> None:
        """Rebuild quota counters from the database, once per counter however many requests wait."""
        for scope in scopes:
            token = f"{id(store)}:{scope.key}"
            fut = self._loading.get(token)
            if fut is None:
                fut = self._loading[token] = asyncio.get_running_loop().create_future()
                try:
                    used = await self.quota_source(scope)
                    await store.load_quota(scope, used)
                    fut.set_result(None)
                except BaseException as exc:
                    fut.set_exception(exc)
                    fut.exception()  # retrieved here: waiters re-raise it
                    raise
                finally:
                    del self._loading[token]
            else:
                await asyncio.shield(fut)

    def settle(self, plan: Plan, actual_tokens: int) -> None:
        store = plan.store
        if store is None:
            return
        if isinstance(store, MemoryStore):
            store.settle_now(plan, actual_tokens)
            return
        # Queued and sent together: one pipelined round trip for every settle gathered meanwhile,
        # instead of a task and a round trip per request. (A remote reservation was taken on the
        # primary store: the only store that is not in-process.)
        self._to_settle.append((plan, actual_tokens))
        if self._settler is None or self._settler.done():
            self._settler = asyncio.get_running_loop().create_task(self._drain_settles(), name="limiter-settles")

    async def _drain_settles(self) -> None:
        while self._to_settle:
            batch, self._to_settle = self._to_settle, []
            try:
                await self.primary.settle_many(batch)
            except StoreUnavailable as exc:
                # replayed when the store is back: a lost settle would leave its reservation in the
                # quota counter for the rest of the cycle
                room = max(0, _MAX_UNSETTLED - len(self._unsettled))
                self._unsettled.extend((self.primary, plan, actual) for plan, actual in batch[:room])
                self._mark_down(exc)

    def _mark_down(self, exc: Exception) -> None:
        if self.healthy:
            self.healthy = False
            if self.primary is not self.local:
                # fresh local counters for each outage: quota counters are rebuilt from the usage
                # records, which include what was used through the shared store since the last one
                self.local = MemoryStore()
            log.error("rate-limit store %s unreachable (%s); failing %s", self.primary.name, exc, self.policy)
            self._probe = asyncio.get_running_loop().create_task(self._wait_until_up())

    async def _wait_until_up(self) -> None:
        ping = getattr(self.primary, "ping", None)
        while ping is not None:
            await asyncio.sleep(0.5)
            if await ping() and await self._replay():
                self.healthy = True
                log.warning("rate-limit store %s is reachable again", self.primary.name)
                return

    async def _replay(self) -> bool:
        """Apply the settles that failed during the outage, before the store is used again. A counter
        the store lost meanwhile is skipped by its settle script (and rebuilt from the records)."""
        while self._unsettled:
            store, plan, actual = self._unsettled[0]
            try:
                await store.settle(plan, actual)
            except StoreUnavailable:
                return False
            self._unsettled.pop(0)
        return True

    async def quota_status(self, scope: QuotaScope) -> tuple[int, int] | None:
        store = self.primary if self.healthy else self.local
        try:
            return await store.quota_used(scope.key)
        except StoreUnavailable:
            return await self.local.quota_used(scope.key)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        if self._settler is not None:
            await asyncio.gather(self._settler, return_exceptions=True)
        await self.primary.close()
