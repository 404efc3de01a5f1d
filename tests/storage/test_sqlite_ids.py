"""SQLite never hands a deleted row's id to a new one (migration 0007), and rebuilding the tables
for it loses nothing: no row, no foreign key, no ON DELETE action.

Usage records, statistics and the audit trail refer to keys, endpoints and users by id without
foreign keys, so a reused id would give a deleted key's history to a new key.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, text

from modelgate.storage import tables as t
from modelgate.storage.engine import make_engine, make_sessionmaker
from modelgate.storage.migrate import upgrade

REBUILT = ("tenants", "users", "tenant_roles", "managed_models", "vendor_credentials", "endpoints", "api_keys",
           "personal_tokens", "grants")  # fmt: skip


async def _populate(url: str) -> None:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s, s.begin():
            for n in range(2):
                tenant = t.Tenant(name=f"tenant-{n}")
                s.add(tenant)
                await s.flush()
                users = [t.User(tenant_id=tenant.id, username=f"u{i}") for i in range(3)]
                s.add_all(users)
                await s.flush()
                s.add(t.TenantRoleRow(tenant_id=tenant.id, user_id=users[0].id, role="account_admin"))
                cred = t.VendorCredential(tenant_id=tenant.id, name="c", secret_ciphertext="x", secret_hint="…x")
                s.add(cred)
                await s.flush()
                ep = t.Endpoint(tenant_id=tenant.id, name="ep", model_version="m", base_url="http://127.0.0.1:9/v1",
                                credential_id=cred.id)  # fmt: skip
                s.add(ep)
                await s.flush()
                for u in users:
                    s.add(t.ApiKey(tenant_id=tenant.id, public_id=secrets.token_hex(8), name="k", owner_id=u.id,
                                   secret_digest=secrets.token_bytes(32)))  # fmt: skip
                s.add(t.Grant(tenant_id=tenant.id, user_id=users[1].id, endpoint_id=ep.id, role="endpoint_user"))
    finally:
        await engine.dispose()


async def _query(url: str, sql: str) -> list[Any]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql))).all())
    finally:
        await engine.dispose()


def _foreign_keys(url: str, table: str) -> set[tuple[Any, ...]]:
    """(referenced table, column, referenced column, on update, on delete) of each foreign key."""
    return {tuple(row[2:7]) for row in asyncio.run(_query(url, f"PRAGMA foreign_key_list({table})"))}


def _counts(url: str) -> dict[str, int]:
    return {name: asyncio.run(_query(url, f"SELECT count(*) FROM {name}"))[0][0] for name in REBUILT}


def test_the_rebuild_keeps_every_row_key_and_cascade(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ids.db'}"
    upgrade(url, "0006")
    asyncio.run(_populate(url))
    before = _counts(url)
    fks_before = {name: _foreign_keys(url, name) for name in REBUILT}
    assert before["users"] == 6 and before["api_keys"] == 6 and before["grants"] == 2

    upgrade(url, "head")

    assert _counts(url) == before  # a DROP with foreign keys enforced would have cascaded
    for name in REBUILT:
        ddl = asyncio.run(_query(url, f"SELECT sql FROM sqlite_master WHERE type='table' AND name='{name}'"))[0][0]
        assert "AUTOINCREMENT" in ddl, name
        assert _foreign_keys(url, name) == fks_before[name], name
    assert asyncio.run(_query(url, "PRAGMA foreign_key_check")) == []

    async def cascade() -> tuple[int, int]:
        engine = make_engine(url)  # the application's engine: foreign keys enforced
        try:
            async with make_sessionmaker(engine)() as s, s.begin():
                first = (await s.execute(select(t.Tenant.id).order_by(t.Tenant.id))).scalars().first()
                await s.execute(delete(t.Tenant).where(t.Tenant.id == first))
            async with make_sessionmaker(engine)() as s:
                users = (await s.execute(select(func.count()).select_from(t.User))).scalar_one()
                keys = (await s.execute(select(func.count()).select_from(t.ApiKey))).scalar_one()
            return users, keys
        finally:
            await engine.dispose()

    assert asyncio.run(cascade()) == (3, 3)  # ON DELETE CASCADE survived the rebuild


def test_a_deleted_rows_id_is_never_reused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'reuse.db'}"
    upgrade(url, "head")
    asyncio.run(_populate(url))

    async def delete_newest_then_create() -> tuple[int, int, int, int]:
        engine = make_engine(url)
        try:
            async with make_sessionmaker(engine)() as s, s.begin():
                key = (await s.execute(select(t.ApiKey).order_by(t.ApiKey.id.desc()))).scalars().first()
                ep = (await s.execute(select(t.Endpoint).order_by(t.Endpoint.id.desc()))).scalars().first()
                assert key is not None and ep is not None
                old_key, old_ep = key.id, ep.id
                await s.delete(key)
                await s.delete(ep)
            async with make_sessionmaker(engine)() as s, s.begin():
                new_key = t.ApiKey(tenant_id=key.tenant_id, public_id=secrets.token_hex(8), name="new",
                                   owner_id=key.owner_id, secret_digest=secrets.token_bytes(32))  # fmt: skip
                new_ep = t.Endpoint(tenant_id=ep.tenant_id, name="ep-new", model_version="m",
                                    base_url="http://127.0.0.1:9/v1")  # fmt: skip
                s.add_all([new_key, new_ep])
                await s.flush()
                return old_key, new_key.id, old_ep, new_ep.id
        finally:
            await engine.dispose()

    old_key, new_key, old_ep, new_ep = asyncio.run(delete_newest_then_create())
    assert new_key > old_key and new_ep > old_ep
