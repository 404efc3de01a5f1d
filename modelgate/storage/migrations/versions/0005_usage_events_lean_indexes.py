"""usage_events keeps only the indexes its queries use

Revision ID: 0005
Revises: 0004

Why: every request writes one usage_events row, and each secondary index costs about a fifth of
that insert on SQLite (bench/flush_bench.py). Reads by user or API key go to ``usage_daily``;
the detail table is read by tenant (monthly export, tenant quota rebuild) and by endpoint
(endpoint quota rebuild, request counts), so the (user_id, ts) and (api_key_id, ts) indexes only
cost writes. On PostgreSQL dropping the parent's index drops every partition's copy.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_DROPPED = {"ix_usage_user_ts": ["user_id", "ts"], "ix_usage_key_ts": ["api_key_id", "ts"]}


def upgrade() -> None:
    for name in _DROPPED:
        op.drop_index(name, table_name="usage_events")


def downgrade() -> None:
    for name, columns in _DROPPED.items():
        op.create_index(name, "usage_events", columns)
