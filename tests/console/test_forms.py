"""Forms keep the user's input and say exactly what is wrong; CSRF is checked on every POST; the
everyday operations work from the browser: endpoint copy/edit/delete (with the irreversibility
warning), API key filter/disable/enable/rotate/delete, vendor credentials, audit filters and the
monthly download.
"""

from __future__ import annotations

import re
from typing import Any

import httpx2 as httpx
import pytest

from tests.console.conftest import Console
from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess


@pytest.fixture
def admin(console_of: Any, gw: GatewayProcess) -> Console:
    assert gw.admin_password
    return console_of().login("admin", gw.admin_password)


def chat(gw: GatewayProcess, key: str, model: str) -> httpx.Response:
    return httpx.post(
        gw.base_url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
    )


def test_bad_input_is_kept_and_the_field_says_what_is_wrong(admin: Console, upstream: FakeUpstream) -> None:
    page = admin.page
    admin.goto("/console/endpoints/new?kind=custom")
    page.get_by_label("Endpoint name").fill("模型 one")
    page.get_by_label("Base URL").fill(upstream.base_url)
    page.get_by_label("Model version").fill("fake-model")
    page.get_by_label("Requests per minute (RPM)").fill("60")
    page.get_by_role("button", name="Create endpoint").click()
    error = page.locator("#e-name")
    assert "Invalid endpoint name '模型 one'" in error.inner_text() and "no spaces or CJK" in error.inner_text()
    assert page.get_by_label("Endpoint name").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Endpoint name").input_value() == "模型 one"  # everything typed is still there
    assert page.get_by_label("Base URL").input_value() == upstream.base_url
    assert page.get_by_label("Requests per minute (RPM)").input_value() == "60"
    admin.shot("form-error-name")
    page.get_by_label("Endpoint name").fill("custom-one")
    page.get_by_label("Base URL").fill("http://169.254.169.254/latest")
    page.get_by_role("button", name="Create endpoint").click()
    assert "link-local" in page.locator("#e-base_url").inner_text()
    page.get_by_label("Base URL").fill(upstream.base_url)
    page.get_by_role("button", name="Create endpoint").click()
    page.wait_for_url(re.compile(r"/console/endpoints/custom-one$"))


def test_every_post_needs_the_csrf_token(admin: Console, gw: GatewayProcess) -> None:
    for path in ("/console/endpoints/new?kind=custom", "/console/keys/new", "/console/usage/quota", "/console/logout"):
        resp = admin.page.request.post(path, form={"name": "x", "owner": "admin", "tokens": "1"}, max_redirects=0)
        assert resp.status == 403, path
        assert "security token" in resp.text()
        resp = admin.page.request.post(path, form={"csrf_token": "forged", "owner": "admin"}, max_redirects=0)
        assert resp.status == 403, path
    assert gw.query("SELECT quota_tokens FROM tenants ORDER BY id LIMIT 1") == [(None,)]
    admin.goto("/console")  # still signed in: the forged logout did nothing
    assert admin.page.get_by_role("heading", name="Overview").count() == 1


def test_endpoint_copy_edit_and_delete(admin: Console, gw: GatewayProcess, upstream: FakeUpstream) -> None:
    gw.create_endpoint("base-ep", upstream.base_url)
    page = admin.page
    admin.goto("/console/endpoints/base-ep")
    page.get_by_role("link", name="Copy", exact=True).click()
    page.get_by_label("Name of the copy").fill("base-ep-copy")
    page.get_by_role("button", name="Create copy").click()
    page.wait_for_url(re.compile(r"/console/endpoints/base-ep-copy$"))
    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_label("Requests per minute (RPM)").fill("120")
    page.get_by_label("Description").fill("copied for the batch team")
    page.get_by_role("button", name="Save changes").click()
    assert "Endpoint base-ep-copy saved." in admin.flash()
    assert "120 RPM" in page.locator("dl.props").inner_text()
    history = page.locator("table").last.inner_text()
    assert "endpoint.update" in history and "rpm" in history
    admin.shot("endpoint-edited")

    admin.goto("/console/endpoints?q=copy")
    assert [r.get_attribute("data-endpoint") for r in page.locator("#endpoints-table tbody tr").all()] == [
        "base-ep-copy"
    ]
    page.locator("#endpoints-table").get_by_role("link", name="Delete").click()
    assert "irreversible" in page.get_by_role("alert").inner_text()
    admin.shot("endpoint-delete-confirm")
    page.get_by_role("button", name="Delete base-ep-copy permanently").click()
    assert "Endpoint base-ep-copy was deleted." in admin.flash()
    assert gw.query("SELECT count(*) FROM endpoints WHERE name = 'base-ep-copy'") == [(0,)]


