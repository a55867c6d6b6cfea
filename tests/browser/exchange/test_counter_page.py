"""Browser: a clerk scans (types) a member code, sees balance and pending points, picks items,
confirms, prints the receipt; a member whose points are still in review is refused in plain words;
the member card carries a QR code of the code."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from shared.auth import Principal, Role, issue_token
from tests.integration.exchange.support import COMMUNITY, code, list_item, subject, supermarket

pytestmark = pytest.mark.e2e
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", tempfile.gettempdir()))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


async def test_a_clerk_redeems_at_the_counter_and_prints_the_receipt(stack: tuple[str, str]) -> None:
    async with supermarket(stack) as market:
        # given a resident with 40 certified points, one with only pending points, and two items on the shelf
        xu, wang = subject(1), subject(2)
        xu = xu.model_copy(update={"name": "徐科品"})
        wang = wang.model_copy(update={"name": "王芳"})
        await market.roster([xu, wang], pending={wang.subject_id: 30}, name="幸福社区")
        await market.certify(COMMUNITY, "2026-11", {xu.subject_id: 40, wang.subject_id: 2})
        await market.wait_for_balance(xu.subject_id, 40)
        clerk = market.clerk()
        list_item(clerk, "rice", price=10, stock=20, name="大米")
        list_item(clerk, "soap", price=3, stock=5, name="洗衣皂", limits={"per_subject": 2})
        cookie = issue_token(Principal(sub="clerk-1", role=Role.clerk, community=COMMUNITY, name="李收银"))

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(locale="zh-CN", viewport={"width": 1200, "height": 900})
                await context.add_cookies([{"name": "points_token", "value": cookie, "url": market.service.url}])
                page = await context.new_page()
                await page.goto(f"{market.service.url}/counter")
                # when the clerk types the code as a scanner would (lower case, no dashes) and presses Enter
                await page.fill("#code", code(xu.subject_id).lower().replace("-", ""))
                await page.press("#code", "Enter")
                # then the member, the spendable and the pending points show
                await expect(page.locator("#member-name")).to_have_text("徐科品")
                await expect(page.locator("#spendable")).to_have_text("40")
                await expect(page.locator("#items")).to_contain_text("洗衣皂")
                await expect(page.locator("#items")).to_contain_text("每月每人限 2")
                await page.click("[aria-label='加一件 大米']")
                await page.click("[aria-label='加一件 大米']")
                await page.click("[aria-label='加一件 洗衣皂']")
                await expect(page.locator("#total")).to_have_text("23")
                await page.screenshot(path=str(SCREENSHOTS / "exchange-counter-basket.png"), full_page=True)
                await page.click("#confirm")
                await expect(page.locator("#message")).to_contain_text("兑换成功", timeout=20_000)
                await expect(page.locator("#spendable")).to_have_text("17")
                await expect(page.locator("#items")).to_contain_text("18 袋")
                body = await page.locator("body").inner_text()
                assert xu.subject_id not in body and "clerk-1" not in body  # names, never ids
                await page.screenshot(path=str(SCREENSHOTS / "exchange-counter-done.png"), full_page=True)
                # the receipt prints
                await page.click("#receipt-link")
                await expect(page.locator("#total")).to_have_text("23")
                await expect(page.locator("#receipt")).to_contain_text("徐科品")
                await expect(page.locator("#receipt")).to_contain_text("收银员：李收银")
                await expect(page.locator("#status")).to_have_text("已兑换")
                await page.screenshot(path=str(SCREENSHOTS / "exchange-receipt.png"), full_page=True)
                await page.emulate_media(media="print")
                await expect(page.locator("header")).to_be_hidden()
                await page.emulate_media(media="screen")

                # when a member whose points are mostly in review asks for rice, then the refusal says so
                await page.goto(f"{market.service.url}/counter")
                await page.fill("#code", code(wang.subject_id))
                await page.press("#code", "Enter")
                await expect(page.locator("#pending")).to_have_text("30")
                await page.click("[aria-label='加一件 大米']")
                await page.click("#confirm")
                await expect(page.locator("#message")).to_contain_text("审核中", timeout=20_000)
                await expect(page.locator("#spendable")).to_have_text("2")
                await page.screenshot(path=str(SCREENSHOTS / "exchange-counter-refused.png"), full_page=True)

                # an unknown code is named as such
                await page.fill("#code", "HZ-00000-00000")
                await page.press("#code", "Enter")
                await expect(page.locator("#message")).to_contain_text("查无此会员码")

                # the member card: the code and its QR code (SVG drawn by the server)
                await page.goto(f"{market.service.url}/cards/{code(xu.subject_id)}")
                await expect(page.locator("#member-name")).to_have_text("徐科品")
                await expect(page.locator("#member-code")).to_have_text(code(xu.subject_id))
                await expect(page.locator("#qr svg")).to_have_count(1)
                await page.screenshot(path=str(SCREENSHOTS / "exchange-member-card.png"), full_page=True)
            finally:
                await browser.close()
