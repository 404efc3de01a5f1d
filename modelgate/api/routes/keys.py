"""API keys and vendor credentials."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from modelgate.api.deps import Context
from modelgate.api.schemas import ApiKeyCreate, ApiKeyRotate, CredentialCreate
from modelgate.services import credentials as csvc
from modelgate.services import keys as ksvc
from modelgate.storage import tables as t

router = APIRouter(tags=["api keys"])


async def _owner(session: Any, key: t.ApiKey) -> str | None:
    user = await session.get(t.User, key.owner_id)
    return user.username if user else None


@router.get("/api-keys")
async def list_keys(ctx: Context, status: str | None = None, owner: str | None = None) -> list[dict[str, Any]]:
    rows = await ctx.read(lambda s: ksvc.list_keys(s, ctx.actor, ctx.tenant_id, status=status, owner=owner))
    return [ksvc.key_out(k, u) for k, u in rows]


@router.post("/api-keys", status_code=201)
async def create_key(body: ApiKeyCreate, ctx: Context) -> dict[str, Any]:
    async def op(session: Any) -> dict[str, Any]:
        key, secret = await ksvc.create_key(session, ctx.actor, ctx.tenant_id, owner=body.owner, name=body.name,
                                            expires_at=body.expires_at, rpm=body.rpm, tpm=body.tpm)  # fmt: skip
        return {**ksvc.key_out(key, body.owner), "secret": secret}

    return await ctx.write(op)


@router.get("/api-keys/{key_id}")
async def get_key(key_id: int, ctx: Context) -> dict[str, Any]:
    async def op(session: Any) -> dict[str, Any]:
        key = await ksvc.get_key(session, ctx.actor, ctx.tenant_id, key_id)
        return ksvc.key_out(key, await _owner(session, key))

    return await ctx.read(op)


@router.delete("/api-keys/{key_id}", status_code=204)
async def delete_key(key_id: int, ctx: Context) -> None:
    await ctx.write(lambda s: ksvc.delete_key(s, ctx.actor, ctx.tenant_id, key_id))


async def _status(ctx: Any, key_id: int, status: str) -> dict[str, Any]:
    async def op(session: Any) -> dict[str, Any]:
        key = await ksvc.set_key_status(session, ctx.actor, ctx.tenant_id, key_id, status)
        return ksvc.key_out(key, await _owner(session, key))

    result: dict[str, Any] = await ctx.write(op)
    return result


@router.post("/api-keys/{key_id}/disable")
async def disable_key(key_id: int, ctx: Context) -> dict[str, Any]:
    return await _status(ctx, key_id, "disabled")


@router.post("/api-keys/{key_id}/enable")
async def enable_key(key_id: int, ctx: Context) -> dict[str, Any]:
    return await _status(ctx, key_id, "active")


@router.post("/api-keys/{key_id}/rotate")
async def rotate_key(key_id: int, ctx: Context, body: ApiKeyRotate | None = None) -> dict[str, Any]:
    grace = body.grace_seconds if body else 0

    async def op(session: Any) -> dict[str, Any]:
        key, secret = await ksvc.rotate_key(session, ctx.actor, ctx.tenant_id, key_id, grace)
        return {**ksvc.key_out(key, await _owner(session, key)), "secret": secret, "grace_seconds": grace}

    return await ctx.write(op)


@router.get("/credentials")
async def list_credentials(ctx: Context) -> list[dict[str, Any]]:
    return [csvc.credential_out(c) for c in await ctx.read(lambda s: csvc.list_credentials(s, ctx.actor, ctx.tenant_id))]


@router.post("/credentials", status_code=201)
async def create_credential(body: CredentialCreate, ctx: Context) -> dict[str, Any]:
    box = ctx.services.box
    cred = await ctx.write(lambda s: csvc.create_credential(s, box, ctx.actor, ctx.tenant_id, name=body.name,
                                                            secret=body.secret, vendor=body.vendor))  # fmt: skip
    return csvc.credential_out(cred)


@router.delete("/credentials/{credential_id}", status_code=204)
async def delete_credential(credential_id: int, ctx: Context) -> None:
    await ctx.write(lambda s: csvc.delete_credential(s, ctx.actor, ctx.tenant_id, credential_id))
