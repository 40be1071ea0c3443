"""Public ticket codes: short enough to type in an SMS, no ambiguous characters."""
from __future__ import annotations

import re
import secrets

# No 0/O, 1/I/L: a citizen reading the code aloud or typing it on a keypad cannot confuse them.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 7  # 31**7 ~ 2.7e10 codes
_CODE_RE = re.compile(rf"^[{ALPHABET}]{{{LENGTH}}}$")


_SPACE = len(ALPHABET) ** LENGTH


def new_code() -> str:
    """A uniformly random code: one draw from the OS's random source, written in base 31
    (one draw instead of one per character: this runs for every message taken in)."""
    n = secrets.randbelow(_SPACE)
    chars = []
    for _ in range(LENGTH):
        n, d = divmod(n, len(ALPHABET))
        chars.append(ALPHABET[d])
    return "".join(chars)


def clean_code(text: str) -> str | None:
    """Normalise what a citizen typed (lower case, spaces, dashes) into a code, or None."""
    s = re.sub(r"[\s\-#.]", "", text.upper())
    return s if _CODE_RE.match(s) else None
