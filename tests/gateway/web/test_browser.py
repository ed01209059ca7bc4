"""The pages in a real browser (Debian's Chromium through Playwright), on a 360-px phone and a desktop viewport:
the clerk's journey from sign-in to the printed receipt (keyboard only), the citizen's from the receipt's QR code to
the status and the evaluation, the officer completing the case; axe-core finds no serious accessibility violation;
nothing overflows at 360 px or at 200 % zoom; each page weighs at most 100 KB with its assets. Screenshots and the
printed notice are kept under ``.artifacts/browser``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Response, Route, sync_playwright

from demokit.simulators import Simulators
from gateway.web.rendering import qr_svg
from tests.gateway.intake.fixtures import CARE_ITEM, PDF, Gateway
from tests.gateway.web.live import ARTIFACTS, AXE, LiveGateway, live_gateway, need_chromium

pytestmark = pytest.mark.slow

VIEWPORTS: dict[str, dict[str, Any]] = {
    "phone": {
        "viewport": {"width": 360, "height": 740},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
    "desktop": {"viewport": {"width": 1280, "height": 900}},
}
#: A 1280-px screen at 200 % zoom lays pages out in 640 CSS pixels.
ZOOMED = {"viewport": {"width": 640, "height": 450}, "device_scale_factor": 2}
PAGE_BUDGET_BYTES = 100 * 1024


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, shared_simulators: Simulators) -> Iterator[LiveGateway]:
    need_chromium()
    with live_gateway(tmp_path_factory.mktemp("browser") / "var", shared_simulators) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = need_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def context(browser: Browser, live: LiveGateway, viewport: str | dict[str, Any]) -> BrowserContext:
    options = VIEWPORTS[viewport] if isinstance(viewport, str) else viewport
    ctx = browser.new_context(base_url=live.base_url, locale="zh-CN", **options)
    ctx.set_default_timeout(15_000)
    # axe-core, served from the test's own copy at an address of the gateway's origin (the pages' CSP allows
    # scripts from 'self' only; nothing is fetched from outside).
    ctx.route(
        f"{live.base_url}/__axe/axe.min.js", lambda route: route.fulfill(path=AXE, content_type="text/javascript")
    )
    return ctx


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def accessible(page: Page, what: str) -> None:
    """axe-core over the page: no serious or critical violation."""
    page.add_script_tag(url="/__axe/axe.min.js")
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    serious = [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not serious, f"{what}: {serious}"


def fits(page: Page, what: str) -> None:
    """Nothing wider than the viewport (no sideways scrolling)."""
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{what} overflows by {overflow}px"


class Weigher:
    """Bytes of every response of a page load (the document and each asset)."""

    def __init__(self, page: Page) -> None:
        self.sizes: dict[str, int] = {}
        page.on("response", self._seen)

    def _seen(self, response: Response) -> None:
        if "/__axe/" in response.url:
            return
        try:
            self.sizes[response.url] = len(response.body())
        except Exception:  # a redirect has no body
            self.sizes[response.url] = 0

    def total(self) -> int:
        return sum(self.sizes.values())

    def reset(self) -> None:
        self.sizes.clear()


def keyboard_until(page: Page, element_id: str, presses: int = 25) -> None:
    """Press Tab until the element with ``element_id`` has the focus."""
    for _ in range(presses):
        if page.evaluate("() => document.activeElement && document.activeElement.id") == element_id:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached #{element_id}")


def citizen_for(live: LiveGateway, sims: Simulators, skip: int) -> Any:
    helper = Gateway(app=live.app, client=None, settings=None, sims=sims)  # type: ignore[arg-type]
    return helper.citizen("resident_id_card", "disability_certificate", "household_register", skip=skip)


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_clerk_citizen_and_officer_journeys(
    browser: Browser, live: LiveGateway, shared_simulators: Simulators, viewport: str, tmp_path: Path
) -> None:
    citizen = citizen_for(live, shared_simulators, skip=0 if viewport == "phone" else 1)
    # -- the clerk, keyboard only: sign in, find the item, enter the applicant ------------------------------
    clerk_ctx = context(browser, live, viewport)
    clerk = clerk_ctx.new_page()
    weight = Weigher(clerk)
    clerk.goto("/console")
    accessible(clerk, "sign-in")
    keyboard_until(clerk, "token")
    clerk.keyboard.type(live.tokens["clerk"])
    clerk.keyboard.press("Enter")
    clerk.wait_for_selector("#q")
    # The browser applies `autofocus` a moment after the page is parsed: wait for it (fails on timeout if it never
    # comes), then check it.
    clerk.wait_for_function("() => document.activeElement && document.activeElement.id === 'q'", timeout=10_000)
    assert clerk.evaluate("() => document.activeElement.id") == "q"
    clerk.keyboard.type("hlbt")
    clerk.keyboard.press("Enter")
    clerk.wait_for_selector("#item-results a")
    accessible(clerk, "item search")
    keyboard_until(clerk, "")  # leave the search box
    link = clerk.locator("#item-results a").first
    assert "重度残疾人护理补贴" in link.inner_text()
    link.focus()
    clerk.keyboard.press("Enter")
    clerk.wait_for_selector("#applicant-form")
    assert f"/console/items/{CARE_ITEM}/new" in clerk.url
    fits(clerk, f"applicant form ({viewport})")
    accessible(clerk, "applicant form")
    keyboard_until(clerk, "id_number")
    wrong = citizen.id_number[:17] + ("0" if citizen.id_number[17] != "0" else "1")
    clerk.keyboard.type(wrong)
    assert "校验码不正确" in clerk.inner_text("#id_number-msg")
    clerk.keyboard.press("Control+A")
    clerk.keyboard.type(citizen.id_number)
    assert clerk.inner_text("#id_number-msg") == "号码格式正确"
    clerk.keyboard.press("Tab")
    clerk.keyboard.type(citizen.name)
    clerk.keyboard.press("Tab")
    clerk.keyboard.type(citizen.phone)
    clerk.keyboard.press("Tab")
    clerk.keyboard.press("Tab")
    clerk.keyboard.press("Space")
    clerk.keyboard.press("Tab")
    clerk.keyboard.press("Enter")
    clerk.wait_for_selector("#materials")
    assert "电子证照已调取" in clerk.inner_text("#materials")
    fits(clerk, f"case ({viewport})")
    accessible(clerk, "case page")
    shoot(clerk, f"{viewport}-clerk-case")
    scan = tmp_path / "form.pdf"
    scan.write_bytes(PDF)
    clerk.set_input_files("#file-application_form", str(scan))
    clerk.locator("#material-application_form button").focus()
    clerk.keyboard.press("Enter")
    clerk.wait_for_selector("#material-application_form .state-provided")
    # -- accept: the receipt, with the query code printed this once --------------------------------------
    receipts: list[str] = []
    clerk.on("response", lambda r: receipts.append(r.text()) if r.url.endswith("/receipt") else None)
    weight.reset()
    clerk.locator("#accept").focus()
    clerk.keyboard.press("Enter")
    clerk.wait_for_selector("#query-code")
    assert weight.total() <= PAGE_BUDGET_BYTES, weight.sizes
    number = clerk.inner_text("#notice-number")
    code = clerk.inner_text("#query-code")
    qr_url = f"{live.base_url}/track#n={number}&c={code}"
    assert str(qr_svg(qr_url)) in receipts[-1], "the QR code encodes the status page with number and code"
    accessible(clerk, "receipt")
    shoot(clerk, f"{viewport}-receipt")
    clerk.emulate_media(media="print")
    assert clerk.locator(".bar").is_hidden() and clerk.locator("#notice").is_visible()
    if viewport == "desktop":
        clerk.pdf(path=str(ARTIFACTS / "receipt-a4.pdf"), format="A4", print_background=False)
    clerk.emulate_media(media="screen")
    clerk.reload()
    assert clerk.locator("#query-code").count() == 0 and code not in clerk.content()
    clerk_ctx.close()

    # -- the citizen scans the QR code -------------------------------------------------------------------
    citizen_ctx = context(browser, live, viewport)
    phone = citizen_ctx.new_page()
    weight = Weigher(phone)
    phone.goto(qr_url)
    phone.wait_for_selector("#status")
    assert phone.url == f"{live.base_url}/track", "the fragment is gone from the address bar"
    assert phone.inner_text("#status") == "已受理"
    assert "还剩" in phone.inner_text("#days-left")
    assert citizen.name not in phone.content()
    assert weight.total() <= PAGE_BUDGET_BYTES, weight.sizes
    fits(phone, f"status ({viewport})")
    accessible(phone, "status page")
    shoot(phone, f"{viewport}-status-accepted")

    # -- the officer completes the case ------------------------------------------------------------------
    officer_ctx = context(browser, live, viewport)
    officer = officer_ctx.new_page()
    officer.goto("/console")
    officer.fill("#token", live.tokens["officer"])
    officer.click("#sign-in-form button")
    officer.wait_for_selector("#queue")
    accessible(officer, "officer queue")
    shoot(officer, f"{viewport}-officer-queue")
    officer.click(f"#queue-rows tr:has-text('{number}') a")
    officer.wait_for_selector("#transition-form")
    officer.check("input[name=to][value=in_review]")
    officer.click("#transition-form button")
    officer.wait_for_selector("#case-status:has-text('审查中')")
    officer.check("input[name=to][value=approved]")
    officer.fill("#result", "准予，自次月起按月发放护理补贴")
    officer.click("#transition-form button")
    officer.wait_for_selector("#case-status:has-text('办结（准予）')")
    accessible(officer, "officer case")
    shoot(officer, f"{viewport}-officer-completed")
    officer_ctx.close()

    # -- the citizen sees it completed and evaluates once (scanning again opens a new page) -----------------
    phone.close()
    phone = citizen_ctx.new_page()
    phone.goto(qr_url)
    phone.wait_for_selector("#evaluation-form")
    assert phone.inner_text("#status") == "办结（准予）"
    accessible(phone, "evaluation form")
    fits(phone, f"evaluation ({viewport})")
    phone.check("input[name=level][value='1']")
    phone.check("input[name=attitude][value='1']")
    phone.fill("#comment", "窗口让我跑了两次")
    shoot(phone, f"{viewport}-evaluation-form")
    phone.click("#evaluation-form button")
    phone.wait_for_selector("#evaluation-done")
    assert "15 个工作日内" in phone.inner_text("#evaluation-done")
    shoot(phone, f"{viewport}-evaluation-done")
    phone.close()
    phone = citizen_ctx.new_page()
    phone.goto(qr_url)
    phone.wait_for_selector("#evaluated")
    assert phone.locator("#evaluation-form").count() == 0
    citizen_ctx.close()


def test_no_match_page_and_zoom(browser: Browser, live: LiveGateway) -> None:
    for name, options in (("zoom200", ZOOMED), ("phone", VIEWPORTS["phone"])):
        ctx = context(browser, live, options)
        page = ctx.new_page()
        page.goto("/track")
        fits(page, f"track form ({name})")
        accessible(page, "track form")
        page.fill("#tracking_number", "430302200001010000017")
        page.fill("#code", "ZZZZZZZZ")
        page.click("#track-form button")
        page.wait_for_selector("#result-message")
        assert "未查到办件" in page.inner_text("#result-message")
        fits(page, f"no match ({name})")
        accessible(page, "no match")
        shoot(page, f"{name}-no-match")
        page.goto("/console")
        fits(page, f"sign-in ({name})")
        ctx.close()


def test_swagger_loads_offline(browser: Browser, live: LiveGateway) -> None:
    ctx = context(browser, live, "desktop")
    outside: list[str] = []

    def refuse(route: Route) -> None:
        outside.append(route.request.url)
        route.abort()

    ctx.route(re.compile(r"^(?!" + re.escape(live.base_url) + r").*"), refuse)
    page = ctx.new_page()
    page.goto("/schema/swagger")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "OneWindow" in page.inner_text(".swagger-ui .info .title")
    assert not outside, outside
    shoot(page, "swagger")
    ctx.close()


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_supervisor_dashboard(browser: Browser, live: LiveGateway, viewport: str) -> None:
    ctx = context(browser, live, viewport)
    page = ctx.new_page()
    page.goto("/console")
    page.fill("#token", live.tokens["supervisor"])
    page.click("#sign-in-form button")
    page.wait_for_selector("#by-department")
    assert "报表" in page.inner_text("main")
    fits(page, f"supervision ({viewport})")
    accessible(page, "supervision")
    shoot(page, f"{viewport}-supervision")
    page.click("#sign-out")
    page.wait_for_selector("#sign-in-form")
    ctx.close()
