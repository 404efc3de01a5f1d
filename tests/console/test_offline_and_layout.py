"""The console needs nothing but its own gateway: no request ever leaves 127.0.0.1 (no CDN),
every page has a title, a breadcrumb and labelled inputs, it is usable with the keyboard, and it
fits a 390 px phone screen.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.console.conftest import Console
from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess

PAGES = [
    "/console",
    "/console/endpoints",
    "/console/endpoints/new",
    "/console/endpoints/new?kind=custom",
    "/console/endpoints/new?kind=managed",
    "/console/endpoints/page-ep",
    "/console/endpoints/page-ep/edit",
    "/console/endpoints/page-ep/copy",
    "/console/endpoints/page-ep/delete",
    "/console/monitoring",
    "/console/monitoring?endpoint=page-ep&range=7d",
    "/console/keys",
    "/console/keys/new",
    "/console/credentials",
    "/console/credentials/new",
    "/console/users",
    "/console/users/new",
    "/console/admins",
    "/console/grants",
    "/console/grants/new",
    "/console/usage",
    "/console/usage?view=chart",
    "/console/audit",
]

UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map(el => el.name)"""


@pytest.fixture(scope="module")
def seeded(gw: GatewayProcess, upstream: FakeUpstream) -> GatewayProcess:
    gw.create_endpoint("page-ep", upstream.base_url)
    gw.create_key("admin", name="page-key")
    return gw


def test_no_request_leaves_the_machine_and_every_page_is_complete(console_of: Any, seeded: GatewayProcess) -> None:
    c: Console = console_of()
    c.goto("/")  # → the console's login page
    assert c.page.url.endswith("/console/login?next=%2Fconsole")
    assert seeded.admin_password
    c.login("admin", seeded.admin_password)
    for path in PAGES:
        response = c.goto(path)
        assert response is not None and response.status == 200, path
        page = c.page
        assert page.title().endswith("· modelgate") and len(page.title()) > len("· modelgate"), path
        assert page.locator("h1").count() == 1, path
        crumbs = page.get_by_role("navigation", name="Breadcrumb").locator("li")
        assert crumbs.count() >= 2 and crumbs.first.inner_text() == "Home", path
        assert page.evaluate(UNLABELLED) == [], path
        if page.locator("canvas[data-chart]").count():
            page.wait_for_function(
                "() => [...document.querySelectorAll('canvas[data-chart]')]"
                ".every(c => window.Chart && Chart.getChart(c))"
            )
    assert c.outside == [], f"requests left 127.0.0.1: {c.outside}"
    assert c.js_errors == [], c.js_errors
    c.shot("audit-log")

    # and the guard does catch one: a page that asks for a CDN script is refused and recorded
    c.page.evaluate(
        "() => { const s = document.createElement('script'); "
        "s.src = 'https://cdn.jsdelivr.net/npm/chart.js'; document.head.appendChild(s); }"
    )
    c.page.wait_for_timeout(300)
    assert c.outside == ["https://cdn.jsdelivr.net/npm/chart.js"]


def test_keyboard_only_sign_in_and_navigation(console_of: Any, seeded: GatewayProcess) -> None:
    c: Console = console_of()
    page = c.page
    c.goto("/console/login")
    assert page.evaluate("document.activeElement.id") == "f-username"  # autofocus
    page.keyboard.type("admin")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "f-password"
    assert seeded.admin_password
    page.keyboard.type(seeded.admin_password)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console/?$"))
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    for _ in range(3):  # the brand link, then the navigation
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Endpoints"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console/endpoints$"))
    c.shot("keyboard-endpoints")


@pytest.mark.parametrize(
    "path",
    [
        "/console/endpoints",
        "/console/endpoints/page-ep",
        "/console/monitoring?endpoint=page-ep",
        "/console/keys",
        "/console/usage",
        "/console/endpoints/new",
    ],
)
def test_fits_a_390_px_phone(console_of: Any, seeded: GatewayProcess, path: str) -> None:
    c: Console = console_of(width=390, height=844)
    assert seeded.admin_password
    c.login("admin", seeded.admin_password)
    c.goto(path)
    page = c.page
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{path} is {width}px wide at a 390px viewport"
    nav = page.get_by_role("navigation", name="Main")
    assert not nav.is_visible()  # folded behind the Menu button
    page.get_by_role("button", name="Menu").click()
    assert nav.is_visible() and nav.get_by_role("link", name="Usage").is_visible()
    assert page.get_by_role("button", name="Menu").get_attribute("aria-expanded") == "true"
    page.get_by_role("button", name="Menu").click()
    name = path.strip("/").replace("/", "-").replace("?", "-").replace("=", "-").replace("&", "-")
    c.shot(f"phone-{name}")
    assert c.js_errors == [], c.js_errors
