"""The Instance Admin's pages: tenants (list, create with the admin password shown once) and the
managed-model catalog (list, add, delete after confirming, restore a tenant's deleted endpoint).

Everything is checked where it lands (the database, the admin API, /v1), not only on the page:
a new tenant's password signs its Account Admin in, a managed model answers /v1 in every tenant
and stops answering once deleted. A tenant's Account Admin has no navigation entry and every
route refuses them, forged POSTs with their valid CSRF token included; bad input shows the
service's message and changes nothing.
"""

from __future__ import annotations

import re
from typing import Any

import openai
import pytest

from tests.console.conftest import Console
from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess

UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map(el => el.name)"""
MANAGED_SECRET = "sk-managed-vendor-secret-0042"


@pytest.fixture
def admin(console_of: Any, gw: GatewayProcess) -> Console:
    """The instance's first admin, who ``modelgate init`` made the Instance Admin."""
    assert gw.admin_password
    return console_of().login("admin", gw.admin_password)


def _count(gw: GatewayProcess, sql: str, *params: Any) -> int:
    return int(gw.query(sql, *params)[0][0])


def _add_model(c: Console, name: str, base_url: str, secret: str = MANAGED_SECRET) -> None:
    """Fill in and submit the add-model form the way a person does."""
    c.goto("/console/managed-models/new")
    page = c.page
    page.get_by_label(re.compile(r"^Name")).fill(name)
    page.get_by_label(re.compile(r"^Model version")).fill("fake-model")
    page.get_by_label(re.compile(r"^Vendor")).select_option("vllm")
    page.get_by_label(re.compile(r"^Category")).select_option("llm")
    page.get_by_label(re.compile(r"^Base URL")).fill(base_url)
    page.get_by_label(re.compile(r"^Secret")).fill(secret)
    page.get_by_label(re.compile(r"^Description")).fill("House model on the fake upstream")
    page.get_by_role("button", name="Add managed model").click()
    page.wait_for_load_state("load")


def test_instance_admin_creates_a_tenant_and_sees_the_password_once(
    admin: Console, console_of: Any, gw: GatewayProcess
) -> None:
    page = admin.page
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Tenants").click()
    page.wait_for_url(re.compile(r"/console/tenants$"))
    assert page.locator('#tenants-table tr[data-tenant="default"]').count() == 1
    page.get_by_role("link", name="New tenant").click()
    page.wait_for_url(re.compile(r"/console/tenants/new$"))

    # keyboard only: each field is labelled and reached with Tab, Enter submits
    page.get_by_label("Tenant name").focus()
    page.keyboard.type("acme")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "f-timezone"
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("Asia/Shanghai")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "f-admin_username"
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("acme-owner")
    page.keyboard.press("Enter")
    page.wait_for_load_state("load")

    assert "shown only this once" in page.get_by_role("alert").inner_text()
    password = page.locator("#new-password").inner_text().strip()
    assert len(password) >= 20
    admin.shot("instance-tenant-created")
    assert gw.query("SELECT timezone FROM tenants WHERE name = 'acme'") == [("Asia/Shanghai",)]
    roles = gw.query(
        "SELECT r.role FROM tenant_roles r JOIN users u ON u.id = r.user_id JOIN tenants t ON t.id = u.tenant_id "
        "WHERE t.name = 'acme' AND u.username = 'acme-owner' ORDER BY r.role"
    )
    assert roles == [("ACCOUNT_ADMIN",), ("GATEWAY_ADMIN",)]
    assert _count(gw, "SELECT count(*) FROM users WHERE password_hash LIKE ?", f"%{password}%") == 0  # a hash only

    # never shown again: not on the list, not through the admin API
    admin.goto("/console/tenants")
    row = page.locator('#tenants-table tr[data-tenant="acme"]')
    assert "Asia/Shanghai" in row.inner_text()
    assert password not in page.content()
    listed = page.request.get("/api/v1/tenants")
    assert listed.status == 200 and password not in listed.text()
    assert {tn["name"]: tn["timezone"] for tn in listed.json()}["acme"] == "Asia/Shanghai"

    # the password is real: the new Account Admin signs in to the new tenant
    owner = console_of().login("acme-owner", password)
    assert "tenant acme" in owner.page.locator(".account").inner_text()


