"""Ranking a category of subjects over a period. Pure: scores and the roster in, entries out.

Rules (domain.md, "Rankings and what follows from them"):
- standard competition ranking (1, 2, 2, 4); "top N" is rank <= N, so ties at N are all in;
- "bottom N" ranks from the lowest score with the same tie rule (``from_bottom``);
- a subject is ranked in a period only if registered for the whole of it; otherwise it is listed
  as not ranked, with the reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from services.ranking.domain.periods import Period

JOINED_MID_PERIOD = "joined_mid_period"
MOVED_OUT_MID_PERIOD = "moved_out_mid_period"


@dataclass(frozen=True)
class Member:
    """A subject as the ranking sees it (from the roster events)."""

    subject_id: str
    community_id: str
    registered_on: dt.date
    moved_out_on: dt.date | None = None


@dataclass(frozen=True)
class Entry:
    subject_id: str
    score: int
    rank: int | None  # None: not ranked
    from_bottom: int | None
    not_ranked: str | None = None  # the reason code when rank is None


def not_ranked_reason(member: Member, period: Period) -> str | None:
    return _reason(member, period.first_day, period.last_day)


def _reason(member: Member, first: dt.date, last: dt.date) -> str | None:
    if member.registered_on > first:
        return JOINED_MID_PERIOD
    if member.moved_out_on is not None and member.moved_out_on <= last:
        return MOVED_OUT_MID_PERIOD
    return None


def competition_ranks(scores: Iterable[int], *, descending: bool = True) -> dict[int, int]:
    """score -> rank: 1 + how many scores are strictly better (1, 2, 2, 4)."""
    ordered = sorted(scores, reverse=descending)
    ranks: dict[int, int] = {}
    for i, s in enumerate(ordered):
        ranks.setdefault(s, i + 1)
    return ranks


def rank(members: Iterable[Member], scores: Mapping[str, int], period: Period) -> tuple[Entry, ...]:
    """Every member of the category, ranked ones first (rank, then subject id), then the not ranked."""
    ranked: list[tuple[str, int]] = []
    unranked: list[Entry] = []
    first, last = period.first_day, period.last_day
    for m in members:
        score = scores.get(m.subject_id, 0)
        reason = _reason(m, first, last)
        if reason is None:
            ranked.append((m.subject_id, score))
        else:
            unranked.append(Entry(m.subject_id, score, None, None, reason))
    top = competition_ranks(s for _, s in ranked)
    bottom = competition_ranks((s for _, s in ranked), descending=False)
    entries = sorted((Entry(sid, s, top[s], bottom[s]) for sid, s in ranked), key=lambda e: (e.rank, e.subject_id))
    return tuple(entries) + tuple(sorted(unranked, key=lambda e: e.subject_id))


def top(entries: Iterable[Entry], n: int) -> tuple[Entry, ...]:
    return tuple(e for e in entries if e.rank is not None and e.rank <= n)


def bottom(entries: Iterable[Entry], n: int) -> tuple[Entry, ...]:
    return tuple(e for e in entries if e.from_bottom is not None and e.from_bottom <= n)


def digest(entries: Iterable[Entry]) -> str:
    """sha256 over the whole ranking, in its order: equal digests = the same ranking."""
    h = hashlib.sha256()
    for e in entries:
        h.update(f"{e.subject_id}\t{e.score}\t{e.rank}\t{e.from_bottom}\t{e.not_ranked}\n".encode())
    return h.hexdigest()
