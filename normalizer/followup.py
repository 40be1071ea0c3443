"""Is a citizen's quick second message a follow-up of their report, or a report of its own?
(issue #13 item 3). Pure: the caller gives the earlier report, the new message's draft, and
the time between them; no clock, database or network.

A follow-up ("tambahan: lubangnya sdh bikin 2 motor jatuh pak", "oh iya lokasinya dket masjid",
"mohon segera ditindak", the second half of a message the phone split mid-sentence) joins the
report; a second matter ("satu lagi pak, lampu PJU di desa Karangan mati") is a new ticket.
Decided in this order, first match wins:

1. a structured keyword SMS (KTP#...) or outside the window            -> new
2. it continues a sentence the earlier message broke off                -> join
3. it opens another matter ("ada lagi", "satu lagi", "laporan lain")    -> new
4. it names another desa/kecamatan (unless it corrects: "ralat", "salah") -> new
5. it is about the report's own place, photo or reporter (lokasinya,
   fotonya, nyusul, atas nama / RT RW)                                  -> join
6. its own clear category of another family                             -> new
7. a follow-up marker (tambahan, lupa, oh iya, maaf, lokasinya, fotonya,
   mohon segera, itu..., a "-nya" reference, atas nama/RT/RW, a short
   "pak/bu" plea, terima kasih)                                         -> join
8. it opens a report of its own ("lapor", "laporan", "melaporkan")      -> new
9. no subject of its own (no clear category; its place, if any, is the
   earlier one's or fills a missing one)                                -> join
10. the same category family and no place of its own                     -> join
11. otherwise (its own clear category and its own place)                -> new
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from normalizer.incidents import category_family
from normalizer.text import fold
from normalizer.types import TicketDraft

DEFAULT_WINDOW_S = 300.0
CONFIDENT = 0.5  # a category the router is less sure of than this is no "subject of its own"


def is_confident(confidence: float, needs_triage: bool) -> bool:
    return not needs_triage and confidence >= CONFIDENT


@dataclass(frozen=True)
class Earlier:
    """What is known of the report a message may follow (its ticket, or its draft)."""

    text: str  # the reporter's last message on it (the place a sentence may have broken off)
    category: str | None  # None when the earlier report had no clear category (triage)
    kecamatan_code: str | None = None
    desa_code: str | None = None


@dataclass(frozen=True)
class Verdict:
    join: bool
    reason: str


_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# SMS spellings of a possessive "-nya": lokasi'y, lokasiny, lokasix, lubang'e (Javanese)
_NYA = re.compile(r"^([a-z]{3,})(?:nya|'nya|'ny|'y|ny|nx|'e)$")
_FILLER = frozenset("""pak bapak bpk bp bu ibu bun min admin mimin kak mas mbak om dik gan sob
oh o eh ya iya iy yaa y ok oke okey nggih njih inggih ngapunten maaf mf mav sorry sori""".split())
# "-nya" words that are no reference to the report ("hanya", "tanya", "sebenarnya")
_NYA_NOT_REF = frozenset("""hanya tanya punya bertanya ditanya sebenarnya biasanya sepertinya
kayaknya rupanya katanya harusnya seharusnya mestinya semestinya misalnya nya""".split())
_STARTS = {
    "tambahan": "tambahan", "tambah": "tambahan", "tmbhn": "tambahan", "tmbh": "tambahan",
    "tambahn": "tambahan", "tmbahan": "tambahan", "nambahin": "tambahan", "nambah": "tambahan",
    "menambahkan": "tambahan", "tambahkan": "tambahan", "lupa": "lupa", "lupaa": "lupa",
    "oiya": "oh iya", "oya": "oh iya", "ohya": "oh iya", "ohiya": "oh iya", "eiya": "oh iya",
    "maaf": "maaf", "mf": "maaf", "mav": "maaf", "ngapunten": "maaf", "sorry": "maaf", "sori": "maaf",
    "itu": "itu", "tsb": "itu", "tersebut": "itu", "td": "itu", "tadi": "itu",
    "lanjutan": "lanjutan", "sambungan": "lanjutan", "lanjut": "lanjutan",
    "dan": "sambung", "serta": "sambung", "yang": "sambung", "yg": "sambung", "sehingga": "sambung",
    "karena": "sambung", "krn": "sambung", "tapi": "sambung", "tp": "sambung", "lalu": "sambung",
    "terus": "sambung", "trus": "sambung", "juga": "sambung", "jg": "sambung", "padahal": "sambung",
    "pdhl": "sambung", "apalagi": "sambung",
}
_TWO = {("oh", "iya"): "oh iya", ("o", "iya"): "oh iya", ("oh", "ya"): "oh iya", ("eh", "iya"): "oh iya",
        ("eh", "ya"): "oh iya", ("o", "ya"): "oh iya", ("atas", "nama"): "identitas",
        ("a", "n"): "identitas", ("nama", "saya"): "identitas", ("nama", "sy"): "identitas",
        ("nama", "pelapor"): "identitas", ("terima", "kasih"): "terima kasih"}
_ANYWHERE = {
    "lupa": "lupa", "nyusul": "menyusul",
    "menyusul": "menyusul", "susul": "menyusul", "disusulkan": "menyusul",
    "ditindaklanjuti": "mohon tindak lanjut", "tindaklanjuti": "mohon tindak lanjut",
    "makasih": "terima kasih", "trims": "terima kasih", "mksh": "terima kasih", "tks": "terima kasih",
    "nuwun": "terima kasih", "suwun": "terima kasih",
}
_PLEA = frozenset("mohon mhn mhon tolong tlg tlng tlong segera cepat secepatnya buruan lekas".split())
_PLEA_VERBS = frozenset("""ditindak ditindaklanjuti ditangani diperbaiki dibantu dicek ditinjau
diproses dibenahi diatasi direspon direspons diperhatikan perhatiannya ditanggapi""".split())
_PLACE_NOUNS = frozenset("""lokasi alamat tempat titik posisi letak lokasinya alamatnya tempatnya
titiknya posisinya letaknya""".split())
_MEDIA_NOUNS = frozenset("foto gambar video vidio poto photo".split())
_IDENTITY = frozenset("rt rw dusun dsn".split())
_CORRECTION = frozenset("ralat koreksi salah maksudnya maksud keliru".split())
_OTHER_MATTER = {("ada", "lagi"), ("satu", "lagi"), ("1", "lagi"), ("laporan", "lain"), ("masalah", "lain"),
                 ("hal", "lain"), ("selain", "itu"), ("lapor", "lagi"), ("laporan", "kedua"),
                 ("sekalian", "lapor"), ("mau", "lapor"), ("ingin", "lapor")}
_OPENERS = frozenset("lapor laporan melaporkan pelaporan pengaduan aduan mengadukan mengadu".split())
_CLOSINGS = ("terima kasih", "terimakasih", "makasih", "trims", "wassalam", "salam", "nuwun", "suwun")
_CONNECTORS = frozenset("""di dan yang yg ke dari depan dekat dket dkt samping belakang sebelah
karena krn sehingga untuk utk dengan dgn sudah sdh belum blm tapi atau pada sampai smpai desa
ds dusun dsn kec kecamatan rt rw jl jln jalan no nomor sekitar arah menuju""".split())
_ABOUT_THE_REPORT = frozenset({"lokasi", "foto", "menyusul", "identitas"})
_SPLIT_LENGTHS = ((150, 160), (66, 70), (145, 153))  # a phone's non-UDH split of GSM-7 / UCS-2 text


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(fold(text))


def _lead(tokens: list[str]) -> list[str]:
    """The tokens after greetings and fillers ("pak", "oh", "maaf" stay markers elsewhere)."""
    i = 0
    while i < len(tokens) and tokens[i] in _FILLER and tokens[i] not in ("maaf", "mf", "mav", "sorry", "sori",
                                                                            "ngapunten", "oh", "o", "eh"):
        i += 1
    return tokens[i:]


def _is_nya_ref(tok: str) -> bool:
    if tok in _NYA_NOT_REF or len(tok) < 5:
        return False
    return bool(_NYA.match(tok))


def follow_up_marker(text: str) -> str | None:
    """The follow-up marker a message carries, or None."""
    toks = _tokens(text)
    if not toks:
        return None
    lead = _lead(toks)
    first = lead[:4]
    for a, b in zip(first, first[1:]):
        if (a, b) in _TWO:
            return _TWO[(a, b)]
    if first and first[0] in _STARTS:
        return _STARTS[first[0]]
    for tok in toks:
        if tok in _ANYWHERE:
            return _ANYWHERE[tok]
    for tok in toks[:6]:
        base = tok.replace("'", "")
        if tok in _PLACE_NOUNS or base in _PLACE_NOUNS or (
                _NYA.match(tok) and _NYA.match(tok).group(1) in _PLACE_NOUNS):
            if tok not in ("lokasi", "alamat", "tempat", "titik", "posisi", "letak") or len(toks) <= 8:
                return "lokasi"
        m = _NYA.match(tok)
        if (m and m.group(1) in _MEDIA_NOUNS) or (tok in _MEDIA_NOUNS and len(toks) <= 5):
            return "foto"
    for tok in first[:3]:
        if _is_nya_ref(tok):
            return "nya"
    plea = any(t in _PLEA for t in toks)
    if plea and (any(t in _PLEA_VERBS for t in toks) or len(toks) <= 6):
        return "mohon segera"
    if len(toks) <= 12 and (any(t in _IDENTITY for t in toks) and any(t.isdigit() for t in toks)):
        return "identitas"
    if len(toks) <= 6 and any(t in ("pak", "bapak", "bu", "ibu", "min", "admin") for t in toks) \
            and any(t in ("ya", "yaa", "nggih", "njih", "mohon", "tolong", "segera") for t in toks):
        return "pak/bu"
    return None


def _other_matter(text: str) -> bool:
    lead = _lead(_tokens(text))[:5]
    return any((a, b) in _OTHER_MATTER for a, b in zip(lead, lead[1:]))


def _opens_report(text: str) -> bool:
    lead = _lead(_tokens(text))
    return bool(lead) and lead[0] in _OPENERS


def _corrects(text: str) -> bool:
    toks = _tokens(text)
    return any(t in _CORRECTION for t in toks[:6]) or ("bukan" in toks[:8] and "tapi" in toks)


def continues_sentence(earlier: str, text: str) -> bool:
    """The earlier message broke off mid-sentence (a phone split a long text into separate
    SMS, or the reporter hit send too early) and this one carries on."""
    prev = (earlier or "").rstrip()
    new = (text or "").lstrip()
    if not prev or not new or prev[-1] in ".!?)\"'" or not (prev[-1].isalnum() or prev[-1] in ",-:"):
        return False
    low = fold(prev)
    if low.endswith(_CLOSINGS):
        return False
    if re.search(r"\(?\b1/2\)?\s*$|^\(?1/2\)?", prev) and re.match(r"\(?2/2\)?", new):
        return True
    starts_low = new[0].islower() or new[0].isdigit()
    if prev[-1] in ",-:":
        return starts_low
    last = _tokens(prev)[-1:] or [""]
    at_split = any(lo <= len(prev) <= hi for lo, hi in _SPLIT_LENGTHS)
    return starts_low and (last[0] in _CONNECTORS or at_split)


def _own_place(draft: TicketDraft) -> tuple[str | None, str | None]:
    return draft.place.kecamatan_code, draft.place.desa_code


def decide(earlier: Earlier, draft: TicketDraft, gap_s: float, window_s: float = DEFAULT_WINDOW_S) -> Verdict:
    """Join `draft` (a message with words) to `earlier`, or make it a ticket of its own.
    `gap_s`: seconds since the reporter's last message on the earlier report."""
    text = draft.text_original or ""
    fields = draft.fields or {}
    if fields.get("keyword") or fields.get("imported"):
        return Verdict(False, "structured")
    if window_s <= 0 or gap_s < 0 or gap_s > window_s:
        return Verdict(False, "window")
    if continues_sentence(earlier.text, text):
        return Verdict(True, "continues_sentence")
    if _other_matter(text):
        return Verdict(False, "other_matter_opener")
    kec, desa = _own_place(draft)
    other_place = bool((desa and earlier.desa_code and desa != earlier.desa_code)
                       or (kec and earlier.kecamatan_code and kec != earlier.kecamatan_code))
    if other_place:
        return Verdict(True, "correction") if _corrects(text) else Verdict(False, "other_place")
    confident = draft.category is not None and is_confident(draft.routing.confidence, draft.routing.needs_triage)
    own_family = category_family(draft.category) if confident else None
    earlier_family = category_family(earlier.category)
    marker = follow_up_marker(text)
    if marker in _ABOUT_THE_REPORT:  # its place, photo or reporter: other words in it are incidental
        return Verdict(True, f"marker:{marker}")
    if own_family and earlier_family and own_family != earlier_family:
        return Verdict(False, "other_matter")
    if marker:
        return Verdict(True, f"marker:{marker}")
    if _opens_report(text):
        return Verdict(False, "opens_report")
    if not own_family:
        return Verdict(True, "no_subject")
    if own_family == earlier_family and not (kec or desa):
        return Verdict(True, "same_matter")
    return Verdict(False, "own_report")
