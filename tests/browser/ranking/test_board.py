"""Browser: the public board shows the rankings and follows a newly certified month live (within 1 s)."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from shared.auth import Role
from shared.settings import Settings
from tests.integration.ranking.support import County, Outbox, eventually
from tests.support.services import running_service, token

pytestmark = pytest.mark.e2e
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", tempfile.gettempdir()))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
OLD = dt.date(2024, 12, 1)
ROSTER = [("s-xu", "徐科品", ("party_member", "building_head"), OLD, "male"),
          ("s-ji", "吉正学", ("party_member", "community_cadre"), OLD, "male"),
          ("s-luo", "罗开英", ("party_member", "volunteer"), OLD, "female"),
          ("s-li", "李国强", ("community_cadre",), OLD, "male"),
          ("s-zhang", "张阿妹", ("resident",), OLD, "female"),
          ("s-wang", "王老三", ("resident",), dt.date(2025, 2, 10), "male")]


def points(month: str, boost: str = "") -> dict[tuple[str, str], int]:
    base = {("s-xu", "party_member"): 60, ("s-ji", "party_member"): 40, ("s-luo", "party_member"): 35,
            ("s-xu", "building_head"): 20, ("s-ji", "community_cadre"): 30, ("s-li", "community_cadre"): 25,
            ("s-zhang", "resident"): 12, ("s-wang", "resident"): 8, ("s-luo", "volunteer"): 18}
    if boost:
        base[(boost, "party_member")] = 200
    return base


async def test_board_follows_a_new_certified_month(settings: Settings) -> None:
    declarations, review = await Outbox.start(settings, "declarations"), await Outbox.start(settings, "review")
    county = County(declarations, review)
    try:
        await county.register(ROSTER)
        for m in ("2025-01", "2025-02", "2025-03"):
            await county.certify(m, points(m))
        with running_service("ranking", settings) as svc, svc.client() as http:
            async def ranked() -> bool:
                r = http.get("/rankings", params={"scope": "c-01", "category": "party_member", "period": "2025-03"})
                return r.status_code == 200
            await eventually(ranked, 60, "the first rankings")
            r = http.get("/rankings", params={"scope": "c-01", "category": "resident", "period": "2025-Q1"})
            assert [e["status"] for e in r.json()["entries"]] == ["第 1 名", "不参与排名（期间中途加入）"]
            for bad, code in ((("scope", "nowhere"), 404), (("period", "2025-13"), 422),
                              (("category", "alien"), 422), (("period", "2031"), 422)):
                params = {"scope": "c-01", "category": "party_member", "period": "2025"} | dict([bad])
                got = http.get("/rankings", params=params)
                assert got.status_code == code and got.json()["reason"], got.text
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = await browser.new_page(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
                await page.goto(f"{svc.url}/board?community=c-01")
                await expect(page.locator("#month-rankings")).to_contain_text("徐科品")
                await expect(page.locator("#live")).to_contain_text("实时更新中")
                await page.screenshot(path=str(SCREENSHOTS / "ranking-board-before.png"), full_page=True)
                # when: April is certified, with 罗开英 far ahead
                await county.certify("2025-04", points("2025-04", boost="s-luo"))
                published = time.monotonic()
                first = page.locator('#month-rankings section[data-category="party_member"] li').first
                await expect(first).to_contain_text("罗开英", timeout=10_000)
                took = time.monotonic() - published
                await expect(page.locator("h2").first).to_contain_text("2025-04")
                print(f"\nboard showed the new ranking {took:.3f}s after MonthCertified was published")
                await page.screenshot(path=str(SCREENSHOTS / "ranking-board.png"), full_page=True)
                await browser.close()
                assert took < 1.0, f"board took {took:.3f}s"
            # the talk list and a talk held once, refused the second time
            staff = token("rec-1", Role.recorder, "c-01")
            talks = http.get("/talks/c-01/2025-04", headers={"authorization": f"Bearer {staff}"}).json()["talks"]
            first_talk = talks[0]
            body = {"community_id": "c-01", "month": "2025-04", "subject_id": first_talk["subject_id"],
                    "talk": first_talk["talk"], "note": "谈话顺利"}
            ok = http.post("/talks", json=body, headers={"authorization": f"Bearer {staff}",
                                                         "idempotency-key": str(uuid.uuid4())})
            assert ok.status_code == 201, ok.text
            again = http.post("/talks", json=body, headers={"authorization": f"Bearer {staff}",
                                                            "idempotency-key": str(uuid.uuid4())})
            assert again.status_code == 409 and "重复" in again.json()["reason"]
            stranger = http.post("/talks", json=body | {"subject_id": "nobody"},
                                 headers={"authorization": f"Bearer {staff}", "idempotency-key": str(uuid.uuid4())})
            assert stranger.status_code == 422 and "名单" in stranger.json()["reason"]
            sec = token("sec", Role.secretary, "c-01")
            refused = http.post("/role-models", json={"community_id": "c-01", "month": "2025-04", "award": "woman",
                                                      "subject_id": "s-li"},
                                headers={"authorization": f"Bearer {sec}", "idempotency-key": str(uuid.uuid4())})
            assert refused.status_code == 422 and "提名" in refused.json()["reason"]
            chosen = http.post("/role-models", json={"community_id": "c-01", "month": "2025-04", "award": "woman",
                                                     "subject_id": "s-luo"},
                               headers={"authorization": f"Bearer {sec}", "idempotency-key": str(uuid.uuid4())})
            assert chosen.status_code == 201, chosen.text
            assert http.get("/role-models/c-01").json()["role_models"][0]["name"] == "罗开英"
            assert "ranking" in str(httpx.get(f"{svc.url}/asyncapi.json").json()["channels"])
            # a subject's rank history, and why: the certified items behind the score and who certified them
            ranks = http.get("/subjects/s-luo/ranks").json()["ranks"]
            assert {"category": "party_member", "category_name": "党员", "period": "2025-04", "score": 200,
                    "rank": 1, "not_ranked": None} in ranks
            why = http.get("/subjects/s-luo/why", params={"period": "2025-Q2"},
                           headers={"authorization": f"Bearer {staff}"}).json()
            assert why["total"] == 218 and len(why["items"]) == 2
            assert [(c["month"], c["signer_names"]) for c in why["certifications"]] == [("2025-04", ["书记", "组员"])]
            other = token("r-1", Role.declarant, "c-01", "s-zhang")
            assert http.get("/subjects/s-luo/why", params={"period": "2025"},
                            headers={"authorization": f"Bearer {other}"}).status_code == 403
    finally:
        await declarations.close()
        await review.close()
