"""minute and hour rollups keyed by (endpoint, time, tenant)

Revision ID: 0006
Revises: 0005

Requests that never resolved an endpoint (bad key, unknown model) roll up under endpoint 0 of
their tenant. With (endpoint_id, minute) as the key, the endpoint-0 rows of every tenant shared
one row per minute, which kept the first tenant it saw: another tenant's refused requests were
counted in the wrong tenant. The key now ends with tenant_id (after the time column, so a scan of
one endpoint over a time range still reads one index range). Each table is rebuilt (SQLite
cannot change a primary key in place); rows already merged across tenants stay as they were
(which tenants they mixed is not recorded anywhere).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ERRORS = ("rate_limited", "quota_exceeded", "permission_denied", "auth_failed", "bad_request", "upstream_4xx",
           "upstream_5xx", "upstream_timeout", "client_disconnected", "other")  # fmt: skip
_BUCKETS = 13
_COUNTERS = (
    ["requests", "successes", "input_tokens", "output_tokens", "cost", "latency_sum_ms", "ttft_count", "ttft_sum_ms"]
    + [f"err_{e}" for e in _ERRORS]
    + [f"{h}_b{i}" for i in range(_BUCKETS) for h in ("lat", "ttft")]
)


def _columns(time: str) -> list[sa.Column[object]]:
    return [
        sa.Column("endpoint_id", sa.BigInteger(), nullable=False),
        sa.Column(time, sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("successes", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("latency_sum_ms", sa.Float(), nullable=False),
        sa.Column("ttft_count", sa.Integer(), nullable=False),
        sa.Column("ttft_sum_ms", sa.Float(), nullable=False),
        *[sa.Column(f"err_{e}", sa.Integer(), nullable=True) for e in _ERRORS],
        *[sa.Column(f"{h}_b{i}", sa.Integer(), nullable=True) for i in range(_BUCKETS) for h in ("lat", "ttft")],
    ]


def _rebuild(table: str, time: str, key: list[str], merge: bool) -> None:
    """Copy ``table`` into a new one keyed by ``key``; ``merge`` sums rows that the narrower key joins.

    The new key's name differs from the old one's (PostgreSQL names constraints per schema).
    """
    new = f"{table}_rebuilt"
    pk = f"{table}_pk_tenant" if not merge else f"{table}_pkey"
    op.create_table(new, *_columns(time), sa.PrimaryKeyConstraint(*key, name=pk))
    cols = ", ".join(["endpoint_id", time, "tenant_id", *_COUNTERS])
    if merge:
        sums = ", ".join(f"sum({c})" for c in _COUNTERS)
        op.execute(f"INSERT INTO {new} ({cols}) SELECT endpoint_id, {time}, min(tenant_id), {sums} "
                   f"FROM {table} GROUP BY endpoint_id, {time}")  # fmt: skip
    else:
        op.execute(f"INSERT INTO {new} ({cols}) SELECT {cols} FROM {table}")
    if table == "usage_minute":
        op.drop_index("ix_usage_minute_tenant", table_name=table)
    op.drop_table(table)
    op.rename_table(new, table)
    if table == "usage_minute":
        op.create_index("ix_usage_minute_tenant", table, ["tenant_id", "minute"])


def upgrade() -> None:
    _rebuild("usage_minute", "minute", ["endpoint_id", "minute", "tenant_id"], merge=False)
    _rebuild("usage_hour", "hour", ["endpoint_id", "hour", "tenant_id"], merge=False)


def downgrade() -> None:
    _rebuild("usage_minute", "minute", ["endpoint_id", "minute"], merge=True)
    _rebuild("usage_hour", "hour", ["endpoint_id", "hour"], merge=True)
