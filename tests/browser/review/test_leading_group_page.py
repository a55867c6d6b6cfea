"""Browser: the leading group certifies a month with the quorum's sign-off, records the notice, sees the notice page."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from shared.auth import Role
from shared.events.declarations import CommunityRegistered, SubjectRegistered
from tests.integration.review.support import ReviewUnderTest, declaration, eventually, review_service
from tests.support.services import token

pytestmark = pytest.mark.e2e

MONTH = "2026-09"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
async def review(stack: tuple[str, str]) -> AsyncIterator[ReviewUnderTest]:
    async with review_service(stack) as r:
        await r.feed.publish([
            CommunityRegistered(community_id="c-01", name="幸福社区"),
            *(SubjectRegistered(subject_id=f"s-{n:02d}", community_id="c-01", kind="person", name=name,
                                categories=("resident",), registered_on=dt.date(2026, 1, 1))
              for n, name in enumerate(("徐科品", "王芳", "李明"))),
            *(declaration(i, day=dt.date(2026, 9, 5 + i), subject=f"s-{i % 3:02d}", points=3 + i,
                        category=("resident", "volunteer")[i % 2],
                        dimension=("community_building", "volunteer_service")[i % 2])
              for i in range(6))])
        r.set_clock(dt.datetime(2026, 9, 30, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))))
        yield r


async def object_to_an_item(review: ReviewUnderTest) -> str:
    resident = token("r-1", Role.declarant, "c-01", "s-00")
    secretary = token("sec", Role.secretary, "c-01")
    async with httpx.AsyncClient(base_url=review.service.url) as http:
        r = await http.post("/objections", headers={"idempotency-key": str(uuid.uuid4()),
                                                    "authorization": f"Bearer {resident}"},
                            json={"community_id": "c-01", "month": MONTH, "item_id": "c-01-i000001",
                                  "reason": "那天不在社区"})
        assert r.status_code == 201, r.text
        oid: str = r.json()["objection_id"]

        async def queued() -> bool:
            got = await http.get("/objections", params={"community_id": "c-01", "status": "open"},
                                 headers={"authorization": f"Bearer {secretary}"})
            return any(o["objection_id"] == oid for o in got.json()["objections"])
        await eventually(queued, 15, "the objection in the queue")
    return oid


async def test_certify_with_the_quorum_then_see_the_notice_page(review: ReviewUnderTest) -> None:
    async with httpx.AsyncClient(base_url=review.service.url,
                                 headers={"authorization": f"Bearer {token('rec-2', Role.recorder, 'c-01')}"}) as http:
        async def arrived() -> bool:
            r = await http.get("/items", params={"community_id": "c-01", "month": MONTH})
            return len(r.json()["items"]) == 6
        await eventually(arrived, 15, "the month's items")
        for i in range(6):
            r = await http.post(f"/items/c-01-i{i:06d}/verification", json={"decision": "verified"},
                                headers={"idempotency-key": str(uuid.uuid4())})
            assert r.status_code == 201, r.text

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(locale="zh-CN")
            await context.add_cookies([{"name": "points_token", "value": token("sec", Role.secretary, "c-01"),
                                        "url": review.service.url}])
            page = await context.new_page()
            await page.goto(f"{review.service.url}/leading-group?community_id=c-01&month={MONTH}")
            await expect(page.locator("#month-state")).to_have_text("未认定")
            await expect(page.locator("#glance")).to_contain_text("志愿服务参与")
            await expect(page.locator("#waiting")).to_contain_text("没有待审核的条目")

            # the secretary alone is not a quorum: the page says why, and nothing is certified
            await page.fill("#co-signer", "")
            await page.evaluate("document.getElementById('co-signer').removeAttribute('required')")
            await page.click("#certify-button")
            await expect(page.locator("#message")).to_contain_text("至少 1 名其他领导小组成员")

            await page.fill("#co-signer", token("lg-1", Role.leading_group, "c-01"))
            await page.click("#certify-button")
            await expect(page.locator("#month-state")).to_have_text("已认定", timeout=20_000)
            await expect(page.locator("#certified-count")).to_have_text("6")

            await page.click("#post-notice")
            await expect(page.locator("#month-state")).to_have_text("公示中", timeout=20_000)
            async with context.expect_page() as opened:
                await page.click("#notice-link")
            notice = await opened.value
            await expect(notice.locator("h1")).to_have_text("幸福社区 2026年9月 积分认定结果公示")
            await expect(notice.locator("#notice-lines tbody tr")).to_have_count(3)  # three subjects
            await expect(notice.locator("#notice-lines tbody")).to_contain_text("徐科品")
            await expect(notice.locator("#notice-lines tfoot")).to_contain_text(str(sum(3 + i for i in range(6))))
            await expect(notice.locator(".foot")).to_contain_text("党员微信群")
            await expect(notice.locator("#window-closes")).to_have_text("2026-10-07 10:00")
            await notice.click("text=查看条目明细")
            await expect(notice.locator("#notice-items tbody tr")).to_have_count(6)
            await expect(notice.locator("#notice-items")).to_contain_text("c-01-i000001")
            await notice.emulate_media(media="print")
            await expect(notice.locator(".noprint")).to_be_hidden()

            # a resident objects; the objection shows in the queue; the secretary upholds it on the page
            oid = await object_to_an_item(review)
            await page.reload()
            row = page.locator(f"tr[data-objection='{oid}']")
            await expect(row).to_contain_text("那天不在社区")
            await row.locator(".reason").fill("核实属实，扣回")
            await row.locator(".uphold").click()
            await expect(page.locator("#objections")).to_contain_text("暂无待处理的异议", timeout=20_000)
        finally:
            await browser.close()
