"""hourly usage rollup and a covering index for usage statistics

Monitoring over days summed up to 86,400 minute rows per endpoint (60 days) with ~50 columns
each; the hourly rollup holds the same counters per hour. The statistics of a tenant's month
read ``usage_daily`` through an index that covers the query, without row lookups; a user's own
statistics through (tenant, user, day). The (endpoint, day) and (user, day) indexes served no
query, and the second one lured SQLite's planner into a skip-scan for a tenant's statistics by
user (10x slower than the covering index).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
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
_COVER = ["tenant_id", "day", "endpoint_id", "user_id", "api_key_id", "requests", "input_tokens", "output_tokens",
          "cost"]  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "usage_hour",
        sa.Column("endpoint_id", sa.BigInteger(), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
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
        sa.PrimaryKeyConstraint("endpoint_id", "hour"),
    )
    # the hours of the minute rollups already written
    cols = ", ".join(_COUNTERS)
    sums = ", ".join(f"sum({c})" for c in _COUNTERS)
    op.execute(
        f"INSERT INTO usage_hour (endpoint_id, hour, tenant_id, {cols}) "
        f"SELECT endpoint_id, minute - minute % 3600, min(tenant_id), {sums} FROM usage_minute "
        "GROUP BY endpoint_id, minute - minute % 3600"
    )
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.create_index("ix_usage_daily_tenant_day_all", _COVER, unique=False)
        batch_op.create_index("ix_usage_daily_tenant_user_day", ["tenant_id", "user_id", "day"], unique=False)
        batch_op.drop_index("ix_usage_daily_tenant_day")
        batch_op.drop_index("ix_usage_daily_endpoint_day")
        batch_op.drop_index("ix_usage_daily_user_day")


def downgrade() -> None:
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.create_index("ix_usage_daily_user_day", ["user_id", "day"], unique=False)
        batch_op.create_index("ix_usage_daily_endpoint_day", ["endpoint_id", "day"], unique=False)
        batch_op.create_index("ix_usage_daily_tenant_day", ["tenant_id", "day"], unique=False)
        batch_op.drop_index("ix_usage_daily_tenant_user_day")
        batch_op.drop_index("ix_usage_daily_tenant_day_all")
    op.drop_table("usage_hour")
