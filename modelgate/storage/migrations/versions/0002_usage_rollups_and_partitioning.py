"""usage rollups and partitioning

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from modelgate.storage.partitions import month_add, partition_ddl

_INDEXES = {
    "ix_usage_tenant_ts": "tenant_id, ts",
    "ix_usage_endpoint_ts": "endpoint_id, ts",
    "ix_usage_user_ts": "user_id, ts",
    "ix_usage_key_ts": "api_key_id, ts",
}


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('usage_daily',
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('endpoint_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('api_key_id', sa.BigInteger(), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('successes', sa.Integer(), nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'tenant_id', 'endpoint_id', 'user_id', 'api_key_id')
    )
    with op.batch_alter_table('usage_daily', schema=None) as batch_op:
        batch_op.create_index('ix_usage_daily_endpoint_day', ['endpoint_id', 'day'], unique=False)
        batch_op.create_index('ix_usage_daily_tenant_day', ['tenant_id', 'day'], unique=False)
        batch_op.create_index('ix_usage_daily_user_day', ['user_id', 'day'], unique=False)

    op.create_table('usage_minute',
    sa.Column('endpoint_id', sa.BigInteger(), nullable=False),
    sa.Column('minute', sa.BigInteger(), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('successes', sa.Integer(), nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost', sa.Float(), nullable=False),
    sa.Column('latency_sum_ms', sa.Float(), nullable=False),
    sa.Column('ttft_count', sa.Integer(), nullable=False),
    sa.Column('ttft_sum_ms', sa.Float(), nullable=False),
    sa.Column('err_rate_limited', sa.Integer(), nullable=True),
    sa.Column('err_quota_exceeded', sa.Integer(), nullable=True),
    sa.Column('err_permission_denied', sa.Integer(), nullable=True),
    sa.Column('err_auth_failed', sa.Integer(), nullable=True),
    sa.Column('err_bad_request', sa.Integer(), nullable=True),
    sa.Column('err_upstream_4xx', sa.Integer(), nullable=True),
    sa.Column('err_upstream_5xx', sa.Integer(), nullable=True),
    sa.Column('err_upstream_timeout', sa.Integer(), nullable=True),
    sa.Column('err_client_disconnected', sa.Integer(), nullable=True),
    sa.Column('err_other', sa.Integer(), nullable=True),
    sa.Column('lat_b0', sa.Integer(), nullable=True),
    sa.Column('ttft_b0', sa.Integer(), nullable=True),
    sa.Column('lat_b1', sa.Integer(), nullable=True),
    sa.Column('ttft_b1', sa.Integer(), nullable=True),
    sa.Column('lat_b2', sa.Integer(), nullable=True),
    sa.Column('ttft_b2', sa.Integer(), nullable=True),
    sa.Column('lat_b3', sa.Integer(), nullable=True),
    sa.Column('ttft_b3', sa.Integer(), nullable=True),
    sa.Column('lat_b4', sa.Integer(), nullable=True),
    sa.Column('ttft_b4', sa.Integer(), nullable=True),
    sa.Column('lat_b5', sa.Integer(), nullable=True),
    sa.Column('ttft_b5', sa.Integer(), nullable=True),
    sa.Column('lat_b6', sa.Integer(), nullable=True),
    sa.Column('ttft_b6', sa.Integer(), nullable=True),
    sa.Column('lat_b7', sa.Integer(), nullable=True),
    sa.Column('ttft_b7', sa.Integer(), nullable=True),
    sa.Column('lat_b8', sa.Integer(), nullable=True),
    sa.Column('ttft_b8', sa.Integer(), nullable=True),
    sa.Column('lat_b9', sa.Integer(), nullable=True),
    sa.Column('ttft_b9', sa.Integer(), nullable=True),
    sa.Column('lat_b10', sa.Integer(), nullable=True),
    sa.Column('ttft_b10', sa.Integer(), nullable=True),
    sa.Column('lat_b11', sa.Integer(), nullable=True),
    sa.Column('ttft_b11', sa.Integer(), nullable=True),
    sa.Column('lat_b12', sa.Integer(), nullable=True),
    sa.Column('ttft_b12', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('endpoint_id', 'minute')
    )
    with op.batch_alter_table('usage_minute', schema=None) as batch_op:
        batch_op.create_index('ix_usage_minute_tenant', ['tenant_id', 'minute'], unique=False)



    if op.get_bind().dialect.name == "postgresql":
        _partition_usage_events()


def _partition_usage_events() -> None:
    """Rebuild usage_events as a table partitioned by month of ``ts`` (keeps rows and the id sequence)."""
    op.execute("ALTER TABLE usage_events RENAME TO usage_events_plain")
    for ix in _INDEXES:
        op.execute(f"ALTER INDEX {ix} RENAME TO {ix}_plain")
    op.execute("ALTER TABLE usage_events_plain RENAME CONSTRAINT usage_events_pkey TO usage_events_plain_pkey")
    op.execute("CREATE TABLE usage_events (LIKE usage_events_plain INCLUDING DEFAULTS) PARTITION BY RANGE (ts)")
    op.execute("ALTER TABLE usage_events ADD CONSTRAINT usage_events_pkey PRIMARY KEY (id, ts)")
    for ix, cols in _INDEXES.items():
        op.execute(f"CREATE INDEX {ix} ON usage_events ({cols})")
    op.execute("CREATE TABLE usage_events_default PARTITION OF usage_events DEFAULT")
    this_month = datetime.now(UTC).date().replace(day=1)
    for offset in range(-13, 3):
        op.execute(partition_ddl(month_add(this_month, offset)))
    op.execute("INSERT INTO usage_events SELECT * FROM usage_events_plain")
    op.execute("ALTER SEQUENCE usage_events_id_seq OWNED BY usage_events.id")
    op.execute("DROP TABLE usage_events_plain")


def _unpartition_usage_events() -> None:
    op.execute("ALTER TABLE usage_events RENAME TO usage_events_parted")
    for ix in _INDEXES:
        op.execute(f"ALTER INDEX {ix} RENAME TO {ix}_parted")
    op.execute("ALTER TABLE usage_events_parted RENAME CONSTRAINT usage_events_pkey TO usage_events_parted_pkey")
    op.execute("CREATE TABLE usage_events (LIKE usage_events_parted INCLUDING DEFAULTS)")
    op.execute("ALTER TABLE usage_events ADD CONSTRAINT usage_events_pkey PRIMARY KEY (id)")
    for ix, cols in _INDEXES.items():
        op.execute(f"CREATE INDEX {ix} ON usage_events ({cols})")
    op.execute("INSERT INTO usage_events SELECT * FROM usage_events_parted")
    op.execute("ALTER SEQUENCE usage_events_id_seq OWNED BY usage_events.id")
    op.execute("DROP TABLE usage_events_parted CASCADE")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _unpartition_usage_events()
    with op.batch_alter_table('usage_minute', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_minute_tenant')

    op.drop_table('usage_minute')
    with op.batch_alter_table('usage_daily', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_daily_user_day')
        batch_op.drop_index('ix_usage_daily_tenant_day')
        batch_op.drop_index('ix_usage_daily_endpoint_day')

    op.drop_table('usage_daily')
