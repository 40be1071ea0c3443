"""Who reported: Indonesian phone numbers to E.164, NIK found in text (validated, then only
ever returned masked), and the reporter's name when they give it. Never returns a full NIK."""
from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

# 0812-3456-7890, 62812..., +62 812 3456 7890, (0355) 791234
_PHONE_RE = re.compile(r"(?<![\d])(?:\+?\s?62|0)[\s\-.()]*\d{2,4}(?:[\s\-.()]*\d{2,5}){1,4}(?![\d])")
_NIK_RE = re.compile(r"(?<!\d)(\d{4})[\s.\-]?(\d{4})[\s.\-]?(\d{4})[\s.\-]?(\d{4})(?!\d)")
_NAME_RE = re.compile(
    r"\b(?:nama\s*(?:saya|sy|lengkap|pelapor)?\s*[:=]?|saya\s+(?:bernama|adalah)|atas\s+nama|"
    r"an\.|a\.n\.?|dengan\s+(?:bapak|ibu|sdr\.?|saudara))\s*"
    r"((?:[A-Z][A-Za-z'.]*|[a-z]{3,})(?:\s+(?:[A-Z][A-Za-z'.]*|[a-z]{3,})){0,3})",
    re.IGNORECASE,
)
_NAME_STOP = frozenset("""dari warga yang di ingin mau mohon minta alamat tinggal rt rw desa ds kec kecamatan
dusun dsn no nomor nik hp telp umur usia asal mengadukan melaporkan lapor ingin dan""".split())

# Province codes (first two NIK digits) of Indonesia.
PROVINCES = frozenset({11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53,
                       61, 62, 63, 64, 65, 71, 72, 73, 74, 75, 76, 81, 82, 91, 92, 93, 94, 95, 96, 97})


def to_e164(raw: str | None) -> str | None:
    """Any Indonesian phone form to "+62...", or None when it is not a valid number."""
    if not raw:
        return None
    return _to_e164(str(raw).strip())


@lru_cache(maxsize=16384)
def _to_e164(s: str) -> str | None:
    """to_e164 on a stripped string; cached because phonenumbers' parse is the slow part and
    the same senders write again and again."""
    if s.lower().startswith(("whatsapp:", "tel:", "sms:")):
        s = s.split(":", 1)[1]
    digits = re.sub(r"[^\d+]", "", s)
    if not digits or len(digits.lstrip("+")) < 8:
        return None
    if digits.startswith("62") and not digits.startswith("+"):
        digits = "+" + digits
    elif digits.startswith("8") and len(digits) >= 9:
        digits = "0" + digits
    try:
        num = phonenumbers.parse(digits, "ID")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def is_valid_nik(nik: str) -> bool:
    """16 digits; known province; kabupaten/kecamatan not 00; birth day 1-31 (41-71 for
    women), month 1-12; serial not 0000."""
    if len(nik) != 16 or not nik.isdigit():
        return False
    if int(nik[:2]) not in PROVINCES or nik[2:4] == "00" or nik[4:6] == "00":
        return False
    day, month = int(nik[6:8]), int(nik[8:10])
    if not (1 <= day <= 31 or 41 <= day <= 71):
        return False
    if not 1 <= month <= 12:
        return False
    return nik[12:] != "0000"


def mask_nik(nik: str) -> str:
    return nik[:4] + "*" * 10 + nik[-2:]


def find_nik(text: str) -> tuple[str | None, tuple[int, int] | None]:
    """First valid NIK in the text -> (masked, span). Invalid 16-digit numbers are ignored."""
    for m in _NIK_RE.finditer(text or ""):
        nik = "".join(m.groups())
        if is_valid_nik(nik):
            return mask_nik(nik), m.span()
    return None, None


def mask_niks(text: str) -> str:
    """Replace every valid NIK in the text by its masked form."""
    def repl(m: re.Match) -> str:
        nik = "".join(m.groups())
        return mask_nik(nik) if is_valid_nik(nik) else m.group(0)
    return _NIK_RE.sub(repl, text or "")


def find_phone(text: str) -> str | None:
    """First valid Indonesian phone number written in the text, as E.164."""
    for m in _PHONE_RE.finditer(text or ""):
        candidate = m.group(0)
        digits = re.sub(r"\D", "", candidate)
        if len(digits) == 16 and is_valid_nik(digits):
            continue
        e164 = to_e164(candidate)
        if e164:
            return e164
    return None


# Dukcapil's SMS format: KTP#<NIK>#<NAMA>#<rest> (also with * or spaces around the #)
_KTP_RE = re.compile(r"^\s*KTP\s*[#*]\s*[\d .\-]{16,22}\s*[#*]\s*([^#*\d][^#*]{1,79}?)\s*(?:[#*]|$)", re.IGNORECASE)


def ktp_name(text: str) -> str | None:
    """The name of a `KTP#<NIK>#<NAMA>#...` SMS (Dukcapil's format), title-cased."""
    m = _KTP_RE.match(text or "")
    if not m:
        return None
    name = " ".join(m.group(1).split())
    if len(name) < 2 or any(ch.isdigit() for ch in name):
        return None
    return name.title()


def find_name(text: str) -> str | None:
    """A name the reporter states ("nama saya Siti Aminah", "atas nama Bpk. Suroto")."""
    if not text:
        return None
    # every match holds one of these (re's IGNORECASE folds no other character into their
    # letters than casefold() does): a cheap test before the slow case-insensitive regex
    low = text.casefold()
    if "nama" not in low and "saya" not in low and "an." not in low and "a.n" not in low \
            and "dengan" not in low:
        return None
    m = _NAME_RE.search(text)
    if not m:
        return None
    out = []
    for w in m.group(1).split():
        lw = w.lower().strip(".,")
        if lw in _NAME_STOP or any(ch.isdigit() for ch in w):
            break
        if lw in {"bpk", "bapak", "ibu", "bu", "pak", "sdr", "sdri", "mbak", "mas", "saya"}:
            continue
        out.append(w.strip(".,"))
    name = " ".join(out).strip()
    return name.title() if len(name) >= 3 else None
