"""The schema, shaped for the whole of DESIGN.md. Every change is an Alembic revision.

Times are stored in UTC. Usage rows hold ids and numbers, never copies of configuration.
Secrets are stored only as digests (API keys, tokens, passwords) or ciphertext (vendor secrets).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "ApiKey",
    "AuditRecord",
    "Base",
    "ConfigState",
    "Endpoint",
    "Grant",
    "LoginSession",
    "ManagedModel",
    "PersonalToken",
    "Tenant",
    "TenantRoleRow",
    "UsageDaily",
    "UsageEvent",
    "UsageHour",
    "UsageMinute",
    "User",
    "VendorCredential",
    "utcnow",
]

BigId = BigInteger().with_variant(Integer, "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware on the way out on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    quota_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    quota_cycle: Mapped[str] = mapped_column(String(16), default="monthly")
    # bumped whenever the quota is set, changed or removed: limiters key their counters by it, so a
    # counter never outlives the quota it counted for (the new one is rebuilt from usage records)
    quota_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "username"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=True)
    username: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    is_instance_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TenantRoleRow(Base):
    __tablename__ = "tenant_roles"
    __table_args__ = (UniqueConstraint("tenant_id", "user_id", "role"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(32))
    added_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class VendorCredential(Base):
    __tablename__ = "vendor_credentials"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    vendor: Mapped[str | None] = mapped_column(String(64), nullable=True)
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    secret_hint: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)


class ManagedModel(Base):
    """Instance-level catalog entry, provisioned into every tenant as a managed endpoint."""

    __tablename__ = "managed_models"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    vendor: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(16))
    base_url: Mapped[str] = mapped_column(String(1024))
    model_version: Mapped[str] = mapped_column(String(256))
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    secret_hint: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Endpoint(Base):
    __tablename__ = "endpoints"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="custom")  # managed | preset | custom
    vendor: Mapped[str] = mapped_column(String(64), default="openai-compatible")
    api_family: Mapped[str] = mapped_column(String(32), default="openai")
    category: Mapped[str] = mapped_column(String(16), default="llm")
    base_url: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    model_version: Mapped[str] = mapped_column(String(256))
    credential_id: Mapped[int | None] = mapped_column(
        ForeignKey("vendor_credentials.id", ondelete="RESTRICT"), nullable=True
    )
    managed_model_id: Mapped[int | None] = mapped_column(
        ForeignKey("managed_models.id", ondelete="SET NULL"), nullable=True
    )
    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tpm: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    quota_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    quota_cycle: Mapped[str] = mapped_column(String(16), default="monthly")
    quota_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    price_input_per_m: Mapped[float] = mapped_column(Float, default=0.0)
    price_output_per_m: Mapped[float] = mapped_column(Float, default=0.0)
    connect_timeout: Mapped[float | None] = mapped_column(Float, nullable=True)
    read_timeout: Mapped[float | None] = mapped_column(Float, nullable=True)
    default_output_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    secret_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    previous_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    previous_valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | disabled
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tpm: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PersonalToken(Base):
    __tablename__ = "personal_tokens"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    secret_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LoginSession(Base):
    __tablename__ = "login_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 hex of the cookie value
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Grant(Base):
    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("user_id", "endpoint_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UsageEvent(Base):
    __tablename__ = "usage_events"
    __table_args__ = (
        # the detail table is read by tenant and by endpoint only: reads by user or key go to
        # usage_daily, and each index here is paid by every request (migration 0005)
        Index("ix_usage_tenant_ts", "tenant_id", "ts"),
        Index("ix_usage_endpoint_ts", "endpoint_id", "ts"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    request_id: Mapped[str] = mapped_column(String(40))
    tenant_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    endpoint_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    api_key_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    channel: Mapped[str] = mapped_column(String(16), default="api")
    route: Mapped[str] = mapped_column(String(32))
    is_stream: Mapped[bool] = mapped_column(Boolean, default=False)
    status_code: Mapped[int] = mapped_column(Integer)
    error_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0)
    is_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    upstream_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cost: Mapped[float] = mapped_column(Float, default=0.0)


class AuditRecord(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_tenant_ts", "tenant_id", "ts"),
        Index("ix_audit_target", "target_type", "target_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    tenant_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    actor_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    actor_name: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    target_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class ConfigState(Base):
    """One row; ``version`` is bumped in the same transaction as every configuration change."""

    __tablename__ = "config_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


LATENCY_BUCKETS_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)  # + overflow
ERROR_TYPES = (
    "rate_limited", "quota_exceeded", "permission_denied", "auth_failed", "bad_request", "upstream_4xx",
    "upstream_5xx", "upstream_timeout", "client_disconnected", "other",
)  # fmt: skip


class _RollupCounters:
    """The additive counters shared by the minute and hour rollups (the error and latency-bucket
    counters are added to both below)."""

    requests: Mapped[int] = mapped_column(Integer, default=0)
    successes: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    latency_sum_ms: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_count: Mapped[int] = mapped_column(Integer, default=0)
    ttft_sum_ms: Mapped[float] = mapped_column(Float, default=0.0)


class UsageMinute(_RollupCounters, Base):
    """Per-endpoint, per-minute rollup (``minute`` is epoch seconds at the minute's start, UTC).

    Additive columns only, so batches upsert by addition. Requests that never resolved an
    endpoint (bad key, unknown model) roll up under endpoint 0 of their tenant (or tenant 0): the
    key ends with tenant_id so those rows stay apart per tenant (migration 0006).
    """

    __tablename__ = "usage_minute"
    __table_args__ = (Index("ix_usage_minute_tenant", "tenant_id", "minute"),)
    endpoint_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, default=0)


class UsageHour(_RollupCounters, Base):
    """The minute rollups summed per endpoint and hour (``hour``: epoch seconds at the hour's start,
    UTC), written in the same batch: monitoring over days reads 60 times fewer rows."""

    __tablename__ = "usage_hour"
    endpoint_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, default=0)


for _rollup in (UsageMinute, UsageHour):
    for _e in ERROR_TYPES:
        setattr(_rollup, f"err_{_e}", mapped_column(f"err_{_e}", Integer, default=0))
    for _i in range(len(LATENCY_BUCKETS_MS) + 1):
        setattr(_rollup, f"lat_b{_i}", mapped_column(f"lat_b{_i}", Integer, default=0))
        setattr(_rollup, f"ttft_b{_i}", mapped_column(f"ttft_b{_i}", Integer, default=0))


class UsageDaily(Base):
    """Per-day rollup by tenant, endpoint, user and API key; ``day`` is the tenant's local date."""

    __tablename__ = "usage_daily"
    __table_args__ = (
        # covering: the statistics of a tenant's month read this index alone (no row lookups)
        Index("ix_usage_daily_tenant_day_all", "tenant_id", "day", "endpoint_id", "user_id", "api_key_id",
              "requests", "input_tokens", "output_tokens", "cost"),  # fmt: skip
        # a user's own statistics (tenant first: SQLite's planner would skip-scan a user-first index
        # for a whole tenant's statistics by user)
        Index("ix_usage_daily_tenant_user_day", "tenant_id", "user_id", "day"),
    )
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    successes: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)


# SQLite: ids are never reused (AUTOINCREMENT, migration 0007): usage, statistics and the audit
# trail refer to these ids without foreign keys, and a reused id would hand a deleted key's or
# endpoint's history to a new one.
for _table in ("tenants", "users", "tenant_roles", "managed_models", "vendor_credentials", "endpoints", "api_keys",
               "personal_tokens", "grants"):  # fmt: skip
    Base.metadata.tables[_table].dialect_options["sqlite"]["autoincrement"] = True
