"""Demo of the Love Supermarket (爱心超市) for ``make up``: donors stock the shelves, a few members
redeem at the counter (one returns), and the counter page's address is printed with a clerk's token.

Called from deploy/demo.py after the month is certified. Safe to run again: fixed idempotency keys.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

import httpx

from services.exchange.domain.member_code import member_code
from shared.auth import Role

EXCHANGE_URL = os.environ.get("EXCHANGE_URL", "http://127.0.0.1:8104")

# (item id, name, unit, points per unit, limits)
ITEMS = [
    ("rice", "大米（10斤）", "袋", 50, {}),
    ("oil", "食用油（5升）", "桶", 40, {}),
    ("soap", "洗衣粉", "袋", 10, {"per_subject": 2, "period": "month"}),
    ("schoolbag", "儿童书包", "个", 30, {"categories": ["family", "resident", "party_member"]}),
]
# (donor, item id, quantity)
DONATIONS = [
    ("赫章县爱心企业联合会", "rice", 40), ("县供销合作社", "oil", 30), ("赫章县某发制品有限公司", "soap", 100),
    ("县妇联", "schoolbag", 20), ("爱心人士罗女士", "rice", 10),
]
# (subject, name, [(item id, quantity)])
REDEMPTIONS = [("p-xu", "徐科品", [("rice", 1), ("soap", 2)]), ("p-he", "何志远", [("soap", 1)]),
               ("p-luo", "罗开英", [("oil", 1)]), ("p-zhao", "赵桂兰", [("schoolbag", 1)]),  # not a category it is for
               ("p-xu", "徐科品", [("schoolbag", 1)])]


REFUSALS = ("balance_insufficient", "pending_not_spendable", "category_not_eligible", "limit_reached",
            "out_of_stock")


def run(community: str, token: Any, month: str) -> None:
    """``token(sub, role, name=…)`` signs as deploy/demo.py does; ``month`` the certified month."""
    clerk = token("clerk-ma", Role.clerk, name="马收银员")
    http = httpx.Client(base_url=EXCHANGE_URL, timeout=30, headers={"authorization": f"Bearer {clerk}"})

    def post(path: str, body: dict[str, Any], key: str, refusals: tuple[str, ...] = ("item_exists",)) -> dict[str, Any]:
        r = http.post(path, json=body, headers={"idempotency-key": f"demo-exchange-{key}"})
        if r.status_code not in (200, 201) and r.json().get("error") not in refusals:
            raise SystemExit(f"demo: exchange {path} refused ({r.status_code}): {r.text}")
        return r.json()  # type: ignore[no-any-return]

    xu = member_code("p-xu")
    deadline = time.monotonic() + 60  # the certified month reaches the exchange service through Kafka
    while True:
        r = http.get(f"/members/{xu}")
        if (r.status_code == 200 and r.json()["spendable"] > 0) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    for item_id, name, unit, price, limits in ITEMS:
        post("/catalogue/items", {"item_id": f"{community}-{item_id}", "community_id": community, "name": name,
                                  "unit": unit, "price": price, "limits": limits}, f"item-{item_id}")
    # received on the first day after the certified month: the same request whenever the demo runs again
    first = dt.date.fromisoformat(f"{month}-01")
    received_on = (first + dt.timedelta(days=32)).replace(day=1).isoformat()
    for n, (donor, item_id, quantity) in enumerate(DONATIONS):
        post("/donations", {"item_id": f"{community}-{item_id}", "donor": donor, "quantity": quantity,
                            "received_on": received_on}, f"donation-{received_on}-{n}")
    answers = []
    for n, (subject, name, lines) in enumerate(REDEMPTIONS):  # a refusal is part of the demo: its reason is printed
        answer = post("/redemptions", {"member_code": member_code(subject), "counter": "counter-1",
                                       "lines": [{"item_id": f"{community}-{i}", "quantity": q} for i, q in lines]},
                      f"redeem-{month}-{n}", refusals=REFUSALS)
        answers.append(answer)
        print(f"  counter: {name} "
              + (f"redeemed {answer['total_points']} points" if "redemption_id" in answer else answer["reason"]))
    done = [a for a in answers if a.get("redemption_id")]
    if done:
        post(f"/redemptions/{done[-1]['redemption_id']}/return", {"reason": "尺寸不合适，整单退回"},
             f"return-{month}", refusals=("already_returned",))
    stats = http.get(f"/statistics/{community}/{dt.date.today():%Y-%m}").json()
    print(f"demo: 爱心超市 {len(ITEMS)} items from {len(DONATIONS)} donations; {len(done)} redemptions, 1 returned; "
          f"this month {stats.get('items_exchanged')} items by {stats.get('residents')} residents, "
          f"{stats.get('points_spent')} points")
    print(f"  supermarket counter  {EXCHANGE_URL}/login?token={clerk}&next=/counter   (徐科品's code: {xu})")
    print(f"  member card          {EXCHANGE_URL}/cards/{xu}")
