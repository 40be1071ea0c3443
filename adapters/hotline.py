"""PSC 119 / BPBD Pusdalops hotlines: turn a call taker's console form, or one row of an old
call log (CSV/XLSX), into an InboundMessage with structured fields and a readable text.

Knows the shape of what call takers record (incident types, places, triage colours, Indonesian
dates); the lists themselves come in as data (HotlineSpec). Never imports hub, and never sends:
hotlines have no outbound line of their own (replies to callers go by SMS).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo

from adapters.base import InvalidPayload, OutboundMessage, PermanentError, SendResult
from normalizer.types import InboundMessage

FIELD_KEYS = ("incident_type", "kecamatan", "desa", "dusun", "rt_rw", "landmark", "caller_name",
              "caller_phone", "people_affected", "action_taken", "team", "triage_colour")
_PREFIXES = ("kecamatan ", "kec ", "desa ", "ds ", "kelurahan ", "kel ", "dusun ", "dsn ")


_NOT_WORD = re.compile(r"[^0-9a-z]+")


def canon(value: Any) -> str:
    """Lower case, punctuation to spaces, single spaces: 'Kec. Pogalan' -> 'kec pogalan'."""
    return _canon_text(value) if isinstance(value, str) else _canon(value)


def _canon(value: Any) -> str:
    s = _NOT_WORD.sub(" ", str(value or "").lower().replace("'", ""))
    return " ".join(s.split())


@lru_cache(maxsize=8192)  # a log repeats its place names, incident types and headers row after row
def _canon_text(value: str) -> str:
    return _canon(value)


def _place_key(value: Any) -> str:
    s = canon(value)
    for p in _PREFIXES:
        if s.startswith(p):
            return s[len(p):]
    return s


@dataclass(frozen=True)
class IncidentType:
    key: str
    label: str
    routing: str | None = None  # the normalizer's incident type (routing.yaml); None: the key itself
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class HotlineLine:
    name: str  # channel name: "psc119", "bpbd"
    label: str
    incident_types: tuple[IncidentType, ...]
    triage_colours: tuple[str, ...] = ()

    @cached_property
    def _names(self) -> tuple[tuple[IncidentType, frozenset[str], tuple[str, ...]], ...]:
        """Per incident type: its canonical names (exact match) and key/aliases (inside text)."""
        return tuple((it, frozenset({canon(it.key), canon(it.label), *(canon(a) for a in it.aliases)}),
                      tuple(canon(n) for n in (it.key, *it.aliases))) for it in self.incident_types)

    def incident(self, value: Any) -> IncidentType | None:
        """Exact match on key, label or alias (the console)."""
        c = canon(value)
        return next((it for it, names, _ in self._names if c in names), None)

    def incident_in(self, text: Any) -> IncidentType | None:
        """The longest key/alias found inside free text (an old log's 'kejadian' column)."""
        c = f" {canon(text)} "
        best: tuple[int, IncidentType] | None = None
        for it, _, inside in self._names:
            for n in inside:
                if n and f" {n} " in c and (best is None or len(n) > best[0]):
                    best = (len(n), it)
        return best[1] if best else None


@dataclass(frozen=True)
class Places:
    """Kecamatan and desa of the regency, by Kemendagri code."""

    kecamatan: Mapping[str, tuple[str, str]]  # place key -> (code, name)
    desa: Mapping[str, Mapping[str, tuple[str, str]]]  # kecamatan code -> place key -> (code, name)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, str]]) -> "Places":
        """Rows of (kode, nama, level) as in wilayah.csv."""
        kec: dict[str, tuple[str, str]] = {}
        desa: dict[str, dict[str, tuple[str, str]]] = {}
        for code, name, level in rows:
            if level == "kecamatan":
                kec[_place_key(name)] = (code, name)
                kec[code] = (code, name)
            elif level.startswith("desa"):
                desa.setdefault(code.rsplit(".", 1)[0], {})[_place_key(name)] = (code, name)
        return cls(kec, desa)

    def find_kecamatan(self, value: Any) -> tuple[str, str] | None:
        v = str(value or "").strip()
        return self.kecamatan.get(v) or self.kecamatan.get(_place_key(v))

    def find_desa(self, kec_code: str, value: Any) -> tuple[str, str] | None:
        return (self.desa.get(kec_code) or {}).get(_place_key(value))


@dataclass(frozen=True)
class HotlineSpec:
    lines: Mapping[str, HotlineLine]
    places: Places
    timezone: str = "Asia/Jakarta"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


# --- dates as the offices write them ---------------------------------------------------------

MONTHS = {"januari": 1, "jan": 1, "january": 1, "februari": 2, "feb": 2, "pebruari": 2, "february": 2,
          "maret": 3, "mar": 3, "march": 3, "april": 4, "apr": 4, "mei": 5, "may": 5, "juni": 6,
          "jun": 6, "june": 6, "juli": 7, "jul": 7, "july": 7, "agustus": 8, "agu": 8, "agt": 8,
          "ags": 8, "agust": 8, "aug": 8, "august": 8, "september": 9, "sep": 9, "sept": 9,
          "oktober": 10, "okt": 10, "oct": 10, "october": 10, "november": 11, "nov": 11, "nop": 11,
          "desember": 12, "des": 12, "dec": 12, "december": 12}
_WEEKDAYS = r"(?:senin|selasa|rabu|kamis|jumat|jum at|sabtu|minggu|ahad)"
_CLOCK = r"(?:\s+(\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?)?"
_NAMED = re.compile(r"(\d{1,2})\s+([a-z]+)\s+(\d{2,4})" + _CLOCK)
_NUMERIC = re.compile(r"(\d{1,2})[/-](\d{1,2})[/-](\d{2,4})" + _CLOCK)
_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ t](\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?)?")
_EXCEL_EPOCH = datetime(1899, 12, 30)


