"""THE permission table (DESIGN.md §2). Every enforcement point asks this module.

Tenant roles (``ACCOUNT_ADMIN``, ``GATEWAY_ADMIN``, ``MEMBER``) grant their permissions on every
endpoint of the tenant; endpoint roles grant theirs on the one endpoint of the grant. The
Instance Admin role grants instance-level permissions only and nothing inside a tenant.
To add a permission: add a ``Permission`` member and list it under the roles that have it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

__all__ = [
    "ENDPOINT_ROLES",
    "ROLES",
    "TENANT_ROLES",
    "EndpointRole",
    "Permission",
    "Role",
    "TenantRole",
    "endpoint_scoped",
    "has_permission",
    "permissions_of",
]


class Permission(StrEnum):
    # endpoint-scoped: held on all endpoints through a tenant role, or on one through a grant
    ENDPOINT_VIEW = "endpoint.view"
    ENDPOINT_INVOKE = "endpoint.invoke"
    ENDPOINT_EDIT = "endpoint.edit"
    ENDPOINT_EDIT_QUOTA = "endpoint.edit_quota"
    ENDPOINT_DELETE = "endpoint.delete"
    ENDPOINT_GRANT = "endpoint.grant"
    ENDPOINT_MONITOR = "endpoint.monitor"
    ENDPOINT_AUDIT = "endpoint.audit"
    # tenant-scoped
    ENDPOINT_CREATE = "tenant.endpoint_create"
    KEYS_MANAGE = "tenant.keys_manage"
    CREDENTIALS_MANAGE = "tenant.credentials_manage"
    KEYS_VIEW_OWN = "tenant.keys_view_own"
    USERS_MANAGE = "tenant.users_manage"
    GATEWAY_ADMINS_MANAGE = "tenant.gateway_admins_manage"
    TENANT_QUOTA_MANAGE = "tenant.quota_manage"
    USAGE_ALL = "tenant.usage_all"
    USAGE_EXPORT = "tenant.usage_export"
    AUDIT_ALL = "tenant.audit_all"
    # instance-scoped
    TENANTS_MANAGE = "instance.tenants_manage"
    MANAGED_MODELS_MANAGE = "instance.managed_models_manage"


class TenantRole(StrEnum):
    ACCOUNT_ADMIN = "ACCOUNT_ADMIN"
    GATEWAY_ADMIN = "GATEWAY_ADMIN"
    MEMBER = "MEMBER"


class EndpointRole(StrEnum):
    ENDPOINT_ADMIN = "ENDPOINT_ADMIN"
    ENDPOINT_OPERATOR = "ENDPOINT_OPERATOR"
    ENDPOINT_USER = "ENDPOINT_USER"
    ENDPOINT_VIEWER = "ENDPOINT_VIEWER"


INSTANCE_ADMIN = "INSTANCE_ADMIN"
Role = str

P = Permission
_GATEWAY_ADMIN = frozenset(
    {
        P.ENDPOINT_VIEW, P.ENDPOINT_INVOKE, P.ENDPOINT_EDIT, P.ENDPOINT_EDIT_QUOTA, P.ENDPOINT_DELETE,
        P.ENDPOINT_GRANT, P.ENDPOINT_MONITOR, P.ENDPOINT_AUDIT, P.ENDPOINT_CREATE, P.KEYS_MANAGE,
        P.CREDENTIALS_MANAGE, P.KEYS_VIEW_OWN, P.USERS_MANAGE, P.GATEWAY_ADMINS_MANAGE,
        P.TENANT_QUOTA_MANAGE, P.USAGE_ALL, P.USAGE_EXPORT, P.AUDIT_ALL,
    }
)  # fmt: skip

ROLES: dict[Role, frozenset[Permission]] = {
    INSTANCE_ADMIN: frozenset({P.TENANTS_MANAGE, P.MANAGED_MODELS_MANAGE}),
    # The Account Admin owns the tenant and "may act as" a Gateway Admin.
    TenantRole.ACCOUNT_ADMIN: _GATEWAY_ADMIN,
    TenantRole.GATEWAY_ADMIN: _GATEWAY_ADMIN,
    TenantRole.MEMBER: frozenset({P.KEYS_VIEW_OWN}),
    EndpointRole.ENDPOINT_ADMIN: frozenset(
        {
            P.ENDPOINT_VIEW, P.ENDPOINT_INVOKE, P.ENDPOINT_EDIT, P.ENDPOINT_EDIT_QUOTA,
            P.ENDPOINT_DELETE, P.ENDPOINT_GRANT, P.ENDPOINT_MONITOR, P.ENDPOINT_AUDIT,
        }
    ),  # fmt: skip
    EndpointRole.ENDPOINT_OPERATOR: frozenset(
        {P.ENDPOINT_VIEW, P.ENDPOINT_INVOKE, P.ENDPOINT_EDIT, P.ENDPOINT_MONITOR}
    ),
    EndpointRole.ENDPOINT_USER: frozenset({P.ENDPOINT_VIEW, P.ENDPOINT_INVOKE, P.ENDPOINT_MONITOR}),
    EndpointRole.ENDPOINT_VIEWER: frozenset({P.ENDPOINT_VIEW, P.ENDPOINT_MONITOR}),
}

TENANT_ROLES = frozenset(TenantRole)
ENDPOINT_ROLES = frozenset(EndpointRole)
_ENDPOINT_SCOPED = frozenset(p for p in Permission if p.value.startswith("endpoint."))


def endpoint_scoped(permission: Permission) -> bool:
    """Endpoint-scoped permissions can come from a grant on that endpoint."""
    return permission in _ENDPOINT_SCOPED


def permissions_of(roles: Iterable[Role]) -> frozenset[Permission]:
    result: frozenset[Permission] = frozenset()
    for role in roles:
        result |= ROLES.get(role, frozenset())
    return result


def has_permission(
    permission: Permission,
    tenant_roles: Iterable[Role] = (),
    endpoint_role: Role | None = None,
) -> bool:
    """True when a tenant role, or the grant on the endpoint in question, carries ``permission``.

    A grant only ever confers endpoint-scoped permissions, whatever its role says.
    """
    if permission in permissions_of(tenant_roles):
        return True
    if endpoint_role in ENDPOINT_ROLES and endpoint_scoped(permission):
        return permission in ROLES.get(endpoint_role, frozenset())
    return False
