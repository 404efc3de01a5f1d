"""SQLite: ids of deleted rows are never handed out again (AUTOINCREMENT)

Revision ID: 0007
Revises: 0006

Why: an SQLite INTEGER PRIMARY KEY without AUTOINCREMENT gives a new row max(id) + 1, so deleting
the newest key, endpoint or user and creating another reused its id, and the new one inherited
the old one's usage rows, statistics and audit trail (those refer to ids, on purpose without
foreign keys, so history outlives what it describes). AUTOINCREMENT never reuses an id. Each
table is rebuilt with foreign keys unenforced during the migration (see env.py) and checked
afterwards. PostgreSQL's sequences never reuse ids: nothing to do there.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# parents before children; usage_events and audit_log are append-only (never lose their newest row)
TABLES = ("tenants", "users", "tenant_roles", "managed_models", "vendor_credentials", "endpoints", "api_keys",
          "personal_tokens", "grants")  # fmt: skip


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in TABLES:
        with op.batch_alter_table(name, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
