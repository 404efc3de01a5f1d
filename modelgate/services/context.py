"""Who is acting, and the checks every service makes before it writes."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from modelgate.errors import PermissionDenied
from modelgate.rbac import INSTANCE_ADMIN, Permission, has_permission
from modelgate.storage import tables as t

__all__ = ["Actor", "bump_config_version"]


@dataclass(frozen=True, slots=True)
class Actor:
    """The principal of an admin operation.

    ``is_system`` is the operator at the host's shell (the CLI with database access): it may do
    anything, and the audit log names it ``cli``.
    """

    username: str
    user_id: int | None = None
    tenant_id: int | None = None
    tenant_roles: frozenset[str] = field(default_factory=frozenset)
    is_instance_admin: bool = False
    is_system: bool = False

    @classmethod
    def system(cls, tenant_id: int | None = None) -> Actor:
        return cls(username="cli", tenant_id=tenant_id, is_system=True)

    def can(self, permission: Permission, endpoint_role: str | None = None) -> bool:
        if self.is_system:
            return True
        roles = self.tenant_roles | ({INSTANCE_ADMIN} if self.is_instance_admin else frozenset())
        return has_permission(permission, roles, endpoint_role)

    def require(self, permission: Permission, endpoint_role: str | None = None, what: str = "") -> None:
        if not self.can(permission, endpoint_role):
            raise PermissionDenied(what or f"You do not have the permission '{permission.value}'.")


async def bump_config_version(session: AsyncSession) -> None:
    """Tell every gateway process that configuration changed (their poll compares this number)."""
    await session.execute(update(t.ConfigState).where(t.ConfigState.id == 1).values(version=t.ConfigState.version + 1))
