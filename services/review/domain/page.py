"""A page of looks (``DecideItems``): every look through the one ``decide``, on the state the looks
before it leave behind. Not all-or-nothing: a refused look changes nothing and the others stand. No I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from shared.errors import Rejected
from shared.events.review import ReviewEvent

from .commands import DecideItem, Rules
from .decide import decide
from .evolve import ReviewState, fold

PAGE_LIMIT = 500  # looks per request: one page of the office's list, well inside the request body limit


@dataclass(frozen=True, slots=True)
class LookDecided:
    """What one look of the page came to: its events, or the refusal ``decide`` gave it."""

    look: DecideItem
    events: tuple[ReviewEvent, ...] = ()
    refused: Rejected | None = None


def size_problem(looks: int) -> Rejected | None:
    if not looks:
        return Rejected("请至少提交一条审核结论", status=422, code="page_empty")
    if looks > PAGE_LIMIT:
        return Rejected(f"一次最多提交 {PAGE_LIMIT} 条审核结论（本次 {looks} 条），请分批提交", status=422,
                        code="page_too_large", limit=PAGE_LIMIT)
    return None


def page_problem(item_ids: Sequence[str]) -> Rejected | None:
    """Why a page cannot be decided at all (then nothing is), in zh-CN; None when it can."""
    if problem := size_problem(len(item_ids)):
        return problem
    twice = sorted(i for i, n in Counter(item_ids).items() if n > 1)
    if twice:
        return Rejected(f"同一条目在本次提交中出现了多次：{'、'.join(twice[:10])}{' 等' if len(twice) > 10 else ''}"
                        "；每条只能有一个结论", status=422, code="duplicate_item", items=twice[:100])
    return None


def decide_page(looks: Sequence[DecideItem], state: ReviewState, rules: Rules
                ) -> tuple[list[LookDecided], ReviewState]:
    """Each look's outcome, in the order given, and the state the accepted ones leave behind."""
    outcomes = []
    for look in looks:
        got = decide(look, state, rules)
        if isinstance(got, Rejected):
            outcomes.append(LookDecided(look, refused=got))
            continue
        outcomes.append(LookDecided(look, tuple(got)))
        state = fold(state, got)
    return outcomes, state
