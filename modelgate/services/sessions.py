"""Who is calling the admin API: console login sessions (cookie) and personal access tokens.

Session cookies and tokens are high-entropy secrets stored only as SHA-256 digests. Logins are
throttled per username and client address to blunt password guessing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.errors import AuthenticationFailed, BadRequest, RateLimited
from modelgate.ids import digest, issue_key, split_key
from modelgate.secrets_box import verify_password
from modelgate.services.audit import write_audit
from modelgate.services.context import Actor
from modelgate.services.users import roles_of
from modelgate.storage import tables as t
from modelgate.storage.tables import utcnow

__all__ = ["LoginThrottle", "SESSION_TTL", "actor_for", "create_token", "login", "logout", "resolve_session",
           "resolve_token"]  # fmt: skip

SESSION_TTL = timedelta(hours=12)


class LoginThrottle:
    """At most ``limit`` failed logins per (username, address) in ``window`` seconds."""

    def __init__(self, limit: int = 5, window: float = 300.0) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def check(self, username: str, address: str) -> None:
        q = self._failures.get((username, address))
        now = time.monotonic()
        while q and now - q[0] > self.window:
            q.popleft()
        if q and len(q) >= self.limit:
            retry = int(self.window - (now - q[0])) + 1
            raise RateLimited(f"Too many failed logins; try again in {retry} seconds.", code="login_throttled",
                              headers={"retry-after": str(retry)})  # fmt: skip

    def failed(self, username: str, address: str) -> None:
        self._failures.setdefault((username, address), deque()).append(time.monotonic())

    def succeeded(self, username: str, address: str) -> None:
        self._failures.pop((username, address), None)


async def actor_for(session: AsyncSession, user: t.User) -> Actor:
    roles = (await roles_of(session, [user.id]))[user.id]
    return Actor(username=user.username, user_id=user.id, tenant_id=user.tenant_id, tenant_roles=frozenset(roles),
                 is_instance_admin=user.is_instance_admin)  # fmt: skip


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def login(
    session: AsyncSession, username: Any, password: Any, tenant: str | None, throttle: LoginThrottle, address: str
) -> tuple[str, t.LoginSession, t.User]:
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise BadRequest("username and password are required.", param="username")
    throttle.check(username, address)
    stmt = select(t.User).where(t.User.username == username, t.User.is_active.is_(True))
    if tenant:
        stmt = stmt.join(t.Tenant, t.Tenant.id == t.User.tenant_id).where(t.Tenant.name == tenant)
    users = list((await session.execute(stmt)).scalars())
    matching = [u for u in users if u.password_hash and verify_password(password, u.password_hash)]
    if not matching:
        throttle.failed(username, address)
        raise AuthenticationFailed("Wrong username or password.", code="invalid_credentials")
    if len(matching) > 1:
        raise BadRequest("This username exists in several tenants; name the tenant to sign in to.", param="tenant")
    throttle.succeeded(username, address)
    user = matching[0]
    cookie = secrets.token_urlsafe(32)
    row = t.LoginSession(id=_sha(cookie), user_id=user.id, tenant_id=user.tenant_id,
                         csrf_token=secrets.token_urlsafe(24), expires_at=utcnow() + SESSION_TTL)  # fmt: skip
    session.add(row)
    await session.execute(delete(t.LoginSession).where(t.LoginSession.expires_at < utcnow()))
    await write_audit(session, await actor_for(session, user), "auth.login", "user", tenant_id=user.tenant_id,
                      target_id=user.id, target_name=user.username)  # fmt: skip
    return cookie, row, user


async def resolve_session(session: AsyncSession, cookie: str) -> tuple[t.User, t.LoginSession] | None:
    row = await session.get(t.LoginSession, _sha(cookie))
    if row is None or row.expires_at <= utcnow():
        return None
    user = await session.get(t.User, row.user_id)
    if user is None or not user.is_active:
        return None
    return user, row


async def logout(session: AsyncSession, cookie: str) -> None:
    await session.execute(delete(t.LoginSession).where(t.LoginSession.id == _sha(cookie)))


async def resolve_token(session: AsyncSession, bearer: str) -> t.User | None:
    parts = split_key(bearer, "mgp")
    if parts is None:
        return None
    tok = (await session.execute(select(t.PersonalToken).where(t.PersonalToken.public_id == parts[0]))).scalar_one_or_none()
    if tok is None or not hmac.compare_digest(tok.secret_digest, digest(parts[1])):
        return None
    if tok.expires_at is not None and tok.expires_at <= utcnow():
        return None
    user = await session.get(t.User, tok.user_id)
    if user is None or not user.is_active:
        return None
    return user


async def create_token(
    session: AsyncSession, actor: Actor, user: t.User, name: str | None, expires_at: datetime | None
) -> tuple[t.PersonalToken, str]:
    name = (name or "token").strip()
    if not name or len(name) > 128:
        raise BadRequest("A token name is 1-128 characters.", param="name")
    if expires_at is not None and expires_at <= utcnow():
        raise BadRequest("expires_at must be in the future.", param="expires_at")
    issued = issue_key("mgp")
    tok = t.PersonalToken(tenant_id=user.tenant_id, user_id=user.id, public_id=issued.public_id, name=name,
                          secret_digest=issued.digest, expires_at=expires_at)  # fmt: skip
    session.add(tok)
    await session.flush()
    await write_audit(session, actor, "token.create", "user", tenant_id=user.tenant_id, target_id=user.id,
                      target_name=user.username, after={"token_id": tok.id, "name": name})  # fmt: skip
    return tok, issued.secret
