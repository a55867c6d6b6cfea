"""One immutable record per command, and the rules a decision is made under. No I/O here.

Times are in the command (the handler reads the clock, the domain never does); ids the domain
needs (objection, correction) are made by the handler too, so a decision is a pure function.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.events.review import Channel, Decision

from .model import Signer


@dataclass(frozen=True, slots=True)
class Rules:
    """The county's and the community's settings a decision applies."""

    tz: str = "Asia/Shanghai"
    quorum: int = 2  # default: the secretary plus one other member
    objection_window: dt.timedelta = dt.timedelta(days=7)  # default: 7 days from the first posting
    self_verification: bool = False  # default: nobody verifies what they declared or recorded


@dataclass(frozen=True, slots=True)
class Actor:
    sub: str
    community: str  # "*" for county roles


@dataclass(frozen=True, slots=True)
class DecideItem:
    """A recorder's look at an item: verify, return (with what to fix) or reject (with a reason)."""

    item_id: str
    decision: Decision
    note: str
    actor: Actor


@dataclass(frozen=True, slots=True)
class DecideItems:
    """A page of looks from one reviewer session (office staff verify a page at once): each look is
    decided exactly as the ``DecideItem`` it is; a refused look is reported and the others stand."""

    looks: tuple[DecideItem, ...]


@dataclass(frozen=True, slots=True)
class OverruleItem:
    """A supervisor replaces the recorder's decision (with a reason)."""

    item_id: str
    decision: Decision
    reason: str
    actor: Actor


@dataclass(frozen=True, slots=True)
class SignMonth:
    """One leading-group member signs, from their own session, the digest of the list they saw."""

    community_id: str
    month: str
    digest: str
    signer: Signer
    now: dt.datetime


@dataclass(frozen=True, slots=True)
class PostNotice:
    community_id: str
    month: str
    channels: tuple[Channel, ...]
    now: dt.datetime


@dataclass(frozen=True, slots=True)
class RaiseObjection:
    community_id: str
    month: str
    item_id: str
    resident: str
    resident_community: str
    resident_name: str
    reason: str
    objection_id: str
    now: dt.datetime


@dataclass(frozen=True, slots=True)
class ResolveObjection:
    objection_id: str
    uphold: bool
    delta: int
    reason: str
    correction_id: str
    actor: Actor
    now: dt.datetime


@dataclass(frozen=True, slots=True)
class CorrectItem:
    community_id: str
    item_id: str
    delta: int
    reason: str
    correction_id: str
    now: dt.datetime


@dataclass(frozen=True, slots=True)
class FinaliseMonth:
    community_id: str
    month: str
    now: dt.datetime


@dataclass(frozen=True, slots=True)
class CarryLateItems:
    """The service's own policy: items that reached review after their month was certified are
    carried into the next open month by an explicit event, never left "submitted"."""

    community_id: str


Command = (DecideItem | OverruleItem | SignMonth | PostNotice | RaiseObjection | ResolveObjection | CorrectItem
           | FinaliseMonth | CarryLateItems)
