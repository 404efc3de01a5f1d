"""The console end to end, as the issue tells it: the admin adds an external endpoint from a
vendor preset (base URL overridden to the fake upstream) and tests its connection, creates a key
(copies the secret) and grants a user ENDPOINT_USER; the user signs in and sees only that
endpoint; invocations with the key show in the monitoring and usage charts; the tenant quota is
set and then enforced on /v1.

The steps share one gateway and run in order (one story); each saves a screenshot.
"""

from __future__ import annotations

import re
import time
from typing import Any

import openai
import pytest

from tests.console.conftest import Console
from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess

USER, USER_PASSWORD = "alice", "alice-password-1"
ENDPOINT, OTHER = "chat-prod", "hidden-model"


@pytest.fixture(scope="module")
def story() -> dict[str, Any]:
    return {}


@pytest.fixture
def admin(console_of: Any, gw: GatewayProcess) -> Console:
    assert gw.admin_password
    return console_of().login("admin", gw.admin_password)


def chart_total(c: Console, canvas_id: str) -> float:
    """The sum of every dataset of the Chart.js chart drawn on a canvas."""
    c.page.wait_for_function("id => window.Chart && Chart.getChart(document.getElementById(id))", arg=canvas_id)
    return float(
        c.page.evaluate(
            "id => Chart.getChart(document.getElementById(id)).data.datasets"
            ".reduce((s, d) => s + d.data.reduce((a, b) => a + (b || 0), 0), 0)",
            canvas_id,
        )
    )


def test_admin_adds_preset_endpoint_and_tests_connection(
    admin: Console, gw: GatewayProcess, upstream: FakeUpstream, story: dict[str, Any]
) -> None:
    page = admin.page
    admin.goto("/console/endpoints")
    page.get_by_role("link", name="New endpoint").click()
    page.wait_for_url(re.compile(r"/console/endpoints/new"))
    base_url = page.get_by_label("Base URL")
    assert base_url.input_value() == "https://api.openai.com/v1"  # the preset fills it in
    page.get_by_label(re.compile(r"^Vendor")).select_option("dashscope")
    assert base_url.input_value() == "https://dashscope.aliyuncs.com/compatible-mode/v1"
    page.get_by_label("Region").select_option("intl-singapore")
    assert base_url.input_value() == "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
    page.get_by_label(re.compile(r"^Vendor")).select_option("vllm")
    assert base_url.input_value() == "http://127.0.0.1:8000/v1"
    page.get_by_label("Endpoint name").fill(ENDPOINT)
    base_url.fill(upstream.base_url)  # the user overrides the preset: here, the fake upstream
    page.get_by_label("Model version").fill("fake-model")
    page.get_by_label("…or a new vendor API key").fill("sk-vendor-secret")
    page.get_by_label("Requests per minute (RPM)").fill("600")
    admin.shot("endpoint-new-preset")
    page.get_by_role("button", name="Create endpoint").click()
    page.wait_for_url(re.compile(rf"/console/endpoints/{ENDPOINT}$"))
    assert f"Endpoint {ENDPOINT} created." in admin.flash()
    assert upstream.base_url in page.locator("dl.props").inner_text()

    page.get_by_role("button", name="Test connection").click()  # htmx: the result appears inline
    result = page.locator("#test-result .alert")
    result.wait_for()
    assert "Connection OK" in result.inner_text() and "Latency" in result.inner_text()
    assert page.url.endswith(f"/console/endpoints/{ENDPOINT}")
    for snippet in ("example-python", "example-curl"):
        assert ENDPOINT in page.locator(f"#{snippet}").inner_text()
    admin.shot("endpoint-details-tested")
    gw.create_endpoint(OTHER, upstream.base_url)  # a second endpoint the user will not be granted
    assert not admin.js_errors, admin.js_errors


def test_admin_creates_user_and_key_and_grants_endpoint_user(admin: Console, story: dict[str, Any]) -> None:
    page = admin.page
    admin.goto("/console/users")
    page.get_by_role("link", name="Add user").click()
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password").fill(USER_PASSWORD)
    page.get_by_role("button", name="Add user").click()
    assert f"User {USER} added." in admin.flash()

    admin.goto("/console/keys")
    page.get_by_role("link", name="New API key").click()
    page.get_by_label("Owner").select_option(USER)
    page.get_by_label("Key name").fill("alice-app")
    page.get_by_role("button", name="Create API key").click()
    warning = page.get_by_role("alert")
    assert "shown only this once" in warning.inner_text()
    shown = page.locator("#new-secret").inner_text().strip()
    assert re.fullmatch(r"mg-[A-Za-z0-9]+-\S+", shown), shown
    page.get_by_role("button", name="Copy").click()
    page.get_by_role("button", name="Copied").wait_for()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == shown
    story["key"] = copied
    admin.shot("key-created")

    admin.goto("/console/grants")
    page.get_by_role("link", name="Grant access").click()
    page.get_by_label("User").select_option(USER)
    page.get_by_label("Role").select_option("ENDPOINT_USER")
    page.get_by_label(ENDPOINT, exact=True).check()
    page.get_by_role("button", name="Grant").click()
    assert f"{USER} is now ENDPOINT_USER on {ENDPOINT}." in admin.flash()
    assert page.locator("#grants-table").get_by_text(USER).count() == 1
    admin.shot("grant-created")


