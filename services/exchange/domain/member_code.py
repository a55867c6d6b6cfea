"""Member codes: the printable, scannable code on a subject's member card (会员码).

The roster has no member code, so it is derived from the subject id in this one place:
``HZ-`` + 10 Crockford base32 characters of sha256(subject id) (50 bits: no collision in a county's
roster), in two groups of five. Typing is forgiving: case, spaces and dashes are ignored, and the
letters people confuse with digits (O, I, L) read as 0 and 1. Codes are county-wide.
"""

from __future__ import annotations

import hashlib
import re

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
PREFIX = "HZ"
_TYPED = re.compile(r"[\s\-_]+")
_SHAPE = re.compile(rf"^{PREFIX}[{ALPHABET}]{{10}}$")


def member_code(subject_id: str) -> str:
    number = int.from_bytes(hashlib.sha256(subject_id.encode()).digest()[:8], "big") >> 14  # 50 bits
    chars = "".join(ALPHABET[(number >> (5 * i)) & 31] for i in reversed(range(10)))
    return f"{PREFIX}-{chars[:5]}-{chars[5:]}"


def normalise(typed: str) -> str | None:
    """The canonical code for what a clerk typed or a scanner sent, or None if it cannot be one."""
    text = _TYPED.sub("", typed).upper().replace("O", "0").replace("I", "1").replace("L", "1")
    text = text.replace("H2", "HZ", 1) if text.startswith("H2") else text  # a 2 typed for the Z of the prefix
    if not _SHAPE.match(text):
        return None
    return f"{PREFIX}-{text[2:7]}-{text[7:]}"
