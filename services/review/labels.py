"""Chinese names for the pages: the one vocabulary (shared.vocabulary), under the names templates use."""

from collections.abc import Mapping

from shared.vocabulary import CATEGORIES, DIMENSIONS, ITEM_STATUSES, NOTICE_CHANNELS, OBJECTION_STATUSES, ROLES

CHANNELS = NOTICE_CHANNELS
STATUS: Mapping[str, str] = {**ITEM_STATUSES, **OBJECTION_STATUSES}

__all__ = ["CATEGORIES", "CHANNELS", "DIMENSIONS", "ROLES", "STATUS", "zh"]


def zh(table: Mapping[str, str], code: str) -> str:
    return table.get(code, code)
