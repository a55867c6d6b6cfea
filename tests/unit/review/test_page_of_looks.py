"""A page of looks: given items (and events), when a recorder decides a page, then each look's outcome is
what the single look would be, on the state the looks before it leave; refusals say why and change nothing."""

from __future__ import annotations

import datetime as dt

import pytest

from services.review.domain import commands as c
from services.review.domain.decide import decide
from services.review.domain.page import PAGE_LIMIT, decide_page, page_problem
from shared.errors import Rejected
from shared.events.review import ItemCarriedOver, ItemRejected, ItemReturned, ItemVerified, MonthCertified

from .support import RULES, given, item

pytestmark = pytest.mark.unit

RECORDER = c.Actor("rec-2", "c-01")
T = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)


def look(n: int, decision: str = "verified", note: str = "", who: c.Actor = RECORDER) -> c.DecideItem:
    return c.DecideItem(f"i-{n:03d}", decision, note, who)  # type: ignore[arg-type]


def test_given_a_page_when_decided_then_each_look_is_what_the_single_look_would_be() -> None:
    state = given([item(1), item(2), item(3, by="rec-2"), item(4, "verified"), item(5)])
    page = [look(1), look(2, "rejected", "重复申报"), look(3), look(4, "rejected", "x"), look(6), look(5, "rejected")]
    outcomes, after = decide_page(page, state, RULES)
    assert [o.look for o in outcomes] == page
    for o in outcomes:  # the same decide, the same answer
        single = decide(o.look, state, RULES)
        assert (o.refused if o.refused else list(o.events)) == single
    assert [o.refused.code for o in outcomes if o.refused] == ["own_item", "already_decided", "item_not_found",
                                                               "reason_required"]
    assert all(o.refused.reason for o in outcomes if o.refused)
    assert [type(e) for o in outcomes for e in o.events] == [ItemVerified, ItemRejected]
    assert {k: i.status for k, i in after.items.items()} == {
        "i-001": "verified", "i-002": "rejected", "i-003": "submitted", "i-004": "verified", "i-005": "submitted"}


def test_given_another_communitys_items_then_those_looks_are_refused_and_the_rest_stand() -> None:
    outcomes, after = decide_page([look(1, who=c.Actor("rec-9", "c-02")), look(2, "returned", "缺少照片")],
                                  given([item(1), item(2)]), RULES)
    assert outcomes[0].refused is not None and outcomes[0].refused.code == "forbidden_community"
    assert outcomes[1].events == (ItemReturned(item_id="i-002", community_id="c-01", month="2026-11",
                                               to_fix="缺少照片"),)
    assert after.items["i-001"].status == "submitted"


def test_given_a_certified_month_then_late_items_on_the_page_are_carried_then_decided() -> None:
    certified = MonthCertified(community_id="c-01", month="2026-11", count=0, total=0, digest="d",
                               signed_by=("sec",), certified_at=T)
    outcomes, after = decide_page([look(1), look(2)], given([item(1), item(2)], [certified]), RULES)
    assert [[type(e) for e in o.events] for o in outcomes] == [[ItemCarriedOver, ItemVerified]] * 2
    assert {i.month for i in after.items.values()} == {"2026-12"}


def test_an_empty_page_an_oversized_page_and_an_item_twice_are_refused_whole() -> None:
    assert page_problem(["i-001"]) is None
    problems = [page_problem([]), page_problem([f"i-{n}" for n in range(PAGE_LIMIT + 1)]),
                page_problem(["i-001", "i-002", "i-001"])]
    assert [p.code for p in problems if isinstance(p, Rejected)] == ["page_empty", "page_too_large", "duplicate_item"]
    assert all(isinstance(p, Rejected) and p.status == 422 and p.reason for p in problems)
    twice = page_problem(["i-001", "i-002", "i-001"])
    assert twice is not None and "i-001" in twice.reason
