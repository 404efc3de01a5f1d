"""quota epoch on tenants and endpoints

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("tenants", "endpoints"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("quota_epoch", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    for table in ("tenants", "endpoints"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("quota_epoch")
