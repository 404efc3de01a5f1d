"""The counter-store interface: one atomic reserve of RPM, TPM and quota, then a settle.

A ``Plan`` lists what one request must pass: rate scopes (endpoint, API key) with their RPM
and TPM limits, and quota scopes (tenant, endpoint) with their budgets for the current cycle.
``reserve`` checks all of them and, only if all pass, counts the request and reserves its
estimated tokens everywhere, in one step. ``settle`` replaces the estimate with the real usage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

__all__ = ["CounterStore", "Decision", "Plan", "QuotaScope", "QuotaUnknown", "RateScope", "StoreUnavailable"]


@dataclass(frozen=True, slots=True)
class RateScope:
    key: str  # e.g. "ep:12", "key:7"
    rpm: int | None
    tpm: int | None


@dataclass(frozen=True, slots=True)
class QuotaScope:
    key: str  # e.g. "t:1:m2026-12-01" (tenant), "e:12:m2026-12-01" (endpoint)
    limit: int
    start: float  # start of the cycle: usage since then is what a rebuilt counter holds
    expires_at: float  # end of the cycle (a store may drop the counter some time after)
    kind: str  # "tenant" | "endpoint"
    subject_id: int  # the tenant's or the endpoint's id


@dataclass(slots=True)
class Plan:
    rates: list[RateScope]
    quotas: list[QuotaScope]
    tokens: int  # estimated tokens reserved at admission
    now: float
    store: CounterStore | None = None  # the store that took the reservation settles it


@dataclass(slots=True)
class Decision:
    allowed: bool
    reason: str | None = None  # "rpm" | "tpm" | "quota"
    scope: str | None = None
    retry_after: int = 0
    limit_requests: int | None = None
    remaining_requests: int | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    quota_remaining: int | None = None
    extra: dict[str, int] = field(default_factory=dict)


class QuotaUnknown(Exception):
    """The store holds no counter for this quota cycle (new cycle, restart, or lost data)."""

    def __init__(self, scopes: list[QuotaScope]) -> None:
        super().__init__(", ".join(s.key for s in scopes))
        self.scopes = scopes


class StoreUnavailable(Exception):
    """The shared store cannot be reached."""


class CounterStore(ABC):
    name: str = "store"

    @abstractmethod
    async def reserve(self, plan: Plan) -> Decision:
        """Check and reserve atomically; raise QuotaUnknown if a quota counter must be loaded first."""

    @abstractmethod
    async def settle(self, plan: Plan, actual_tokens: int) -> None:
        """Replace the reservation with the actual token count."""

    async def settle_many(self, items: list[tuple[Plan, int]]) -> None:
        """Several settles at once (a store may send them in one round trip)."""
        for plan, actual_tokens in items:
            await self.settle(plan, actual_tokens)

    @abstractmethod
    async def load_quota(self, scope: QuotaScope, used: int) -> None:
        """Initialise a quota counter (used tokens so far in the cycle) unless it exists already."""

    async def quota_used(self, key: str) -> tuple[int, int] | None:
        """(used, reserved) of a quota counter, or None if the store holds none."""
        return None

    async def close(self) -> None:
        return None
