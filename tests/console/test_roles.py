"""Each role sees only what it may do, and the server refuses the rest anyway: a Viewer has no
invoke/edit/delete controls and a forged POST of theirs is refused; the Gateway Admin rules
show as clear messages; the tenant switcher signs in to the same username's other tenant.
"""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess

VIEWER, VIEWER_PW = "victor", "victor-password-1"


def _user(gw: GatewayProcess, name: str, password: str) -> int:
    out = gw.cli("users", "create", name, "--password", password, "--json")
    gw.wait_synced()
    return int(out["id"])


def test_viewer_sees_no_controls_and_forged_posts_are_refused(
    console_of: Any, gw: GatewayProcess, upstream: FakeUpstream
) -> None:
    gw.create_endpoint("viewer-ep", upstream.base_url)
    _user(gw, VIEWER, VIEWER_PW)
    gw.cli("grants", "create", "--user", VIEWER, "--role", "ENDPOINT_VIEWER", "--endpoint", "viewer-ep", "--json")
    gw.wait_synced()
    v = console_of().login(VIEWER, VIEWER_PW)
    page = v.page
    v.goto("/console/endpoints")
    row = page.locator('#endpoints-table tr[data-endpoint="viewer-ep"]')
    assert row.get_by_role("link", name="Monitor").count() == 1
    for control in ("Edit", "Copy", "Delete"):
        assert row.get_by_role("link", name=control).count() == 0
    assert page.get_by_role("link", name="New endpoint").count() == 0
    v.goto("/console/endpoints/viewer-ep")
    actions = page.locator("main")
    assert actions.get_by_role("button", name="Test connection").count() == 0  # a Viewer may not invoke
    for control in ("Edit", "Copy", "Delete", "Grant access"):
        assert actions.get_by_role("link", name=control, exact=True).count() == 0
    assert actions.get_by_role("link", name="Monitoring").count() == 1
    v.shot("viewer-endpoint")
    v.goto("/console/keys")
    assert page.get_by_role("link", name="New API key").count() == 0

    token = v.csrf()  # the viewer's own, valid token: the services still refuse
    forged = {
        "/console/endpoints/viewer-ep/delete": {},
        "/console/endpoints/viewer-ep/test": {},
        "/console/endpoints/viewer-ep/edit": {"model_version": "hijacked", "base_url": "http://127.0.0.1:9/v1"},
        "/console/endpoints/viewer-ep/copy": {"name": "stolen-copy"},
        "/console/endpoints/new?kind=custom": {"name": "rogue", "base_url": upstream.base_url, "model_version": "m"},
        "/console/keys/new": {"owner": VIEWER},
        "/console/usage/quota": {"tokens": "1"},
        "/console/grants/new": {"username": VIEWER, "role": "ENDPOINT_ADMIN", "endpoints": "viewer-ep"},
        "/console/admins": {"user_id": "2"},
    }
    for path, data in forged.items():
        resp = page.request.post(path, form={"csrf_token": token, **data}, max_redirects=0)
        assert resp.status == 403, f"{path}: {resp.status}"
        assert "may not" in resp.text() or "Only Gateway Admins" in resp.text(), path
    resp = page.request.post("/console/endpoints/viewer-ep/delete", form={}, max_redirects=0)  # no token at all
    assert resp.status == 403 and "security token" in resp.text()
    assert gw.query("SELECT model_version FROM endpoints WHERE name = 'viewer-ep' AND deleted_at IS NULL") == [
        ("fake-model",)
    ]
    assert gw.query("SELECT count(*) FROM endpoints WHERE name IN ('rogue', 'stolen-copy')") == [(0,)]
    assert gw.query("SELECT quota_tokens FROM tenants ORDER BY id LIMIT 1") == [(None,)]
    assert gw.query("SELECT role FROM grants g JOIN users u ON u.id = g.user_id WHERE u.username = ?", VIEWER) == [
        ("ENDPOINT_VIEWER",)
    ]

    # the refusal as the person sees it: a form submitted from the page
    page.evaluate(
        """token => { const f = document.createElement('form'); f.method = 'post';
        f.action = '/console/endpoints/viewer-ep/delete'; const i = document.createElement('input');
        i.type = 'hidden'; i.name = 'csrf_token'; i.value = token; f.appendChild(i); document.body.appendChild(f);
        f.submit(); }""",
        token,
    )
    page.wait_for_load_state("load")
    assert "You may not delete endpoint 'viewer-ep'." in page.get_by_role("alert").inner_text()
    v.shot("viewer-forged-delete-refused")


