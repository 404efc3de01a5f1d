"""Authenticate a data-plane request from the snapshot alone (no database)."""

from __future__ import annotations

import hmac
import time

from modelgate.errors import AuthenticationFailed
from modelgate.ids import digest
from modelgate.ids import split_key as _split
from modelgate.runtime.snapshot import KeyEntry, Snapshot

__all__ = ["authenticate", "presented_key"]

_NO_KEY = (
    "You didn't provide an API key. Provide it as 'Authorization: Bearer <key>', "
    "or in the 'api-key' or 'x-api-key' header."
)
_BAD_KEY = "Incorrect API key provided."


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    """The key from ``Authorization: Bearer``, else ``api-key``, else ``x-api-key`` (lower-case
    header names, as ASGI servers deliver them)."""
    auth = headers.get(b"authorization")
    if auth:
        scheme, _, value = auth.partition(b" ")
        value = value.strip()
        if scheme.lower() == b"bearer" and value:
            return value.decode("latin-1")
    raw = headers.get(b"api-key") or headers.get(b"x-api-key")
    return raw.decode("latin-1") if raw else None


def authenticate(snapshot: Snapshot, headers: dict[bytes, bytes]) -> KeyEntry:
    raw = presented_key(headers)
    if not raw:
        raise AuthenticationFailed(_NO_KEY, code="missing_api_key")
    parts = _split(raw)
    if parts is None:
        raise AuthenticationFailed(_BAD_KEY)
    key = snapshot.keys.get(parts[0])
    if key is None:
        raise AuthenticationFailed(_BAD_KEY)
    presented = digest(parts[1])
    now = time.time()
    if not hmac.compare_digest(presented, key.digest):
        grace = key.previous_valid_until
        if not (
            key.previous_digest is not None
            and grace is not None
            and now < grace
            and hmac.compare_digest(presented, key.previous_digest)
        ):
            raise AuthenticationFailed(_BAD_KEY)
    if not key.is_active:
        raise AuthenticationFailed("This API key is disabled.", code="api_key_disabled")
    if key.expires_at is not None and now >= key.expires_at:
        raise AuthenticationFailed("This API key has expired.", code="api_key_expired")
    if key.owner_id not in snapshot.active_users:
        raise AuthenticationFailed("The owner of this API key is deactivated.", code="api_key_disabled")
    return key