def test_api_key_filter_disable_enable_rotate_delete(
    admin: Console, gw: GatewayProcess, upstream: FakeUpstream
) -> None:
    gw.create_endpoint("keys-ep", upstream.base_url)
    page = admin.page
    admin.goto("/console/keys/new")
    page.get_by_label("Key name").fill("rotating-key")
    page.get_by_role("button", name="Create API key").click()
    secret = page.locator("#new-secret").inner_text().strip()
    assert chat(gw, secret, "keys-ep").status_code == 200

    admin.goto("/console/keys")
    row = page.locator('#keys-table tr[data-key="rotating-key"]')
    row.get_by_role("button", name="Disable").click()
    assert "disabled" in admin.flash()
    assert chat(gw, secret, "keys-ep").status_code == 401  # refused on the very next request
    page.get_by_label("Status").select_option("disabled")  # the filter submits itself
    page.wait_for_url(re.compile(r"status=disabled"))
    assert [r.get_attribute("data-key") for r in page.locator("#keys-table tbody tr").all()] == ["rotating-key"]
    admin.shot("keys-filtered-disabled")
    page.locator('#keys-table tr[data-key="rotating-key"]').get_by_role("button", name="Enable").click()
    assert chat(gw, secret, "keys-ep").status_code == 200

    page.locator('#keys-table tr[data-key="rotating-key"]').get_by_role("link", name="Rotate").click()
    page.get_by_role("button", name="Rotate secret").click()
    assert "The old secret stopped working." in page.get_by_role("alert").inner_text()
    rotated = page.locator("#new-secret").inner_text().strip()
    assert rotated != secret
    assert chat(gw, secret, "keys-ep").status_code == 401
    assert chat(gw, rotated, "keys-ep").status_code == 200

    admin.goto("/console/keys")
    page.locator('#keys-table tr[data-key="rotating-key"]').get_by_role("link", name="Delete").click()
    assert "irreversible" in page.get_by_role("alert").inner_text()
    page.get_by_role("button", name="Delete rotating-key").click()
    assert "API key rotating-key deleted." in admin.flash()
    assert chat(gw, rotated, "keys-ep").status_code == 401


def test_vendor_credentials_audit_filters_and_monthly_download(admin: Console, gw: GatewayProcess) -> None:
    page = admin.page
    admin.goto("/console/credentials")
    page.get_by_role("link", name="New credential").click()
    page.get_by_label("Name").fill("openai-prod")
    page.get_by_label("Secret (vendor API key)").fill("sk-live-abcdef123456")
    page.get_by_role("button", name="Store credential").click()
    assert "Credential openai-prod stored" in admin.flash()
    listing = page.locator("table").inner_text()
    assert "openai-prod" in listing and "sk-live-abcdef123456" not in page.content()
    page.get_by_role("link", name="New credential").click()
    page.get_by_label("Name").fill("openai-prod")  # a duplicate: the name field says so; the secret is not echoed
    page.get_by_label("Secret (vendor API key)").fill("sk-other-secret-999")
    page.get_by_role("button", name="Store credential").click()
    assert "already exists" in page.locator("#e-name").inner_text()
    assert "sk-other-secret-999" not in page.content()

    admin.goto("/console/audit")
    page.get_by_label("Action starts with").fill("credential.")
    page.get_by_label("Target name or id").fill("openai-prod")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"action=credential"))
    rows = page.locator("#audit-table tbody tr")
    assert rows.count() == 1 and "credential.create" in rows.first.inner_text()
    assert "sk-live-abcdef123456" not in page.content()  # secrets are redacted in the trail
    admin.shot("audit-filtered")

    admin.goto("/console/usage")
    with page.expect_download() as download:
        page.locator("form[action='/console/usage/export']").get_by_role("button", name="Download CSV").click()
    path = download.value.path()
    with open(path, encoding="utf-8") as fh:
        header = fh.readline()
    assert header.startswith("timestamp,request_id,endpoint,user,api_key")
    assert len(page.get_by_label("Month").locator("option").all()) == 12