def test_gateway_admin_rules_are_shown_as_messages(console_of: Any, gw: GatewayProcess) -> None:
    assert gw.admin_password
    admin = console_of().login("admin", gw.admin_password)
    page = admin.page
    admin.goto("/console/admins")
    assert "cannot remove themselves" in page.locator(".alert-info").inner_text()
    page.locator('#admins-table tr[data-admin="admin"]').get_by_role("link", name="Remove").click()
    page.get_by_role("button", name=re.compile("Remove admin as Gateway Admin")).click()
    assert (
        "You cannot remove yourself as Gateway Admin; ask another Gateway Admin."
        in page.locator("#form-error").inner_text()
    )
    admin.shot("admins-cannot-remove-self")

    _user(gw, "bob", "bob-password-1")
    admin.goto("/console/admins")
    page.get_by_label("User").select_option(label="bob")
    page.get_by_role("button", name="Add Gateway Admin").click()
    assert "bob is now a Gateway Admin." in admin.flash()

    bob = console_of().login("bob", "bob-password-1")  # bob removes admin (still the Account Admin)
    bob.goto("/console/admins")
    bob.page.locator('#admins-table tr[data-admin="admin"]').get_by_role("link", name="Remove").click()
    bob.page.get_by_role("button", name=re.compile("Remove admin")).click()
    assert "Gateway Admin removed." in bob.flash()

    admin.goto("/console/admins")  # now bob is the only one left: removing him is refused
    page.locator('#admins-table tr[data-admin="bob"]').get_by_role("link", name="Remove").click()
    page.get_by_role("button", name=re.compile("Remove bob")).click()
    assert "At least one Gateway Admin must remain." in page.locator("#form-error").inner_text()
    assert page.locator('#admins-table tr[data-admin="bob"]').count() == 1
    admin.shot("admins-last-one-remains")


def test_tenant_switcher_signs_in_to_the_same_username_elsewhere(console_of: Any, gw: GatewayProcess) -> None:
    assert gw.admin_password
    solo = console_of().login("admin", gw.admin_password)
    assert solo.page.get_by_role("link", name="Switch tenant").count() == 0  # only when another tenant has "admin"
    beta = gw.cli("tenants", "create", "beta", "--admin", "admin", "--json")
    gw.wait_synced()
    c = console_of().login("admin", gw.admin_password)
    page = c.page
    page.get_by_role("link", name="Switch tenant").click()
    page.get_by_label("Tenant").select_option("beta")
    page.get_by_label("Password of that account").fill("wrong-password")
    page.get_by_role("button", name="Switch tenant").click()
    assert "Wrong username or password." in page.locator("#e-password").inner_text()
    assert page.get_by_label("Tenant").input_value() == "beta"  # kept
    c.shot("switch-tenant-wrong-password")
    page.get_by_label("Password of that account").fill(beta["admin"]["password"])
    page.get_by_role("button", name="Switch tenant").click()
    page.wait_for_url(re.compile(r"/console/?$"))
    assert "Signed in to tenant beta." in c.flash()
    assert "tenant beta" in page.locator(".account").inner_text()
    c.goto("/console/endpoints")  # beta's data only: the default tenant's endpoints are not there
    assert "viewer-ep" not in page.content()
    c.shot("switched-to-beta")


def test_sign_out_ends_the_session(console_of: Any, gw: GatewayProcess) -> None:
    assert gw.admin_password
    c = console_of().login("admin", gw.admin_password)
    c.page.get_by_role("button", name="Sign out").click()
    c.page.wait_for_url(re.compile(r"/console/login"))
    assert "You have been signed out." in c.page.get_by_role("status").inner_text()
    c.goto("/console/keys")  # the old session is gone: back to the sign-in page
    assert "/console/login?next=" in c.page.url
    c.shot("signed-out")
