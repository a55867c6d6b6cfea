"""The recorder's page in a real headless Chromium against the real declarations service process.

Given a community with a building head registered through the API,
when a recorder signs in, finds him, and enters an oral declaration (double-clicking "提交"),
then the page says so, the ledger table shows one item (channel 口头, entered by the recorder),
a refused entry shows the API's own reason, and a deduction (reason required) lowers the total.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from shared.auth import Principal, Role, issue_token
from shared.settings import Settings
from tests.support.services import RunningService, running_service

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOT = "/tmp/recorder-page.png"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


def seed_community(svc: RunningService) -> None:
    admin = issue_token(Principal(sub="county-admin", role=Role.county_admin, community="*"))
    with svc.client(admin) as http:
        r = http.post("/communities", json={"community_id": "c-01", "name": "同心社区"},
                      headers={"idempotency-key": str(uuid.uuid4())})
        assert r.status_code == 201, r.text
        r = http.post("/subjects", headers={"idempotency-key": str(uuid.uuid4())}, json={
            "community_id": "c-01", "subjects": [
                {"subject_id": "p-xkp", "kind": "person", "name": "徐科品",
                 "categories": ["building_head", "party_member"], "gender": "male"},
                {"subject_id": "p-wxy", "kind": "person", "name": "王秀英", "categories": ["resident"],
                 "gender": "female"},
            ]})
        assert r.status_code == 201, r.text


async def sign_in(page: Page, svc: RunningService, token: str) -> None:
    await page.goto(f"{svc.url}/recorder")
    await page.fill("#token", "not-a-token")
    await page.click("form button[type=submit]")
    await expect(page.locator(".message.error")).to_contain_text("登录凭证无效")
    await page.fill("#token", token)
    await page.click("form button[type=submit]")
    await expect(page.locator("header .who")).to_contain_text("李记录（记录员）")


async def test_a_recorder_enters_an_oral_declaration_and_sees_it_in_the_ledger(
    settings: Settings, browser: Browser
) -> None:
    today = dt.datetime.now(ZoneInfo(settings.timezone)).date()
    recorder = issue_token(Principal(sub="rec-li", role=Role.recorder, community="c-01", name="李记录"))
    with running_service("declarations", settings) as svc:
        seed_community(svc)
        page = await browser.new_page(viewport={"width": 1366, "height": 900}, locale="zh-CN")
        page_errors: list[str] = []
        page.on("pageerror", lambda e: page_errors.append(str(e)))
        await sign_in(page, svc, recorder)

        # find the subject
        await page.fill("#q", "徐科")
        await page.click("#search-form button")
        await page.click("button[data-subject-id=p-xkp]")
        await expect(page.locator("#selected")).to_contain_text("徐科品")
        await expect(page.locator("#occurred_on")).to_have_value(today.isoformat())

        # an over-the-cap entry is refused with the API's reason (POLICY_TALK: 10 a talk, 60 a month)
        await page.select_option("#rule", "POLICY_TALK")
        await page.fill("#quantity", "7")
        await page.click("#submit")
        with svc.client(recorder) as http:
            refused = http.post("/declarations", headers={"idempotency-key": str(uuid.uuid4())}, json={
                "community_id": "c-01", "subject_id": "p-xkp", "rule_code": "POLICY_TALK", "quantity": 7,
                "occurred_on": today.isoformat(), "channel": "oral", "description": "", "evidence": []})
        assert refused.status_code == 422, refused.text
        await expect(page.locator("#message.error")).to_have_text(refused.json()["reason"])

        # a valid oral declaration, double-clicked: counted once
        await page.fill("#quantity", "2")
        await expect(page.locator("#category-row")).to_be_visible()  # a talk counts for 楼栋长 or 党员
        await page.select_option("#category", "party_member")
        await page.fill("#description", "在 3 号楼宣讲搬迁政策")
        await page.fill("#evidence", "IMG_001.jpg")
        await page.dblclick("#submit")
        await expect(page.locator("#message.success")).to_contain_text("徐科品")
        await expect(page.locator("#message.success")).to_contain_text("+20")

        row = page.locator("#ledger-table tbody tr[data-item-id]")
        await expect(row).to_have_count(1, timeout=10_000)
        await expect(row).to_contain_text("徐科品")
        await expect(row).to_contain_text("宣讲搬迁政策")
        await expect(row).to_contain_text("党员")
        await expect(row).to_contain_text("+20")
        await expect(row).to_contain_text("口头")
        await expect(row).to_contain_text("rec-li")
        await expect(row).to_contain_text("IMG_001.jpg")
        await expect(page.locator("#totals tbody")).to_contain_text("+20")

        # a deduction needs a reason; the total follows
        await page.click("#tab-deduction")
        await page.select_option("#rule", "LITTERING")
        await page.fill("#evidence", "IMG_002.jpg")
        await page.click("#submit")
        await expect(page.locator("#message.error")).to_have_text("减分必须填写原因")
        await page.fill("#description", "楼道堆放杂物，两次提醒未清理")
        await page.click("#submit")
        await expect(page.locator("#message.success")).to_contain_text("-5")
        await expect(row).to_have_count(2, timeout=10_000)
        await expect(page.locator("#totals tbody")).to_contain_text("+15")
        csv_href = await page.get_attribute("#csv", "href")
        assert csv_href is not None and csv_href.startswith("/ledger.csv?community_id=c-01")
        await page.screenshot(path=SCREENSHOT, full_page=True)

        with svc.client(recorder) as http:
            items = http.get("/ledger", params={"community_id": "c-01"}).json()["items"]
        assert [(i["subject_id"], i["rule_code"], i["category"], i["points"], i["channel"], i["entered_by"])
                for i in items] == [("p-xkp", "POLICY_TALK", "party_member", 20, "oral", "rec-li"),
                                    ("p-xkp", "LITTERING", "building_head", -5, "office", "rec-li")]
        assert items[1]["reason"] == "楼道堆放杂物，两次提醒未清理"
        assert page_errors == []
