"""What follows from the rankings (domain.md). Pure: rankings in, each subject's consequences out.

- seed: party members in the top 5 of the year may be rated excellent (可评优秀);
- seed: cadres (community_cadre) in the top 3 for four consecutive quarters get promotion priority;
- seed: party members and cadres in the bottom 5 for four consecutive quarters lose eligibility for
  both; lost eligibility outweighs a top place.
Choices where the brief is silent: a quarter counts once its three months are certified (a
"closed" quarter); the four quarters are the latest closed ones and must follow each other; the
year is the latest year with a certified month, ranked over its certified months so far.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.ranking.domain.periods import Period, previous_quarter
from services.ranking.domain.ranking import Entry, bottom, top

PARTY_MEMBER, CADRE = "party_member", "community_cadre"


@dataclass(frozen=True)
class Rules:
    excellent_top: int = 5
    promotion_top: int = 3
    promotion_quarters: int = 4
    loss_bottom: int = 5
    loss_quarters: int = 4


Rankings = Mapping[tuple[str, str], Sequence[Entry]]  # (category, period code) -> entries


def consecutive(closed: Sequence[Period], n: int) -> tuple[Period, ...] | None:
    """The latest ``n`` closed quarters if they follow each other, else None."""
    if len(closed) < n:
        return None
    last = sorted(closed)[-n:]
    for a, b in itertools.pairwise(last):
        if previous_quarter(b) != a:
            return None
    return tuple(last)


def _in_all(rankings: Rankings, category: str, quarters: Sequence[Period], pick: str, n: int) -> set[str]:
    sets = []
    for q in quarters:
        entries = rankings.get((category, q.code), ())
        chosen = top(entries, n) if pick == "top" else bottom(entries, n)
        sets.append({e.subject_id for e in chosen})
    return set.intersection(*sets) if sets else set()


def consequences(rankings: Rankings, closed_quarters: Sequence[Period], year: Period | None,
                 rules: Rules = Rules()) -> dict[tuple[str, str], str]:
    """(subject id, consequence) -> basis (the periods it rests on), for every consequence in force."""
    out: dict[tuple[str, str], str] = {}
    lost: set[str] = set()
    loss_quarters = consecutive(closed_quarters, rules.loss_quarters)
    if loss_quarters:
        basis = f"{loss_quarters[0].code}..{loss_quarters[-1].code}"
        for category in (PARTY_MEMBER, CADRE):
            for sid in _in_all(rankings, category, loss_quarters, "bottom", rules.loss_bottom):
                lost.add(sid)
                out[(sid, "eligibility_lost")] = basis
    promo_quarters = consecutive(closed_quarters, rules.promotion_quarters)
    if promo_quarters:
        basis = f"{promo_quarters[0].code}..{promo_quarters[-1].code}"
        for sid in _in_all(rankings, CADRE, promo_quarters, "top", rules.promotion_top) - lost:
            out[(sid, "promotion_priority")] = basis
    if year is not None:
        for e in top(rankings.get((PARTY_MEMBER, year.code), ()), rules.excellent_top):
            if e.subject_id not in lost:
                out[(e.subject_id, "excellent_eligible")] = year.code
    return out


def changes(before: Mapping[tuple[str, str], str], after: Mapping[tuple[str, str], str]
            ) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(granted, withdrawn) as sorted (subject, consequence, basis) triples."""
    granted = sorted((s, c, b) for (s, c), b in after.items() if (s, c) not in before)
    withdrawn = sorted((s, c, b) for (s, c), b in before.items() if (s, c) not in after)
    return granted, withdrawn
