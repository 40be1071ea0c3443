"""Incident linking: is a new ticket about the same happening as an open incident (same
category family, same place or nearby, recent, similar words), and is a message a repeat of
the reporter's previous one. Pure: candidates and `now` come from the caller."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Sequence

from normalizer.text import content_stems, fold, norm_label
from normalizer.types import TicketDraft

# Top-level LAPOR category -> coarse family for incident keys.
_FAMILIES = {
    "PEKERJAAN UMUM DAN PENATAAN RUANG": "infrastruktur",
    "LINGKUNGAN HIDUP DAN KEHUTANAN": "lingkungan",
    "KETENTERAMAN, KETERTIBAN UMUM, DAN PELINDUNGAN MASYARAKAT": "ketertiban",
    "KESEHATAN": "kesehatan",
    "CORONA VIRUS": "kesehatan",
    "PERHUBUNGAN": "perhubungan",
    "ENERGI DAN SUMBER DAYA ALAM": "utilitas",
    "SOSIAL DAN KESEJAHTERAAN": "sosial",
    "KESETARAAN GENDER DAN SOSIAL INKLUSIF": "sosial",
    "KEPENDUDUKAN": "kependudukan",
    "PENDIDIKAN DAN KEBUDAYAAN": "pendidikan",
    "KEKERASAN DI SATUAN PENDIDIKAN (SEKOLAH, KAMPUS, LEMBAGA KURSUS)": "pendidikan",
    "PERTANIAN DAN PETERNAKAN": "pertanian",
    "KETENAGAKERJAAN": "ketenagakerjaan",
    "EKONOMI DAN KEUANGAN": "ekonomi",
    "PERLINDUNGAN KONSUMEN": "ekonomi",
    "TEKNOLOGI INFORMASI DAN KOMUNIKASI": "tik",
    "POLITIK DAN HUKUM": "hukum",
    "PEMBANGUNAN DESA, DAERAH TERTINGGAL, DAN TRANSMIGRASI": "desa",
}
_PUNCT_RE = re.compile(r"[^\w]+", re.UNICODE)


@lru_cache(maxsize=4096)
def category_family(category: str | None) -> str | None:
    """Coarse family of a category ("KESEHATAN" -> "kesehatan"); unknown -> its own slug."""
    if not category:
        return None
    label = norm_label(category)
    fam = _FAMILIES.get(label)
    if fam:
        return fam
    return _PUNCT_RE.sub("-", label.lower()).strip("-") or None


@dataclass(frozen=True)
class IncidentCandidate:
    id: int
    category: str | None
    kecamatan_code: str | None
    desa_code: str | None
    latitude: float | None
    longitude: float | None
    last_at: datetime
    text: str


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    r = 6371.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def _terms(text: str) -> set[str]:
    return {t for t in content_stems(fold(text)) if len(t) > 2}


def text_similarity(a: str, b: str) -> float:
    """Overlap coefficient of content stems (short reports vs long hotline notes)."""
    ta, tb = _terms(a), _terms(b)
    if not ta or not tb:
        return 0.0
    return len(ta & tb) / min(len(ta), len(tb))


def match_incident(draft: TicketDraft, now: datetime, candidates: Sequence[IncidentCandidate],
                   window_hours: float = 24, radius_km: float = 2.0) -> int | None:
    """Id of the open incident this draft belongs to, or None.

    Same family is required, and recency within the window; then the same desa (or coordinates
    within radius_km) with some shared words, or only the same kecamatan with many shared words."""
    fam = category_family(draft.category)
    if fam is None:
        return None
    now = _aware(now)
    place = draft.place
    best: tuple[float, int] | None = None
    for c in candidates:
        if category_family(c.category) != fam:
            continue
        age_h = (now - _aware(c.last_at)).total_seconds() / 3600.0
        if age_h > window_hours or age_h < -1:
            continue
        near = False
        if place.latitude is not None and place.longitude is not None and c.latitude is not None \
                and c.longitude is not None:
            near = distance_km(place.latitude, place.longitude, c.latitude, c.longitude) <= radius_km
        same_desa = bool(place.desa_code) and place.desa_code == c.desa_code
        same_kec = bool(place.kecamatan_code) and place.kecamatan_code == (c.kecamatan_code or "")
        sim = text_similarity(draft.text_clean, c.text)
        if (same_desa or near) and sim >= 0.2:
            score = 2.0 + sim
        elif same_kec and not place.desa_code and sim >= 0.5:
            score = 1.0 + sim
        elif same_kec and sim >= 0.6:
            score = 1.0 + sim
        else:
            continue
        score -= age_h / (10 * window_hours)
        if best is None or score > best[0]:
            best = (score, c.id)
    return best[1] if best else None


def _squash(text: str) -> str:
    return " ".join(_PUNCT_RE.sub(" ", fold(text)).split())


def is_repeat(text_a: str, text_b: str) -> bool:
    """The same message sent again (whitespace, case and punctuation do not matter)."""
    a, b = _squash(text_a), _squash(text_b)
    if not a or not b:
        return False
    if a == b:
        return True
    # a resend with a tiny edit (an added "tolong", a typo fixed)
    if min(len(a), len(b)) >= 40:
        from difflib import SequenceMatcher

        return SequenceMatcher(None, a, b, autojunk=False).ratio() >= 0.95
    return False