def test_bad_tenant_input_shows_the_message_and_creates_nothing(admin: Console, gw: GatewayProcess) -> None:
    page = admin.page
    tenants, users = _count(gw, "SELECT count(*) FROM tenants"), _count(gw, "SELECT count(*) FROM users")
    cases = [
        ({"name": "default", "tz": "UTC"}, "name", "A tenant named 'default' already exists."),
        ({"name": "mars-base", "tz": "Mars/Olympus_Mons"}, "timezone", "Unknown time zone 'Mars/Olympus_Mons'"),
        ({"name": "bad name", "tz": "UTC"}, "name", "A tenant name is 1-64 characters"),
    ]
    for values, field, message in cases:
        admin.goto("/console/tenants/new")
        page.get_by_label("Tenant name").fill(values["name"])
        page.get_by_label("Time zone").fill(values["tz"])
        page.get_by_label("Account Admin username").fill("someone")
        page.get_by_role("button", name="Create tenant").click()
        page.wait_for_load_state("load")
        assert message in page.locator(f"#e-{field}").inner_text(), values
        assert "Tenant not created." in page.locator("#form-error").inner_text()
        assert page.get_by_label("Tenant name").input_value() == values["name"]  # kept as typed
        assert page.get_by_label("Time zone").get_attribute("aria-invalid") == ("true" if field == "timezone" else None)
        assert page.locator("#new-password").count() == 0
    admin.shot("instance-tenant-bad-timezone")
    assert _count(gw, "SELECT count(*) FROM tenants") == tenants
    assert _count(gw, "SELECT count(*) FROM users") == users
    assert _count(gw, "SELECT count(*) FROM tenants WHERE name IN ('mars-base', 'bad name')") == 0