def test_user_sees_only_the_granted_endpoint(console_of: Any, story: dict[str, Any]) -> None:
    alice = console_of().login(USER, USER_PASSWORD)
    alice.goto("/console/endpoints")
    rows = alice.page.locator("#endpoints-table tbody tr")
    assert [r.get_attribute("data-endpoint") for r in rows.all()] == [ENDPOINT]
    assert OTHER not in alice.page.content()
    row = rows.first
    assert row.get_by_role("link", name="Monitor").count() == 1
    for control in ("Edit", "Copy", "Delete"):  # an ENDPOINT_USER may invoke and monitor, nothing more
        assert row.get_by_role("link", name=control).count() == 0
    assert alice.page.get_by_role("link", name="New endpoint").count() == 0
    nav = alice.page.get_by_role("navigation", name="Main").inner_text()
    for hidden in ("Users", "Gateway Admins", "Vendor credentials", "Audit log"):
        assert hidden not in nav
    alice.shot("user-endpoints")
    alice.goto(f"/console/endpoints/{OTHER}")  # not visible: answers as if it did not exist
    assert "does not exist" in alice.page.get_by_role("alert").inner_text()


def test_invocations_show_in_monitoring_and_usage(
    console_of: Any, admin: Console, gw: GatewayProcess, story: dict[str, Any]
) -> None:
    client = openai.OpenAI(base_url=gw.base_url + "/v1", api_key=story["key"], max_retries=0)
    for i in range(3):
        reply = client.chat.completions.create(model=ENDPOINT, messages=[{"role": "user", "content": f"hello {i}"}])
        assert reply.choices[0].message.content == f"echo: hello {i}"
    with pytest.raises(openai.PermissionDeniedError):  # the other endpoint is not hers
        client.chat.completions.create(model=OTHER, messages=[{"role": "user", "content": "x"}])
    deadline = time.monotonic() + 30  # the usage writer batches; wait until the calls are stored
    while gw.query("SELECT count(*) FROM usage_events WHERE channel = 'api' AND status_code = 200")[0][0] < 3:
        assert time.monotonic() < deadline, "usage of the calls was not recorded"
        time.sleep(0.05)

    alice = console_of().login(USER, USER_PASSWORD)
    alice.goto("/console/endpoints")
    alice.page.locator("#endpoints-table").get_by_role("link", name="Monitor").click()
    alice.page.wait_for_url(re.compile(r"/console/monitoring\?endpoint=" + ENDPOINT))
    requests = int(alice.page.locator("#kpi-requests .kpi-value").inner_text().replace(",", ""))
    assert requests >= 3  # the three calls (and the admin's connection test)
    assert chart_total(alice, "canvas-requests") == requests
    assert chart_total(alice, "canvas-tokens") == int(
        alice.page.locator("#kpi-tokens .kpi-value").inner_text().replace(",", "")
    )
    assert chart_total(alice, "canvas-tokens") > 0
    assert alice.page.locator("#kpi-success .kpi-value").inner_text() == "100.0 %"
    alice.page.get_by_label("Time range", exact=True).select_option("7d")  # the picker reloads the page
    alice.page.wait_for_url(re.compile(r"range=7d"))
    assert int(alice.page.locator("#kpi-requests .kpi-value").inner_text().replace(",", "")) == requests
    alice.shot("monitoring")
    assert not alice.js_errors, alice.js_errors

    admin.goto("/console/usage?dimension=endpoint&range=last_week&view=list")
    row = admin.page.locator(f'#usage-table tr[data-name="{ENDPOINT}"]')
    assert int(row.locator("td").nth(1).inner_text()) >= 3
    admin.page.get_by_role("link", name="Chart", exact=True).click()
    admin.page.wait_for_url(re.compile(r"view=chart"))
    assert chart_total(admin, "canvas-usage") > 0
    labels = admin.page.evaluate(
        "Chart.getChart(document.getElementById('canvas-usage')).data.datasets.map(x => x.label)"
    )
    assert ENDPOINT in labels
    admin.shot("usage-chart")
    admin.goto("/console/usage?dimension=user&range=last_week&view=list")
    assert admin.page.locator(f'#usage-table tr[data-name="{USER}"]').count() == 1
    admin.shot("usage-by-user")


def test_tenant_quota_is_set_then_enforced(admin: Console, gw: GatewayProcess, story: dict[str, Any]) -> None:
    page = admin.page
    admin.goto("/console/usage")
    assert page.locator("#quota-message").inner_text() == "No quota has been set for the current tenant."
    admin.shot("quota-empty")
    page.get_by_label("Tokens per cycle").fill("5")
    page.get_by_role("button", name="Save quota").click()
    assert "Tenant quota set to 5 tokens per cycle." in admin.flash()
    assert page.locator("#quota-total .kpi-value").inner_text() == "5"
    assert page.locator("#quota-remaining .kpi-value").inner_text() == "0"  # the calls so far used more
    chart_total(admin, "canvas-quota")
    admin.shot("quota-set")

    client = openai.OpenAI(base_url=gw.base_url + "/v1", api_key=story["key"], max_retries=0)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=ENDPOINT, messages=[{"role": "user", "content": "one more"}])
    assert refused.value.status_code == 429
    assert refused.value.code == "insufficient_quota"

    page.get_by_label("Tokens per cycle").fill("-5")  # bad input: kept, and the field says what is wrong
    page.get_by_role("button", name="Save quota").click()
    assert page.get_by_label("Tokens per cycle").input_value() == "-5"
    assert "tokens must be an integer between 0 and 10^15" in page.locator("#e-tokens").inner_text()
    page.get_by_label("Tokens per cycle").fill("1000000")
    page.get_by_role("button", name="Save quota").click()
    assert "1,000,000" in admin.flash()
    reply = client.chat.completions.create(model=ENDPOINT, messages=[{"role": "user", "content": "again"}])
    assert reply.choices[0].message.content == "echo: again"
