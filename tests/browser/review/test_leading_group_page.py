"""Browser: two members sign the month from their own sessions and it is certified; the notice follows."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from shared.auth import Principal, Role, issue_token
from shared.events.declarations import CommunityRegistered, SubjectRegistered
from tests.integration.review.support import ReviewUnderTest, declaration, eventually, review_service
from tests.support.services import token

pytestmark = pytest.mark.e2e

MONTH = "2026-09"
SECRETARY = issue_token(Principal(sub="sec", role=Role.secretary, community="c-01", name="张书记"))
MEMBER = issue_token(Principal(sub="lg-1", role=Role.leading_group, community="c-01", name="李委员"))
RECORDER = issue_token(Principal(sub="rec-2", role=Role.recorder, community="c-01", name="赵记录员"))
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", tempfile.gettempdir()))
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

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            url = f"{review.service.url}/leading-group?community_id=c-01&month={MONTH}"
            # a recorder verifies the waiting list a page at a time
            recorder = await session(browser, review, RECORDER)
            await recorder.goto(url)
            await expect(recorder.locator("#waiting tr[data-item]")).to_have_count(6)
            await recorder.check("#verify-confirm")
            await recorder.screenshot(path=str(SCREENSHOTS / "review-leading-group-recorder.png"), full_page=True)
            await recorder.click("#verify-page")
            await expect(recorder.locator("#message")).to_have_text("已核实 6 条。", timeout=20_000)
            await expect(recorder.locator("#waiting")).to_contain_text("没有待审核的条目")
            await recorder.context.close()

            page = await session(browser, review, SECRETARY)
            context = page.context
            await page.goto(url)
            await expect(page.locator("#month-state")).to_have_text("未认定")
            await expect(page.locator("#glance")).to_contain_text("志愿服务参与")
            await expect(page.locator("#waiting")).to_contain_text("没有待审核的条目")
            await expect(page.locator("#who")).to_have_text("张书记")

            # a body carrying someone else's token is refused, whoever sends it
            refused = await page.evaluate("""async token => {
                const r = await fetch("/certifications", {method: "POST", credentials: "same-origin",
                  headers: {"content-type": "application/json", "idempotency-key": crypto.randomUUID()},
                  body: JSON.stringify({community_id: "c-01", month: "2026-09", digest: "0".repeat(64),
                                        co_signer_tokens: [token]})});
                return [r.status, await r.json()]; }""", MEMBER)
            assert refused[0] == 422 and refused[1]["error"] == "credential_in_body", refused

            # the secretary signs from her own session: one signature is not a quorum
            await page.check("#confirm")
            await page.click("#certify-button")
            await expect(page.locator("#message")).to_contain_text("还需 1 名其他领导小组成员签署", timeout=20_000)
            await expect(page.locator("#signatures")).to_contain_text("张书记", timeout=20_000)
            await expect(page.locator("#month-state")).to_have_text("未认定")
            await expect(page.locator("#signed-already")).to_contain_text("等待其他成员")
            await page.screenshot(path=str(SCREENSHOTS / "review-leading-group-one-signature.png"), full_page=True)

            # the member signs the same list from his own session: the month is certified
            member = await session(browser, review, MEMBER)
            await member.goto(url)
            await expect(member.locator("#who")).to_have_text("李委员")
            await expect(member.locator("#signatures")).to_contain_text("有效")
            await member.check("#confirm")
            await member.click("#certify-button")
            await expect(member.locator("#month-state")).to_have_text("已认定", timeout=20_000)
            await expect(member.locator("#certified-count")).to_have_text("6")
            await expect(member.locator("#signed-by")).to_have_text("李委员、张书记")
            body = await member.locator("body").inner_text()
            assert "c-01-i" not in body and "s-0" not in body and "lg-1" not in body  # names, never ids
            await member.screenshot(path=str(SCREENSHOTS / "review-leading-group-certified.png"), full_page=True)
            await page.reload()
            await expect(page.locator("#month-state")).to_have_text("已认定")

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


async def session(browser: Browser, review: ReviewUnderTest, token: str) -> Page:
    """One person's own browser session (their own login cookie)."""
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1200, "height": 900})
    await context.add_cookies([{"name": "points_token", "value": token, "url": review.service.url}])
    return await context.new_page()


async def test_the_clock_cannot_be_moved_where_it_is_not_allowed(review: ReviewUnderTest) -> None:
    admin = token("admin", Role.county_admin, "*")
    async with httpx.AsyncClient(base_url=review.service.url) as http:
        r = await http.post("/admin/clock", json={"now": "2026-10-08T10:00:00+08:00", "reason": "试一试"},
                            headers={"idempotency-key": str(uuid.uuid4()), "authorization": f"Bearer {admin}"})
    assert r.status_code == 403 and r.json()["error"] == "clock_not_adjustable", r.text