def _year(y: str) -> int:
    n = int(y)
    return n + 2000 if n < 100 else n


def _clean_when(s: str) -> str:
    s = s.strip().lower().replace("'", "")
    s = re.sub(r"\b(pukul|pkl|jam|wib)\b\.?", " ", s)
    s = re.sub(r"^" + _WEEKDAYS + r"\b[,\s]*", "", s)
    s = s.replace(",", " ")
    return " ".join(s.split())


def parse_clock(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, datetime):
        return value.time()
    if isinstance(value, (int, float)) and 0 <= float(value) < 1:  # an Excel time cell
        secs = round(float(value) * 86400)
        return time(secs // 3600 % 24, secs // 60 % 60)
    m = re.fullmatch(r"(\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?", _clean_when(str(value)))
    if not m:
        raise ValueError(f"{value!r} is not a time of day (e.g. 07:15 or 07.15)")
    return time(int(m[1]), int(m[2]), int(m[3] or 0))


def parse_when(value: Any, tz: ZoneInfo, clock: Any = None) -> datetime:
    """'20 Agustus 2021 07:15', '20/08/2021 07.15', ISO, or an Excel date cell -> aware datetime."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("no date")
    if isinstance(value, datetime):
        d = value
    elif isinstance(value, date):
        d = datetime.combine(value, time())
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not 1 <= float(value) < 200000:
            raise ValueError(f"{value!r} is not an Excel date")
        d = _EXCEL_EPOCH + timedelta(days=float(value))
        d = d.replace(second=0, microsecond=0) + timedelta(minutes=round(d.second / 60))
    elif isinstance(value, str) and re.fullmatch(r"\s*\d{5}(?:[.,]\d+)?\s*", value):
        # an Excel date cell saved to CSV: its serial number ("44428", "44428.3125" = 07:30)
        return parse_when(float(value.strip().replace(",", ".")), tz, clock)
    else:
        s = _clean_when(str(value))
        m = _NAMED.fullmatch(s)
        if m:
            month = MONTHS.get(m[2])
            if month is None:
                raise ValueError(f"unknown month {m[2]!r} in {value!r}")
            parts = (_year(m[3]), month, int(m[1]), m[4], m[5], m[6])
        elif (m := _NUMERIC.fullmatch(s)):
            parts = (_year(m[3]), int(m[2]), int(m[1]), m[4], m[5], m[6])  # day first, as in Indonesia
        elif (m := _ISO.fullmatch(s)):
            parts = (int(m[1]), int(m[2]), int(m[3]), m[4], m[5], m[6])
        else:
            raise ValueError(f"{value!r} is not a date (e.g. '20 Agustus 2021 07:15' or '20/08/2021 07.15')")
        y, mo, day, hh, mm, ss = parts
        try:
            d = datetime(y, mo, day, int(hh or 0), int(mm or 0), int(ss or 0))
        except ValueError as exc:
            raise ValueError(f"{value!r}: {exc}") from None
    if clock not in (None, ""):
        c = parse_clock(clock)
        d = datetime.combine(d.date(), c)
    if d.tzinfo is None:
        d = d.replace(tzinfo=tz)
    return d


# --- small value checks ------------------------------------------------------------------------

def _text(v: Any, limit: int = 500) -> str | None:
    if v is None:
        return None
    s = " ".join(str(v).split())
    return s[:limit] if s and s not in {"-", "--"} else None


def phone_digits(v: Any) -> str | None:
    s = _text(v, 40)
    if not s:
        return None
    if isinstance(v, float) and v.is_integer():  # a phone typed into a number cell: 81234567890.0
        s = str(int(v))
    if not re.fullmatch(r"\+?[\d\s().-]+", s):
        return None
    digits = re.sub(r"\D", "", s)
    if not 3 <= len(digits) <= 15:
        return None
    if len(digits) >= 9 and digits[0] == "8":  # the leading 0 lost in a spreadsheet number cell
        digits = "0" + digits
    return ("+" if s.startswith("+") else "") + digits


def rt_rw(v: Any) -> str | None:
    s = canon(v)
    if not s:
        return None
    m = re.fullmatch(r"(?:rt\s*)?(\d{1,3})\s*(?:rw\s*)?(\d{1,3})", s.replace(" ", " "))
    if not m:
        return None
    return f"{int(m[1]):03d}/{int(m[2]):03d}"


def people_count(v: Any) -> int | None:
    if v is None or v == "":
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return int(v) if float(v) >= 0 and float(v).is_integer() else None
    s = canon(v)
    if s in {"", "nihil", "tidak ada", "tidak", "nol", "0"}:
        return 0 if s else None
    m = re.match(r"(\d+)", s)
    return int(m[1]) if m else None


# --- the adapter -------------------------------------------------------------------------------

@dataclass
class HotlineAdapter:
    """Console forms and import rows of the PSC 119 / BPBD lines -> InboundMessage."""

    spec: HotlineSpec
    name: str = field(default="hotline", init=False)

    def line(self, line: str) -> HotlineLine:
        got = self.spec.lines.get(line)
        if got is None:
            raise InvalidPayload(f"unknown hotline {line!r}; known: {', '.join(sorted(self.spec.lines))}")
        return got

    def _place(self, form: Mapping[str, Any], errors: list[str], strict: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        kec_in = _text(form.get("kecamatan"), 100)
        kec = self.spec.places.find_kecamatan(kec_in) if kec_in else None
        if kec_in and kec is None:
            errors.append(f"unknown kecamatan {kec_in!r}")
        elif kec is None and strict:
            errors.append("kecamatan is required")
        if kec:
            out["kecamatan"], out["kecamatan_code"] = kec[1], kec[0]
        desa_in = _text(form.get("desa"), 100)
        if desa_in:
            desa = self.spec.places.find_desa(kec[0], desa_in) if kec else None
            if desa:
                out["desa"], out["desa_code"] = desa[1], desa[0]
            elif strict and kec:
                errors.append(f"desa {desa_in!r} is not in kecamatan {kec[1]}")
            else:
                out["desa"] = desa_in
        for key in ("dusun", "landmark"):
            v = _text(form.get(key), 300)
            if v:
                out[key] = v
        rr_in = _text(form.get("rt_rw"), 30)
        if rr_in:
            rr = rt_rw(rr_in)
            if rr:
                out["rt_rw"] = rr
            elif strict:
                errors.append(f"rt_rw {rr_in!r} is not RT/RW like '003/002'")
            else:
                out["landmark"] = ", ".join(x for x in (out.get("landmark"), f"RT/RW {rr_in}") if x)
        return out

    def _compose(self, line: HotlineLine, label: str, f: Mapping[str, Any]) -> str:
        where = []
        if f.get("dusun"):
            where.append(f"Dsn. {f['dusun']}")
        if f.get("rt_rw"):
            where.append(f"RT/RW {f['rt_rw']}")
        if f.get("desa"):
            where.append(f"Desa {f['desa']}")
        if f.get("kecamatan"):
            where.append(f"Kec. {f['kecamatan']}")
        text = f"[{line.label}] {label}"
        if where:
            text += " di " + ", ".join(where)
        if f.get("landmark"):
            text += f" ({f['landmark']})"
        text += "."
        for key, title in (("people_affected", "Korban/terdampak"), ("triage_colour", "Triase"),
                           ("description", "Keterangan"), ("action_taken", "Tindakan"), ("team", "Tim")):
            v = f.get(key)
            if v not in (None, ""):
                text += f" {title}: {v}{' orang' if key == 'people_affected' else ''}."
        return text

    def _common(self, line: HotlineLine, form: Mapping[str, Any], errors: list[str], strict: bool) -> dict[str, Any]:
        f: dict[str, Any] = {}
        name = _text(form.get("caller_name"), 200)
        if name:
            f["caller_name"] = name
        phone_in = form.get("caller_phone")
        if _text(phone_in):
            phone = phone_digits(phone_in)
            if phone:
                f["caller_phone"] = phone
            elif strict:
                errors.append(f"caller_phone {str(phone_in)[:20]!r} is not a phone number")
        people = form.get("people_affected")
        if people not in (None, ""):
            n = people_count(people)
            if n is None or n > 100000:
                if strict:
                    errors.append(f"people_affected {people!r} is not a number of people")
                else:
                    f["people_affected_text"] = _text(people, 100)
            else:
                f["people_affected"] = n
        colour = _text(form.get("triage_colour"), 20)
        if colour:
            c = colour.lower()
            if not line.triage_colours:
                if strict:
                    errors.append(f"{line.name} has no triage colour (only PSC 119 triages)")
            elif c not in line.triage_colours:
                errors.append(f"triage_colour {colour!r} must be one of {', '.join(line.triage_colours)}")
            else:
                f["triage_colour"] = c
        for key, limit in (("action_taken", 1000), ("team", 200), ("description", 4000)):
            v = _text(form.get(key), limit)
            if v:
                f[key] = v
        f.update(self._place(form, errors, strict))
        return f

    def from_console(self, line_name: str, form: Mapping[str, Any], now: datetime | None = None) -> InboundMessage:
        """A call taker's form. Strict: anything unknown is an InvalidPayload with every reason."""
        line = self.line(line_name)
        errors: list[str] = []
        it = line.incident(form.get("incident_type")) if _text(form.get("incident_type")) else None
        if it is None:
            given = _text(form.get("incident_type"), 100)
            errors.append(f"unknown incident_type {given!r} for {line.name}; known: "
                          f"{', '.join(t.key for t in line.incident_types)}" if given else "incident_type is required")
        f = self._common(line, form, errors, strict=True)
        called = form.get("called_at")
        when = now or datetime.now(timezone.utc)
        if called not in (None, ""):
            try:
                when = parse_when(called, self.spec.tz)
            except ValueError as exc:
                errors.append(f"called_at: {exc}")
            else:
                if when > (now or datetime.now(timezone.utc)) + timedelta(minutes=10):
                    errors.append("called_at is in the future")
        if errors:
            raise InvalidPayload("; ".join(errors))
        assert it is not None
        f.update(incident_type=it.routing or it.key, hotline_type=it.key, incident_label=it.label)
        return InboundMessage(channel=line.name, text=self._compose(line, it.label, f),
                              sender=f.get("caller_phone"), provider_id=_text(form.get("id"), 200),
                              received_at=when, sender_name=f.get("caller_name"), fields=f,
                              raw={k: (v.isoformat() if isinstance(v, (datetime, date, time)) else v)
                                   for k, v in form.items() if k != "id"})

    def from_row(self, line_name: str, row: Mapping[str, Any], now: datetime | None = None,
                 row_id: str | None = None) -> InboundMessage:
        """One row of an old call log (keys as in hub.lines.hotline.importer.COLUMNS). Lenient about the
        incident text and places it cannot match, strict about time, kecamatan and colour."""
        line = self.line(line_name)
        errors: list[str] = []
        try:
            when = parse_when(row.get("time") if row.get("time") not in (None, "") else row.get("date"),
                              self.spec.tz, row.get("clock"))
        except ValueError as exc:
            when = None
            errors.append(f"waktu: {exc}")
        if when and when > (now or datetime.now(timezone.utc)) + timedelta(days=1):
            errors.append(f"waktu {when:%d-%m-%Y %H:%M} is in the future")
        incident_text = _text(row.get("incident"), 300)
        it = line.incident(incident_text) or line.incident_in(incident_text) if incident_text else None
        f = self._common(line, row, errors, strict=False)
        if not (incident_text or f.get("description")):
            errors.append("no kejadian and no keterangan: nothing to import")
        if errors:
            raise InvalidPayload("; ".join(errors))
        assert when is not None
        if it:
            f.update(incident_type=it.routing or it.key, hotline_type=it.key, incident_label=it.label)
        if incident_text and (it is None or canon(incident_text) != canon(it.key)):
            f["incident_text"] = incident_text
        f["imported"] = True
        label = incident_text or (it.label if it else "Panggilan")
        content = "\x1f".join([line.name, when.isoformat(), *(str(f.get(k) or "") for k in (
            "caller_name", "caller_phone", "kecamatan", "desa", "dusun", "landmark", "incident_text",
            "hotline_type", "description", "action_taken", "team", "people_affected", "triage_colour"))])
        pid = f"imp-no-{row_id}" if row_id else "imp-" + hashlib.sha256(content.encode()).hexdigest()[:24]
        return InboundMessage(channel=line.name, text=self._compose(line, label, f), sender=f.get("caller_phone"),
                              provider_id=pid, received_at=when, sender_name=f.get("caller_name"), fields=f)

    async def send(self, message: OutboundMessage) -> SendResult:
        raise PermanentError("hotlines have no outbound line; replies to callers go by SMS")