def test_instance_admin_adds_restores_and_deletes_a_managed_model(
    admin: Console, console_of: Any, gw: GatewayProcess, upstream: FakeUpstream
) -> None:
    page = admin.page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Managed models").click()
    page.wait_for_url(re.compile(r"/console/managed-models$"))
    page.get_by_role("link", name="Add managed model").click()
    page.wait_for_url(re.compile(r"/console/managed-models/new$"))

    # bad input first: the service's message, the secret not sent back, nothing stored
    _add_model(admin, "house-llm", "ftp://127.0.0.1/v1")
    assert "base_url must be an absolute http:// or https:// URL" in page.locator("#e-base_url").inner_text()
    assert page.get_by_label(re.compile(r"^Secret")).input_value() == ""
    assert MANAGED_SECRET not in page.content()
    assert page.get_by_label(re.compile(r"^Name")).input_value() == "house-llm"
    assert _count(gw, "SELECT count(*) FROM managed_models WHERE name = 'house-llm'") == 0

    _add_model(admin, "house-llm", upstream.base_url)
    page.wait_for_url(re.compile(r"/console/managed-models$"))
    assert "Managed model house-llm added" in admin.flash()
    row = page.locator('#models-table tr[data-model="house-llm"]')
    assert "fake-model" in row.inner_text() and MANAGED_SECRET not in page.content()
    admin.shot("instance-managed-models")
    stored = gw.query(
        "SELECT vendor, category, base_url, secret_ciphertext FROM managed_models WHERE name = 'house-llm'"
    )
    assert stored[0][:3] == ("vllm", "llm", upstream.base_url.rstrip("/"))
    assert MANAGED_SECRET not in stored[0][3]  # encrypted at rest
    tenants = _count(gw, "SELECT count(*) FROM tenants")
    assert _count(gw, "SELECT count(*) FROM endpoints WHERE name = 'house-llm' AND kind = 'managed'") == tenants

    _add_model(admin, "house-llm", upstream.base_url)  # the same name again
    assert "A managed model named 'house-llm' already exists." in page.locator("#e-name").inner_text()
    assert _count(gw, "SELECT count(*) FROM managed_models WHERE name = 'house-llm'") == 1

    # it answers /v1 in the admin's tenant
    gw.wait_synced()
    key = gw.create_key("admin", name="managed-caller")
    client = openai.OpenAI(base_url=gw.base_url + "/v1", api_key=key["secret"], max_retries=0)
    reply = client.chat.completions.create(model="house-llm", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "echo: hi"

    # a tenant deletes its endpoint of it; only the Instance Admin can bring it back
    out = gw.cli("tenants", "create", "restorers", "--admin", "rita", "--json")
    gw.wait_synced()
    rita = console_of().login("rita", out["admin"]["password"])
    rita.goto("/console/endpoints/house-llm/delete")
    rita.page.request.post("/console/endpoints/house-llm/delete", form={"csrf_token": rita.csrf()})
    restorers = "SELECT e.deleted_at IS NULL FROM endpoints e JOIN tenants t ON t.id = e.tenant_id " \
                "WHERE t.name = 'restorers' AND e.name = 'house-llm'"  # fmt: skip
    assert gw.query(restorers) == [(0,)]
    admin.goto("/console/managed-models")
    admin.shot("instance-managed-model-restorable")
    page.get_by_role("button", name="Restore house-llm in tenant restorers").click()
    page.wait_for_url(re.compile(r"/console/managed-models$"))
    assert "Endpoint house-llm restored in tenant restorers." in admin.flash()
    assert gw.query(restorers) == [(1,)]
    assert page.get_by_role("button", name=re.compile("Restore house-llm")).count() == 0

    # delete, after the confirmation step
    page.locator('#models-table tr[data-model="house-llm"]').get_by_role("link", name="Delete house-llm").click()
    page.wait_for_url(re.compile(r"/console/managed-models/\d+/delete$"))
    assert "This cannot be undone." in page.get_by_role("alert").inner_text()
    assert _count(gw, "SELECT count(*) FROM managed_models WHERE name = 'house-llm'") == 1  # not before confirming
    admin.shot("instance-managed-model-delete")
    page.get_by_role("button", name="Delete house-llm").click()
    page.wait_for_url(re.compile(r"/console/managed-models$"))
    assert "Managed model house-llm deleted." in admin.flash()
    assert page.locator('#models-table tr[data-model="house-llm"]').count() == 0
    assert _count(gw, "SELECT count(*) FROM managed_models WHERE name = 'house-llm'") == 0
    assert _count(gw, "SELECT count(*) FROM endpoints WHERE name = 'house-llm'") == 0
    gw.wait_synced()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="house-llm", messages=[{"role": "user", "content": "hi"}])


