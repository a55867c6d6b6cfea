"""Rankings, given / when / then: ties, top N, bottom N, partial periods; properties by hypothesis."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ranking.domain import periods
from services.ranking.domain.ranking import Member, bottom, competition_ranks, digest, rank, top
from shared.errors import Rejected

Q4 = periods.parse("2026-Q4")
EARLY = dt.date(2025, 1, 1)


def members(*ids: str, joined: dt.date = EARLY) -> list[Member]:
    return [Member(i, "c-01", joined) for i in ids]


def test_given_a_tie_for_second_when_ranking_then_ranks_read_1_2_2_4() -> None:
    entries = rank(members("a", "b", "c", "d"), {"a": 9, "b": 5, "c": 5, "d": 1}, Q4)
    assert [(e.subject_id, e.rank) for e in entries] == [("a", 1), ("b", 2), ("c", 2), ("d", 4)]
    assert [(e.subject_id, e.from_bottom) for e in entries] == [("a", 4), ("b", 2), ("c", 2), ("d", 1)]


def test_given_a_tie_at_fifth_when_taking_the_top_5_then_both_are_in() -> None:
    scores = {"a": 10, "b": 9, "c": 8, "d": 7, "e": 6, "f": 6, "g": 1}
    entries = rank(members(*scores), scores, Q4)
    assert {e.subject_id for e in top(entries, 5)} == {"a", "b", "c", "d", "e", "f"}


def test_given_a_subject_who_joined_mid_quarter_when_ranking_then_not_ranked_with_the_reason() -> None:
    entries = rank(members("a") + members("late", joined=dt.date(2026, 11, 15)), {"a": 1, "late": 50}, Q4)
    late = next(e for e in entries if e.subject_id == "late")
    assert (late.rank, late.not_ranked) == (None, "joined_mid_period")
    assert top(entries, 1)[0].subject_id == "a"
    # but the whole month of December counts for them
    dec = rank(members("late", joined=dt.date(2026, 11, 15)), {"late": 50}, periods.parse("2026-12"))
    assert dec[0].rank == 1


def test_given_five_or_fewer_when_taking_the_bottom_5_then_everyone_is_in() -> None:
    entries = rank(members("a", "b", "c"), {"a": 3, "b": 2, "c": -4}, Q4)
    assert len(bottom(entries, 5)) == 3 and len(top(entries, 5)) == 3


@pytest.mark.parametrize("bad", ["2026-13", "2026-Q5", "26-11", "2026/11", "abc", ""])
def test_given_a_malformed_period_when_parsing_then_refused_in_chinese(bad: str) -> None:
    with pytest.raises(Rejected) as e:
        periods.parse(bad)
    assert e.value.status == 422 and "期间格式不正确" in e.value.reason


def test_given_a_future_period_then_refused() -> None:
    with pytest.raises(Rejected):
        periods.refuse_future(periods.parse("2027-01"), dt.date(2026, 12, 5))


scores_st = st.dictionaries(st.text("abcdefgh", min_size=1, max_size=3), st.integers(-50, 50), max_size=30)


@given(scores_st)
def test_property_rank_is_one_plus_the_number_strictly_better(scores: dict[str, int]) -> None:
    entries = rank(members(*scores), scores, Q4)
    for e in entries:
        assert e.rank == 1 + sum(s > e.score for s in scores.values())
        assert e.from_bottom == 1 + sum(s < e.score for s in scores.values())


@given(scores_st, st.integers(1, 10))
def test_property_top_n_holds_at_least_n_and_every_tie_at_the_boundary(scores: dict[str, int], n: int) -> None:
    entries = rank(members(*scores), scores, Q4)
    chosen = top(entries, n)
    assert len(chosen) >= min(n, len(scores))
    if chosen:
        floor = min(e.score for e in chosen)
        assert all(e in chosen for e in entries if e.score >= floor)


@given(scores_st)
def test_property_order_of_input_does_not_change_the_ranking(scores: dict[str, int]) -> None:
    ms = members(*scores)
    assert digest(rank(ms, scores, Q4)) == digest(rank(list(reversed(ms)), scores, Q4))


@given(st.lists(st.integers(-5, 5), max_size=20))
def test_property_competition_ranks_skip_after_ties(values: list[int]) -> None:
    ranks = competition_ranks(values)
    for v, r in ranks.items():
        assert r == 1 + sum(x > v for x in values)


class Untouched:
    """A connection that fails the test if a statement is sent."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the county was ranked: conn.{name}")


class NothingPending:
    async def fetch(self, query: str, *args: Any) -> list[Any]:
        assert "rk_county_pending" in query
        return []


async def test_given_a_certification_still_arriving_when_a_batch_settles_then_the_county_waits_for_it() -> None:
    from services.ranking.projection import RankingProjection

    projection = RankingProjection()
    projection.certifying.add(("c-01", "2026-11"))  # its awards applied, its MonthCertified not yet
    assert await projection.settle(Untouched(), more_coming=True) is False  # type: ignore[arg-type]
    # when the runner insists (the log stayed quiet, or a catch-up ends), then it settles, and forgets the hint
    assert await projection.settle(NothingPending(), more_coming=False) is True  # type: ignore[arg-type]
    assert projection.certifying == set()
    # and with nothing arriving, a batch settles at once
    assert await projection.settle(NothingPending(), more_coming=True) is True  # type: ignore[arg-type]
