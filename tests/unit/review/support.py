"""Given / when / then for review decisions: given events (and items), when a command, then events or a refusal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pytest

from services.review.domain.commands import Command, Rules
from services.review.domain.decide import decide
from services.review.domain.evolve import ReviewState, fold
from services.review.domain.model import Item, Signer
from shared.errors import Rejected
from shared.events.review import ReviewEvent

TZ = "Asia/Shanghai"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
RULES = Rules(tz=TZ)
SECRETARY = Signer("sec", "secretary", "c-01", "张书记")
MEMBER = Signer("lg-1", "leading_group", "c-01", "李委员")
MEMBER2 = Signer("lg-2", "leading_group", "c-01", "王委员")


def item(n: int, status: str = "submitted", points: int = 5, by: str = "rec-1", month: str = "2026-11") -> Item:
    return Item(f"i-{n:03d}", "c-01", month, f"s-{n % 3}", "resident", "community_building", "R1", points,
                by, by, status)  # type: ignore[arg-type]


def given(items: Sequence[Item] = (), events: Sequence[ReviewEvent] = ()) -> ReviewState:
    return fold(ReviewState("c-01", items={i.item_id: i for i in items}), events)


def when(state: ReviewState, command: Command, rules: Rules = RULES) -> list[Any]:
    got = decide(command, state, rules)
    assert not isinstance(got, Rejected), f"refused: {got.code} {got.reason}"
    return got


def refused(state: ReviewState, command: Command, rules: Rules = RULES) -> Rejected:
    got = decide(command, state, rules)
    assert isinstance(got, Rejected), f"accepted: {got}"
    assert got.reason  # a zh-CN reason for the page
    return got


@pytest.fixture
def rules() -> Rules:
    return RULES
