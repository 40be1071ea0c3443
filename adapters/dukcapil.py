"""Dukcapil SMS keyword formats (`KTP#NIK#NAMA#...`, `KK*...`, `AKTA,...`, `CEK#KTP#NIK`) parsed
into plain fields. Pure: no I/O, no hub, no logging (the fields carry a full NIK, so this module
must never print or log what it parses); anything that is not a keyword format returns None.
"""
from __future__ import annotations

import re
from typing import Any

# Keywords of the Dukcapil gateway (config/trenggalek/routing.yaml `sms_keywords` routes them).
DOCUMENT_KEYWORDS = frozenset({"KTP", "KK", "AKTA", "AKTE", "KIA", "PINDAH", "MATI", "NIK"})
QUERY_KEYWORD = "CEK"
SEPARATORS = "#*,"
_HEAD_RE = re.compile(r"^\s*([A-Za-z]{2,8})\s*([#*,])")
_DIGITS_RE = re.compile(r"[\s.\-]")


def _clean(part: str) -> str:
    return " ".join(part.split())


def _nik(part: str) -> str:
    """The number as digits when it is one (spaces, dots, dashes dropped), else the text as sent."""
    digits = _DIGITS_RE.sub("", part)
    return digits if digits.isdigit() else _clean(part)


def _looks_like_number(part: str) -> bool:
    digits = _DIGITS_RE.sub("", part)
    return digits.isdigit() and len(digits) >= 8


def parse(text: str, keywords: frozenset[str] | set[str] = DOCUMENT_KEYWORDS) -> dict[str, Any] | None:
    """Fields of a keyword SMS, or None for free text.

    `KTP#3503...#Budi Santoso#belum jadi` -> {"keyword": "KTP", "nik": "3503...",
    "nama": "Budi Santoso", "keterangan": "belum jadi", "separator": "#"}.
    `CEK#KTP#3503...` -> {"keyword": "CEK", "dokumen": "KTP", "nik": "3503..."}.
    The separator is the first `#`, `*` or `,` after the keyword, and only that one splits the
    rest, so a name or note may contain the other two. With `,` (common in free text: "KTP, saya
    ...") the format needs a number in the second place to count as a keyword SMS.
    """
    m = _HEAD_RE.match(text or "")
    if not m:
        return None
    keyword, sep = m.group(1).upper(), m.group(2)
    if keyword != QUERY_KEYWORD and keyword not in keywords:
        return None
    parts = [p for p in (text[m.end():]).split(sep)]
    fields: dict[str, Any] = {"keyword": keyword, "separator": sep}
    if keyword == QUERY_KEYWORD:
        # CEK#KTP#NIK (or CEK#NIK): the state of a document application.
        first = _clean(parts[0]).upper() if parts else ""
        if first in keywords:
            fields["dokumen"] = first
            parts = parts[1:]
        if not parts or not _clean(parts[0]):
            return None
        if sep == "," and not _looks_like_number(parts[0]):
            return None
        fields["nik"] = _nik(parts[0])
        rest = sep.join(parts[1:]).strip()
        if rest:
            fields["keterangan"] = _clean(rest)
        return fields
    if not parts or not _clean(parts[0]):
        return None
    if sep == "," and not _looks_like_number(parts[0]):
        return None
    fields["nik"] = _nik(parts[0])
    if len(parts) > 1 and _clean(parts[1]):
        fields["nama"] = _clean(parts[1])
    rest = sep.join(parts[2:]).strip() if len(parts) > 2 else ""
    if rest:
        fields["keterangan"] = _clean(rest)
    return fields
