"""Pure parsing of the cells LKPP/SPSE exports and Indonesian offices' sheets carry: rupiah in
Indonesian or English notation, percentages, and dates as numbers, ISO, d/m/Y or '12 Maret 2026'.
No database here."""
from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

MONTHS = {
    "januari": 1, "jan": 1, "februari": 2, "pebruari": 2, "feb": 2, "peb": 2, "maret": 3, "mar": 3,
    "april": 4, "apr": 4, "mei": 5, "may": 5, "juni": 6, "jun": 6, "juli": 7, "jul": 7, "agustus": 8,
    "agu": 8, "agt": 8, "ags": 8, "aug": 8, "agust": 8, "september": 9, "sep": 9, "sept": 9,
    "oktober": 10, "okt": 10, "oct": 10, "november": 11, "nov": 11, "nopember": 11, "nop": 11,
    "desember": 12, "des": 12, "dec": 12,
}


class CellError(ValueError):
    """A cell that cannot be read; the message is shown with the row number."""


def blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, str) and v.strip() in ("-", "--"))


def decimal(v: Any, what: str = "angka") -> Decimal | None:
    """'1.250.000.000,00', 'Rp 1.250.000.000', '1,250,000,000.00', '1250000000', 1.25e9 -> Decimal.

    A single separator followed by exactly three digits is a thousands separator
    ('1.250' = 1250); otherwise the last separator is the decimal one."""
    if blank(v):
        return None
    if isinstance(v, bool):
        raise CellError(f"{what}: {v!r} bukan angka")
    if isinstance(v, (int, Decimal)):
        return Decimal(v)
    if isinstance(v, float):
        return Decimal(repr(v))
    s = str(v).strip().lower().replace("rp.", "").replace("rp", "").replace("%", "")
    s = s.replace("\u00a0", "").replace(" ", "").replace("'", "")
    neg = s.startswith("-") or (s.startswith("(") and s.endswith(")"))
    s = s.strip("-()")
    if not s or not re.fullmatch(r"[0-9.,]+", s):
        raise CellError(f"{what}: {str(v)[:40]!r} bukan angka")
    dots, commas = s.count("."), s.count(",")
    if dots and commas:
        dec = "," if s.rfind(",") > s.rfind(".") else "."
    elif dots + commas == 0:
        dec = None
    else:
        sep = "." if dots else ","
        parts = s.split(sep)
        if len(parts) > 2:  # 1.250.000.000
            dec = None
        else:
            dec = None if len(parts[1]) == 3 and parts[0] not in ("", "0") else sep
    thousands = {".", ","} - {dec} if dec else {".", ","}
    for t in thousands:
        s = s.replace(t, "")
    if dec:
        s = s.replace(dec, ".")
    try:
        out = Decimal(s)
    except InvalidOperation:
        raise CellError(f"{what}: {str(v)[:40]!r} bukan angka") from None
    return -out if neg else out


def sen(v: Any, what: str = "nilai") -> int | None:
    """Rupiah -> whole sen (rupiah x 100)."""
    d = decimal(v, what)
    if d is None:
        return None
    if d < 0:
        raise CellError(f"{what}: nilai negatif {str(v)[:40]!r}")
    return int((d * 100).to_integral_value())


def percent(v: Any, what: str = "progres") -> float | None:
    d = decimal(v, what)
    if d is None:
        return None
    if d < 0 or d > 100:
        raise CellError(f"{what}: {str(v)[:40]!r} di luar 0-100 %")
    return float(d)


def day(v: Any, what: str = "tanggal") -> date | None:
    """Dates as offices write them: datetime cells, 2026-03-12, 12/03/2026, 12-03-2026,
    12.03.2026, '12 Maret 2026', 'Kamis, 12 Maret 2026', with or without a time."""
    if blank(v):
        return None
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    if isinstance(v, (int, float)) and 20000 < float(v) < 80000:  # an Excel serial number
        from datetime import timedelta

        return date(1899, 12, 30) + timedelta(days=int(v))
    s = str(v).strip()
    m = re.match(r"^(\d{4})-(\d{1,2})-(\d{1,2})", s)
    try:
        if m:
            return date(int(m[1]), int(m[2]), int(m[3]))
        m = re.match(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2,4})\b", s)
        if m:
            y = int(m[3])
            return date(y + 2000 if y < 100 else y, int(m[2]), int(m[1]))
        m = re.search(r"(\d{1,2})\s*[\- ]\s*([A-Za-z]+)\.?\s*[\- ]\s*(\d{4})", s)
        if m and m[2].lower() in MONTHS:
            return date(int(m[3]), MONTHS[m[2].lower()], int(m[1]))
    except ValueError:
        pass
    raise CellError(f"{what}: {s[:40]!r} bukan tanggal (contoh: 12/03/2026 atau 12 Maret 2026)")


def text(v: Any, limit: int = 300) -> str | None:
    if blank(v):
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return " ".join(str(v).split())[:limit]


def code(v: Any) -> str | None:
    """An identifier (kd_rup, kd_tender): Excel may hand it over as 12345678.0."""
    if blank(v):
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()[:120]


def npwp(v: Any) -> str | None:
    """NPWP as digits only (15 or 16 digits); formatting differs between exports."""
    if blank(v):
        return None
    digits = re.sub(r"\D", "", str(v))
    if len(digits) not in (15, 16):
        raise CellError(f"NPWP {str(v)[:30]!r} harus 15 atau 16 digit")
    return digits


def rupiah(sen_value: int | None) -> str:
    """Display: 125000000000 sen -> 'Rp1.250.000.000'."""
    if sen_value is None:
        return "-"
    whole, cents = divmod(int(sen_value), 100)
    out = f"{whole:,}".replace(",", ".")
    return f"Rp{out}" + (f",{cents:02d}" if cents else "")
