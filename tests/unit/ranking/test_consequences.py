"""Consequences and talks, given / when / then: four consecutive quarters, the year, lost eligibility."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from services.ranking.domain import periods
from services.ranking.domain.consequences import changes, consecutive, consequences
from services.ranking.domain.ranking import Member, rank
from services.ranking.domain.talks import nominees, talks_due

QUARTERS = [periods.quarter(2026, q) for q in (1, 2, 3, 4)]
YEAR = periods.year(2026)


def ranking(scores: dict[str, int], period: periods.Period) -> tuple:
    return rank([Member(s, "c-01", dt.date(2025, 1, 1)) for s in scores], scores, period)


def cadres(per_quarter: list[dict[str, int]]) -> dict:
    return {("community_cadre", q.code): ranking(s, q) for q, s in zip(QUARTERS, per_quarter, strict=False)}


BASE = {f"x{i}": 10 + i for i in range(8)}  # x7 17 … x0 10


def test_given_a_cadre_top_3_in_four_quarters_then_promotion_priority() -> None:
    r = cadres([BASE | {"star": 99}] * 4)
    assert consequences(r, QUARTERS, None)[("star", "promotion_priority")] == "2026-Q1..2026-Q4"


def test_given_a_cadre_top_3_three_quarters_then_4th_then_no_priority() -> None:
    r = cadres([BASE | {"c": 99}] * 3 + [BASE | {"c": 14}])  # x7 17, x6 16, x5 15, then c: 4th
    assert [e.rank for e in r[("community_cadre", "2026-Q4")] if e.subject_id == "c"] == [4]
    got = consequences(r, QUARTERS, None)
    assert ("c", "promotion_priority") not in got


def test_given_only_three_closed_quarters_then_nobody_gets_priority() -> None:
    r = cadres([BASE | {"star": 99}] * 3)
    assert not any(c == "promotion_priority" for _, c in consequences(r, QUARTERS[:3], None))


def test_given_a_gap_between_quarters_then_not_consecutive() -> None:
    assert consecutive([QUARTERS[0], QUARTERS[1], QUARTERS[3], periods.quarter(2027, 1)], 4) is None


def test_given_a_party_member_bottom_5_four_quarters_then_loses_eligibility_even_if_top_of_the_year() -> None:
    members = {f"p{i}": 50 + i for i in range(10)} | {"weak": -5}
    r = {("party_member", q.code): ranking(members, q) for q in QUARTERS}
    r[("party_member", YEAR.code)] = ranking(members | {"weak": 500}, YEAR)
    got = consequences(r, QUARTERS, YEAR)
    assert ("weak", "eligibility_lost") in got
    assert ("weak", "excellent_eligible") not in got
    # the place is not handed down: the top 5 of the year less the one who lost eligibility
    assert {s for s, c in got if c == "excellent_eligible"} == {"p9", "p8", "p7", "p6"}


def test_given_a_consequence_gone_then_changes_says_withdrawn() -> None:
    granted, withdrawn = changes({("a", "excellent_eligible"): "2026"}, {("b", "excellent_eligible"): "2026"})
    assert granted == [("b", "excellent_eligible", "2026")]
    assert withdrawn == [("a", "excellent_eligible", "2026")]


def test_given_a_subject_on_both_lists_then_encouragement_only() -> None:
    due = talks_due(ranking({"a": 5, "b": 3}, QUARTERS[0]))
    assert due == [("a", "encouragement"), ("b", "encouragement")]


def test_given_a_month_then_top_3_encouraged_bottom_3_reminded() -> None:
    due = dict(talks_due(ranking({c: i for i, c in enumerate("abcdefgh")}, QUARTERS[0])))
    assert [s for s, t in due.items() if t == "encouragement"] == ["h", "g", "f"]
    assert sorted(s for s, t in due.items() if t == "reminder") == ["a", "b", "c"]


def test_given_zero_scores_then_nobody_is_nominated() -> None:
    assert nominees(ranking({"a": 0, "b": 0}, QUARTERS[0])) == []


@given(st.dictionaries(st.sampled_from("abcdefghij"), st.integers(-20, 20), min_size=1))
def test_property_nobody_is_both_excellent_and_without_eligibility(scores: dict[str, int]) -> None:
    r = {("party_member", q.code): ranking(scores, q) for q in QUARTERS} | {("party_member", "2026"):
                                                                           ranking(scores, YEAR)}
    got = consequences(r, QUARTERS, YEAR)
    lost = {s for s, c in got if c == "eligibility_lost"}
    assert not lost & {s for s, c in got if c in ("excellent_eligible", "promotion_priority")}


@given(st.dictionaries(st.sampled_from("abcdefghij"), st.integers(-20, 20)))
def test_property_talk_list_names_each_subject_once(scores: dict[str, int]) -> None:
    due = talks_due(ranking(scores, QUARTERS[0]))
    assert len({s for s, _ in due}) == len(due)
