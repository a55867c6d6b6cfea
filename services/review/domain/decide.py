"""``decide(command, state, rules) -> events | Rejected``: the one entry to every review decision. No I/O."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.errors import Rejected
from shared.events.review import ReviewEvent

from . import certification, notice, verification
from .commands import (
    CarryLateItems,
    Command,
    CorrectItem,
    DecideItem,
    FinaliseMonth,
    OverruleItem,
    PostNotice,
    RaiseObjection,
    ResolveObjection,
    Rules,
    SignMonth,
)
from .evolve import ReviewState

_DECIDERS: dict[type, Callable[[Any, ReviewState, Rules], list[ReviewEvent]]] = {
    DecideItem: verification.decide,
    OverruleItem: verification.overrule,
    SignMonth: certification.sign,
    PostNotice: notice.post_notice,
    RaiseObjection: notice.raise_objection,
    ResolveObjection: notice.resolve,
    CorrectItem: notice.correct,
    FinaliseMonth: notice.finalise,
    CarryLateItems: lambda _cmd, state, _rules: verification.carry_late_items(state),
}


def decide(command: Command, state: ReviewState, rules: Rules) -> list[ReviewEvent] | Rejected:
    """The events the command yields on this state (possibly none), or the refusal with its reason."""
    try:
        return _DECIDERS[type(command)](command, state, rules)
    except Rejected as refused:
        return refused
