"""Encryption at rest for vendor secrets, and password hashing.

The master key never lives in the database: it comes from ``MODELGATE_MASTER_KEY`` or from a
key file created on first start with mode 0600. Losing it makes stored vendor credentials
unreadable (they must be entered again); it never exposes them.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

__all__ = ["SecretBox", "hash_password", "load_master_key", "mask_secret", "verify_password"]

_hasher = PasswordHasher()


def load_master_key(env_value: str | None, key_file: Path, *, create: bool = True) -> bytes:
    """The Fernet key: from the environment, else the key file (created 0600 when absent)."""
    if env_value:
        raw = env_value.encode()
        try:
            Fernet(raw)
            return raw
        except ValueError:
            # Accept any passphrase-like value by stretching it to a valid Fernet key.
            import hashlib

            return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())
    if key_file.exists():
        return key_file.read_bytes().strip()
    if not create:
        raise FileNotFoundError(f"master key file {key_file} does not exist")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    return key


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("vendor secret cannot be decrypted with this master key") from exc


def mask_secret(secret: str) -> str:
    """What may be shown of a secret after creation: its last four characters."""
    return "****" + secret[-4:] if len(secret) >= 8 else "****"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, stored: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