def test_account_admin_has_no_entry_and_every_route_refuses_them(
    admin: Console, console_of: Any, gw: GatewayProcess, upstream: FakeUpstream
) -> None:
    _add_model(admin, "guarded-llm", upstream.base_url)
    model_id = _count(gw, "SELECT id FROM managed_models WHERE name = 'guarded-llm'")
    out = gw.cli("tenants", "create", "outsiders", "--admin", "olga", "--json")
    gw.wait_synced()
    olga = console_of().login("olga", out["admin"]["password"])  # Account Admin of her tenant, nothing more
    page = olga.page
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Users").count() == 1  # she does see her tenant's admin pages
    assert nav.get_by_role("link", name="Tenants").count() == 0
    assert nav.get_by_role("link", name="Managed models").count() == 0
    for path in ("/console/tenants", "/console/tenants/new", "/console/managed-models",
                 "/console/managed-models/new", f"/console/managed-models/{model_id}/delete"):  # fmt: skip
        response = olga.goto(path)
        assert response is not None and response.status == 403, path
        assert "Only the Instance Admin" in page.get_by_role("alert").inner_text(), path
    olga.shot("instance-refused")

    # her endpoint of the model is deleted, so a restore would have something to do
    olga.goto("/console/endpoints")
    token = olga.csrf()
    page.request.post("/console/endpoints/guarded-llm/delete", form={"csrf_token": token})
    deleted = "SELECT e.deleted_at IS NULL FROM endpoints e JOIN tenants t ON t.id = e.tenant_id " \
              "WHERE t.name = 'outsiders' AND e.name = 'guarded-llm'"  # fmt: skip
    assert gw.query(deleted) == [(0,)]
    before = (_count(gw, "SELECT count(*) FROM tenants"), _count(gw, "SELECT count(*) FROM users"),
              _count(gw, "SELECT count(*) FROM audit_log"))  # fmt: skip
    forged = {
        "/console/tenants/new": {"name": "rogue", "timezone": "UTC", "admin_username": "rogue-admin"},
        "/console/managed-models/new": {"name": "rogue-llm", "vendor": "custom", "category": "llm",
                                        "base_url": upstream.base_url, "model_version": "m", "secret": "sk-x"},
        f"/console/managed-models/{model_id}/delete": {},
        f"/console/managed-models/{model_id}/restore": {"tenant": "outsiders"},
    }  # fmt: skip
    for path, data in forged.items():
        resp = page.request.post(path, form={"csrf_token": token, **data}, max_redirects=0)
        assert resp.status == 403, f"{path}: {resp.status}"
        assert "Only the Instance Admin" in resp.text(), path
    resp = page.request.post(f"/console/managed-models/{model_id}/delete", form={}, max_redirects=0)  # no token
    assert resp.status == 403 and "security token" in resp.text()
    api = page.request.get("/api/v1/tenants")  # the admin API agrees
    assert api.status == 403

    after = (_count(gw, "SELECT count(*) FROM tenants"), _count(gw, "SELECT count(*) FROM users"),
             _count(gw, "SELECT count(*) FROM audit_log"))  # fmt: skip
    assert after == before
    assert _count(gw, "SELECT count(*) FROM tenants WHERE name = 'rogue'") == 0
    assert _count(gw, "SELECT count(*) FROM managed_models WHERE name = 'rogue-llm'") == 0
    assert _count(gw, "SELECT count(*) FROM managed_models WHERE id = ?", model_id) == 1
    assert gw.query(deleted) == [(0,)]  # still deleted: her restore was refused


@pytest.mark.parametrize("width", [1280, 390])
def test_instance_pages_are_complete_and_fit_the_screen(
    console_of: Any, gw: GatewayProcess, upstream: FakeUpstream, width: int
) -> None:
    assert gw.admin_password
    c: Console = console_of(width=width, height=844)
    c.login("admin", gw.admin_password)
    if not _count(gw, "SELECT count(*) FROM managed_models WHERE name = 'layout-llm'"):
        _add_model(c, "layout-llm", upstream.base_url)
    model_id = _count(gw, "SELECT id FROM managed_models WHERE name = 'layout-llm'")
    page = c.page
    for path in ("/console/tenants", "/console/tenants/new", "/console/managed-models/new",
                 f"/console/managed-models/{model_id}/delete", "/console/managed-models"):  # fmt: skip
        response = c.goto(path)
        assert response is not None and response.status == 200, path
        assert page.title().endswith("· modelgate") and page.locator("h1").count() == 1, path
        crumbs = page.get_by_role("navigation", name="Breadcrumb").locator("li")
        assert crumbs.count() >= 2 and crumbs.first.inner_text() == "Home", path
        assert page.evaluate(UNLABELLED) == [], path
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"{path} is {scroll}px wide at {width}px"
    nav = page.get_by_role("navigation", name="Main")
    if width == 390:
        page.get_by_role("button", name="Menu").click()
    assert nav.get_by_role("link", name="Managed models").get_attribute("aria-current") == "page"
    assert nav.get_by_role("link", name="Tenants").is_visible()
    c.shot(f"instance-models-{width}")
    assert c.outside == [] and c.js_errors == [], (c.outside, c.js_errors)
