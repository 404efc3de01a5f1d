"""The configuration the data plane reads: immutable, swapped as a whole on change.

A request reads ``RuntimeState.snapshot`` once and sees one consistent configuration. Values
are precomputed here (upstream URLs, headers, timeouts) so the hot path does no work per
request that could be done per configuration change. Vendor secrets live decrypted only here,
in memory, never in ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["EndpointEntry", "KeyEntry", "Snapshot", "TenantEntry"]


@dataclass(frozen=True, slots=True)
class KeyEntry:
    id: int
    tenant_id: int
    public_id: str
    digest: bytes = field(repr=False)
    previous_digest: bytes | None = field(repr=False)
    previous_valid_until: float | None
    owner_id: int
    is_active: bool
    expires_at: float | None
    rpm: int | None
    tpm: int | None


@dataclass(frozen=True, slots=True)
class EndpointEntry:
    id: int
    tenant_id: int
    name: str
    category: str
    api_family: str
    base_url: str
    model_version: str
    upstream_secret: str | None = field(repr=False)
    rpm: int | None
    tpm: int | None
    quota_tokens: int | None
    quota_cycle: str
    price_input_per_m: float
    price_output_per_m: float
    connect_timeout: float
    read_timeout: float
    default_output_tokens: int
    created_at: int
    upstream_headers: dict[str, str] = field(repr=False, compare=False)
    quota_epoch: int = 0


@dataclass(frozen=True, slots=True)
class TenantEntry:
    id: int
    name: str
    timezone: str
    quota_tokens: int | None
    quota_cycle: str
    quota_epoch: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    keys: dict[str, KeyEntry]
    endpoints: dict[int, dict[str, EndpointEntry]]  # tenant id → endpoint name → entry
    tenant_roles: dict[int, frozenset[str]]  # user id → tenant roles (user ids are global)
    grants: dict[tuple[int, int], str]  # (user id, endpoint id) → endpoint role
    tenants: dict[int, TenantEntry]
    active_users: frozenset[int]

    @classmethod
    def empty(cls) -> Snapshot:
        return cls(0, {}, {}, {}, {}, {}, frozenset())
