"""The month's talks (励志谈心室) and the Ten Most Beautiful nominations. Pure.

Defaults (domain.md): top 3 / bottom 3 per category per community per month; a subject on both
lists gets the encouragement talk only. Nominations: the top 3 of the ranking behind each award
(a category; "woman": women among individual subjects by their month's points across categories).
"""

from __future__ import annotations

from collections.abc import Sequence

from services.ranking.domain.ranking import Entry, bottom, top

TALK_TOP, TALK_BOTTOM, NOMINEES = 3, 3, 3


def talks_due(entries: Sequence[Entry], n_top: int = TALK_TOP, n_bottom: int = TALK_BOTTOM
              ) -> list[tuple[str, str]]:
    """(subject id, talk) for one category of one community month."""
    encourage = [e.subject_id for e in top(entries, n_top)]
    remind = [e.subject_id for e in bottom(entries, n_bottom) if e.subject_id not in set(encourage)]
    return [(s, "encouragement") for s in encourage] + [(s, "reminder") for s in remind]


def nominees(entries: Sequence[Entry], n: int = NOMINEES) -> list[Entry]:
    """Ranked subjects with a positive score in the top ``n`` (ties at n included)."""
    return [e for e in top(entries, n) if e.score > 0]
