"""Events owned by the review service (verification, certification, notice, objections).

The review topic is keyed by community id: a community's review history is one ordered stream.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from shared.events import Event, event


class ReviewEvent(Event):
    SERVICE: ClassVar[str] = "review"


@event
class MonthCertified(ReviewEvent):
    """The leading group's sign-off closing a community month; follows one award event per item.

    Consumers treat the month as certified only when this and all ``count`` awards are applied.
    """

    community_id: str
    month: str  # YYYY-MM
    count: int
    total: int
    digest: str  # sha256 over the certified items, in item id order
    signed_by: tuple[str, ...]
    certified_at: dt.datetime
