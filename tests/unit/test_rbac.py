"""The permission table of DESIGN.md §2, pinned row by row against the one policy module.

Columns are principals: a Gateway Admin (tenant role), a plain member holding an endpoint role
on the endpoint in question (Endpoint Admin, Operator, User, Viewer), and a plain member
without a grant. "all"/"own" in the design both mean "yes" here: the endpoint role is the
role on the endpoint being asked about.
"""

from __future__ import annotations

import pytest

from modelgate.rbac import (
    ENDPOINT_ROLES,
    INSTANCE_ADMIN,
    TENANT_ROLES,
    EndpointRole,
    Permission,
    TenantRole,
    endpoint_scoped,
    has_permission,
)

P = Permission
COLUMNS = ("gateway_admin", "endpoint_admin", "operator", "user", "viewer", "member")
PRINCIPALS: dict[str, tuple[tuple[str, ...], str | None]] = {
    # name: (tenant roles, role granted on the endpoint in question)
    "gateway_admin": ((TenantRole.GATEWAY_ADMIN,), None),
    "endpoint_admin": ((TenantRole.MEMBER,), EndpointRole.ENDPOINT_ADMIN),
    "operator": ((TenantRole.MEMBER,), EndpointRole.ENDPOINT_OPERATOR),
    "user": ((TenantRole.MEMBER,), EndpointRole.ENDPOINT_USER),
    "viewer": ((TenantRole.MEMBER,), EndpointRole.ENDPOINT_VIEWER),
    "member": ((TenantRole.MEMBER,), None),
}
Y, N = True, False
# fmt: off
TABLE: dict[Permission, tuple[bool, ...]] = {
    #                      GA Admin Oper User View member
    P.ENDPOINT_VIEW:       (Y, Y, Y, Y, Y, N),
    P.ENDPOINT_INVOKE:     (Y, Y, Y, Y, N, N),
    P.ENDPOINT_CREATE:     (Y, N, N, N, N, N),
    P.ENDPOINT_EDIT:       (Y, Y, Y, N, N, N),
    P.ENDPOINT_EDIT_QUOTA: (Y, Y, N, N, N, N),
    P.ENDPOINT_DELETE:     (Y, Y, N, N, N, N),
    P.ENDPOINT_GRANT:      (Y, Y, N, N, N, N),
    P.ENDPOINT_MONITOR:    (Y, Y, Y, Y, Y, N),
    P.KEYS_MANAGE:         (Y, N, N, N, N, N),
    P.CREDENTIALS_MANAGE:  (Y, N, N, N, N, N),
    P.KEYS_VIEW_OWN:       (Y, Y, Y, Y, Y, Y),
    P.GATEWAY_ADMINS_MANAGE: (Y, N, N, N, N, N),
    P.TENANT_QUOTA_MANAGE: (Y, N, N, N, N, N),
    P.USAGE_ALL:           (Y, N, N, N, N, N),
    P.USAGE_EXPORT:        (Y, N, N, N, N, N),
    P.AUDIT_ALL:           (Y, N, N, N, N, N),
    P.ENDPOINT_AUDIT:      (Y, Y, N, N, N, N),
}
# fmt: on
CASES = [(perm, col, allowed) for perm, row in TABLE.items() for col, allowed in zip(COLUMNS, row, strict=True)]


@pytest.mark.parametrize(("permission", "principal", "allowed"), CASES)
def test_design_table(permission: Permission, principal: str, allowed: bool) -> None:
    tenant_roles, endpoint_role = PRINCIPALS[principal]
    assert has_permission(permission, tenant_roles, endpoint_role) is allowed


def test_the_rows_everyone_gets_wrong() -> None:
    assert not has_permission(P.ENDPOINT_INVOKE, (TenantRole.MEMBER,), EndpointRole.ENDPOINT_VIEWER)
    assert not has_permission(P.ENDPOINT_EDIT_QUOTA, (TenantRole.MEMBER,), EndpointRole.ENDPOINT_OPERATOR)
    assert has_permission(P.ENDPOINT_EDIT, (TenantRole.MEMBER,), EndpointRole.ENDPOINT_OPERATOR)
    assert not has_permission(P.ENDPOINT_INVOKE, (TenantRole.MEMBER,)), "a member invokes nothing without a grant"


@pytest.mark.parametrize("role", sorted(ENDPOINT_ROLES))
@pytest.mark.parametrize("permission", [p for p in Permission if not endpoint_scoped(p)])
def test_a_grant_never_confers_tenant_or_instance_permissions(role: str, permission: Permission) -> None:
    assert not has_permission(permission, (), role)


def test_account_admin_may_act_as_gateway_admin() -> None:
    for permission in Permission:
        assert has_permission(permission, (TenantRole.ACCOUNT_ADMIN,)) == has_permission(
            permission, (TenantRole.GATEWAY_ADMIN,)
        ), permission


def test_instance_admin_manages_tenants_and_catalog_only() -> None:
    allowed = {p for p in Permission if has_permission(p, (INSTANCE_ADMIN,))}
    assert allowed == {P.TENANTS_MANAGE, P.MANAGED_MODELS_MANAGE}
    for role in TENANT_ROLES:
        assert not has_permission(P.TENANTS_MANAGE, (role,)), role
        assert not has_permission(P.MANAGED_MODELS_MANAGE, (role,)), role


def test_roles_add_up_and_unknown_roles_grant_nothing() -> None:
    assert has_permission(P.ENDPOINT_DELETE, (TenantRole.MEMBER, TenantRole.GATEWAY_ADMIN))
    assert not any(has_permission(p, ("SUPERUSER",), "ENDPOINT_OWNER") for p in Permission)
    assert not any(has_permission(p) for p in Permission)


def test_endpoint_scope() -> None:
    """What a grant can carry: the endpoint rows of the table; creating endpoints is tenant-wide."""
    for permission in (
        P.ENDPOINT_VIEW,
        P.ENDPOINT_INVOKE,
        P.ENDPOINT_EDIT,
        P.ENDPOINT_EDIT_QUOTA,
        P.ENDPOINT_DELETE,
        P.ENDPOINT_GRANT,
        P.ENDPOINT_MONITOR,
        P.ENDPOINT_AUDIT,
    ):
        assert endpoint_scoped(permission), permission
    for permission in (P.ENDPOINT_CREATE, P.KEYS_MANAGE, P.KEYS_VIEW_OWN, P.USAGE_ALL, P.TENANTS_MANAGE):
        assert not endpoint_scoped(permission), permission
