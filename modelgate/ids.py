"""Key formats. The format is stable: changing it invalidates every issued key.

Gateway API keys are ``mg-<public_id>-<secret>`` and personal access tokens
``mgp-<public_id>-<secret>``: ``public_id`` is 16 hex characters (the lookup handle, safe to
show and log), ``secret`` is 43 url-safe characters (256 bits). Only SHA-256 of the secret is
stored; a high-entropy secret needs no slow hash, and SHA-256 keeps the hot path fast.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import NamedTuple

__all__ = ["IssuedKey", "digest", "digest_matches", "issue_key", "split_key"]

_PUBLIC_LEN = 16


class IssuedKey(NamedTuple):
    public_id: str
    secret: str  # the whole presented key, shown once
    digest: bytes


def digest(secret_part: str) -> bytes:
    return hashlib.sha256(secret_part.encode()).digest()


def issue_key(prefix: str = "mg") -> IssuedKey:
    public_id = secrets.token_hex(_PUBLIC_LEN // 2)
    secret_part = secrets.token_urlsafe(32)
    return IssuedKey(public_id, f"{prefix}-{public_id}-{secret_part}", digest(secret_part))


def split_key(presented: str, prefix: str = "mg") -> tuple[str, str] | None:
    """Return (public_id, secret part) of a well-formed key, or None."""
    head = len(prefix) + 1
    if len(presented) < head + _PUBLIC_LEN + 2 or not presented.startswith(prefix + "-"):
        return None
    if presented[head + _PUBLIC_LEN] != "-":
        return None
    return presented[head : head + _PUBLIC_LEN], presented[head + _PUBLIC_LEN + 1 :]


def digest_matches(secret_part: str, expected: bytes) -> bool:
    return hmac.compare_digest(digest(secret_part), expected)
