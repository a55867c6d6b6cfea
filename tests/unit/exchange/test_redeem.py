"""The counter's decisions, given / when / then."""

from __future__ import annotations

import datetime as dt

import pytest

from services.exchange.domain.evolve import evolve, fold
from services.exchange.domain.member_code import member_code, normalise
from shared.errors import Rejected
from shared.events.exchange import DateWindow, Limits, PriceChanged, Redeemed
from tests.unit.exchange.support import (
    DAY,
    T0,
    donated,
    given,
    listed,
    redeem_command,
    shopper,
    when_redeeming,
    when_returning,
)

pytestmark = pytest.mark.unit


def code_of(result: object) -> str:
    assert isinstance(result, Rejected), result
    return result.code


def test_given_stock_and_points_when_redeeming_then_one_redemption_at_the_price_in_force() -> None:
    state = given([listed(price=10), donated(quantity=5)], shopper(spendable=30))
    events = when_redeeming(state, "s-1", redeem_command(("rice", 2, 10)))
    assert isinstance(events, list)
    [ev] = events
    assert isinstance(ev, Redeemed) and ev.total_points == 20 and ev.month == "2026-12"
    after = fold(state, events)
    assert after.shelves["rice"].in_stock == 3 and after.shoppers["s-1"].spendable == 10


@pytest.mark.parametrize(("spendable", "pending", "code"), [(5, 0, "balance_insufficient"),
                                                            (5, 50, "pending_not_spendable")])
def test_given_too_few_points_when_redeeming_then_refused_and_pending_named(spendable: int, pending: int,
                                                                              code: str) -> None:
    state = given([listed(price=10), donated()], shopper(spendable=spendable, pending=pending))
    assert code_of(when_redeeming(state, "s-1", redeem_command(("rice", 1)))) == code


def test_given_little_stock_when_redeeming_more_then_refused_as_out_of_stock() -> None:
    state = given([listed(price=1), donated(quantity=2)], shopper())
    assert code_of(when_redeeming(state, "s-1", redeem_command(("rice", 3)))) == "out_of_stock"


def test_given_a_price_change_from_a_stated_time_then_it_applies_from_then_and_a_stale_price_is_refused() -> None:
    later = T0 + dt.timedelta(days=1)
    state = given([listed(price=10), donated(),
                   PriceChanged(item_id="rice", community_id="c-01", change_id="p1", price=15, effective_from=later)],
                  shopper())
    before = when_redeeming(state, "s-1", redeem_command(("rice", 1, 10)))
    assert isinstance(before, list) and isinstance(before[0], Redeemed) and before[0].total_points == 10
    after = redeem_command(("rice", 1, 10), at=later, day=later.date())
    assert code_of(when_redeeming(state, "s-1", after)) == "price_changed"


def test_given_a_limit_per_month_when_exceeded_then_refused_and_a_return_gives_the_allowance_back() -> None:
    state = given([listed(price=1, limits=Limits(per_subject=1)), donated()], shopper())
    first = when_redeeming(state, "s-1", redeem_command(("rice", 1), rid="r1"))
    assert isinstance(first, list)
    state = fold(state, first)
    assert code_of(when_redeeming(state, "s-1", redeem_command(("rice", 1), rid="r2"))) == "limit_reached"
    returned = when_returning(state, "r1")
    assert isinstance(returned, list)
    state = fold(state, returned)
    assert isinstance(when_redeeming(state, "s-1", redeem_command(("rice", 1), rid="r3")), list)


def test_given_category_and_window_limits_then_others_and_other_days_are_refused() -> None:
    limits = Limits(categories=("party_member",), windows=(DateWindow(first_day=DAY, last_day=DAY),))
    state = given([listed(price=1, limits=limits), donated()], shopper(), shopper("s-2", categories=("party_member",)))
    assert code_of(when_redeeming(state, "s-1", redeem_command(("rice", 1)))) == "category_not_eligible"
    tomorrow = redeem_command(("rice", 1), day=DAY + dt.timedelta(days=1))
    assert code_of(when_redeeming(state, "s-2", tomorrow)) == "outside_period"
    assert isinstance(when_redeeming(state, "s-2", redeem_command(("rice", 1))), list)


def test_given_a_member_of_another_community_when_a_clerk_redeems_then_refused() -> None:
    state = given([listed(), donated()], shopper(community="c-02"))
    assert code_of(when_redeeming(state, "s-1", redeem_command(("rice", 1)))) == "other_community"


@pytest.mark.parametrize("quantity", [0, -1])
def test_given_a_quantity_below_one_then_refused(quantity: int) -> None:
    state = given([listed(), donated()], shopper())
    assert code_of(when_redeeming(state, "s-1", redeem_command(("rice", quantity)))) == "quantity_invalid"


def test_given_an_unknown_item_then_refused() -> None:
    state = given([listed(), donated()], shopper())
    assert code_of(when_redeeming(state, "s-1", redeem_command(("soap", 1)))) == "item_not_found"


def test_given_a_redemption_when_returned_twice_or_never_redeemed_then_refused() -> None:
    state = given([listed(price=3), donated()], shopper(spendable=10))
    state = fold(state, when_redeeming(state, "s-1", redeem_command(("rice", 2))))  # type: ignore[arg-type]
    returned = when_returning(state, "r1")
    assert isinstance(returned, list)
    state = fold(state, returned)
    assert state.shoppers["s-1"].spendable == 10 and state.shelves["rice"].in_stock == 5
    assert code_of(when_returning(state, "r1")) == "already_returned"
    assert code_of(when_returning(state, "nope")) == "redemption_not_found"
    assert code_of(when_returning(evolve(state, listed("soap")), "r1", clerk_community="c-02")) == "forbidden_community"


def test_member_codes_are_stable_printable_and_forgiving_when_typed() -> None:
    code = member_code("s-0001")
    assert code == member_code("s-0001") and code.startswith("HZ-") and len(code) == 14
    assert normalise(code.lower().replace("-", " ")) == code
    assert normalise(code.replace("0", "o")) == code
    assert normalise("HZ-123") is None and normalise("") is None
    assert len({member_code(f"s-{n}") for n in range(20_000)}) == 20_000
