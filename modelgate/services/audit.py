"""The audit trail: one record per write, secrets redacted before they are stored."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.services.context import Actor
from modelgate.storage import tables as t

__all__ = ["redact", "write_audit"]

_SECRET_WORDS = ("secret", "password", "api_key", "token", "ciphertext", "digest")


def redact(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    out: dict[str, Any] = {}
    for k, v in values.items():
        # by suffix: "secret", "api_key", "secret_digest" are secrets; "quota_tokens", "token_id" are not
        if k.lower().endswith(_SECRET_WORDS):
            out[k] = "[REDACTED]" if v is not None else None
        elif hasattr(v, "isoformat"):
            out[k] = v.isoformat()
        elif isinstance(v, bytes):
            out[k] = "[REDACTED]"
        else:
            out[k] = v
    return out


async def write_audit(
    session: AsyncSession,
    actor: Actor,
    action: str,
    target_type: str,
    *,
    tenant_id: int | None,
    target_id: object = None,
    target_name: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    session.add(
        t.AuditRecord(
            tenant_id=tenant_id,
            actor_id=actor.user_id,
            actor_name=actor.username,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            target_name=target_name,
            before=redact(before),
            after=redact(after),
        )
    )
