"""Properties of the counter, whatever the order of donations, redemptions and returns:
stock and balances never go negative, and both always equal what the events say."""

from __future__ import annotations

import pytest
from hypothesis import given as for_all
from hypothesis import settings
from hypothesis import strategies as st

from services.exchange.domain.evolve import fold
from shared.errors import Rejected
from shared.events.exchange import Limits, Redeemed, RedemptionReturned, StockReceived
from tests.unit.exchange.support import donated, given, listed, redeem_command, shopper, when_redeeming, when_returning

pytestmark = pytest.mark.unit

ITEMS = ("rice", "oil", "soap")
SUBJECTS = ("s-1", "s-2", "s-3")
step = st.one_of(
    st.tuples(st.just("donate"), st.sampled_from(ITEMS), st.integers(1, 4)),
    st.tuples(st.just("redeem"), st.sampled_from(SUBJECTS),
              st.lists(st.tuples(st.sampled_from(ITEMS), st.integers(-1, 4)), min_size=1, max_size=3)),
    st.tuples(st.just("return"), st.integers(0, 30)),
)


@settings(max_examples=300, deadline=None)
@for_all(st.lists(step, max_size=40), st.lists(st.integers(0, 40), min_size=3, max_size=3))
def test_whatever_happens_stock_and_balances_stay_non_negative_and_match_the_log(
        steps: list[tuple], balances: list[int]) -> None:
    # given three items (one limited to 2 per month) and three shoppers with some certified points
    start = dict(zip(SUBJECTS, balances, strict=True))
    state = given([listed("rice", 3), listed("oil", 5, Limits(per_subject=2)), listed("soap", 1)],
                  *(shopper(s, spendable=b) for s, b in start.items()))
    log: list = []
    for n, s in enumerate(steps):
        # when each step is decided on the state its predecessors left
        if s[0] == "donate":
            events: list | Rejected = [donated(s[1], s[2], donation=f"d{n}")]
        elif s[0] == "redeem":
            events = when_redeeming(state, s[1], redeem_command(*s[2], rid=f"r{n}"))
        else:
            redeemed = [e.redemption_id for e in log if isinstance(e, Redeemed)]
            rid = redeemed[s[1] % len(redeemed)] if redeemed else "none"
            events = when_returning(state, rid)
        if not isinstance(events, Rejected):
            state = fold(state, events)
            log += events
    # then nothing is negative, nothing is returned twice, and every figure is what the log says
    returns = [e.redemption_id for e in log if isinstance(e, RedemptionReturned)]
    assert len(returns) == len(set(returns))
    for item in ITEMS:
        received = sum(e.quantity for e in log if isinstance(e, StockReceived) and e.item_id == item)
        moved = sum((1 if isinstance(e, Redeemed) else -1) * line.quantity for e in log
                    if isinstance(e, Redeemed | RedemptionReturned) for line in e.lines if line.item_id == item)
        assert state.shelves[item].in_stock == received - moved >= 0
    for subject, certified in start.items():
        spent = sum((1 if isinstance(e, Redeemed) else -1) * e.total_points for e in log
                    if isinstance(e, Redeemed | RedemptionReturned) and e.subject_id == subject)
        assert state.shoppers[subject].spendable == certified - spent >= 0
        assert all(units <= 2 for (item, _), units in state.shoppers[subject].used.items() if item == "oil")
