"""Kecamatan and desa/kelurahan recognition in free Indonesian text against the regency
gazetteer (Kemendagri codes). Built once per Regency; must never guess a repeated desa name
without a kecamatan, nor read the kabupaten's own name or a common word as a place."""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from functools import lru_cache

from normalizer.text import fold, raw_tokens

KEC_MARKERS = frozenset({"kec", "kecamatan", "kecamatn", "kecamtan", "kecmatan", "kcmtn", "kcm", "kecamatane"})
DESA_MARKERS = frozenset({"desa", "ds", "dsa", "kel", "kelurahan", "kelurhan", "kalurahan", "deso", "dusa"})
DUSUN_MARKERS = frozenset({"dsn", "dusun", "dsun", "dukuhan", "lingkungan", "lingk", "lk"})
# Prepositions that make a mildly common name a place: "di panggul", "daerah panggul".
LOCATIVES = frozenset({"di", "daerah", "wilayah", "area", "sekitar", "kawasan", "dari", "ke", "nang",
                       "ning", "neng", "teng", "arah", "warga", "wilayahe"})

# Names that are ordinary words (Indonesian or Javanese): only read after a marker.
COMMON_WORDS = frozenset("""
panggul sumber jati banjar barang bangun gading duren jambu pakis petung gayam manggis tangkil sawahan dukuh
melis winong gondang joho pakel kayen siki sobo puru suruh tugu pule karangan bendungan gamping kerjo
jajar tumpuk gador depok parakan dawuhan tamanan kamulan sengon trenggalek prambon bodag cakul
masaran tawing craken dompyong gemaharjo ngembel slawe tasikmadu karangtengah kembangan widoro
""".split())
# Common words that still count after a locative preposition ("di panggul", "daerah pule").
LOCATIVE_OK = frozenset({"panggul", "pule", "tugu", "karangan", "bendungan", "suruh", "sawahan", "masaran",
                         "tasikmadu", "slawe", "ngembel", "dompyong", "craken", "tawing", "gemaharjo",
                         "bodag", "cakul", "karangtengah", "widoro", "kembangan", "prambon", "depok",
                         "gador", "kamulan", "parakan", "dawuhan", "tamanan", "sengon", "pakel", "besuki"})

# Facilities named after their place ("puskesmas Karangan", "pasar Pule", "SMPN 1 Tugu", "polsek
# Gandusari"): a name right after one (a number or "negeri" may come between) is a place even
# when it is also an ordinary word, and a kecamatan found so counts before bare mentions.
FACILITIES = frozenset({"puskesmas", "puskes", "pkm", "pustu", "polindes", "ponkesdes", "pasar", "polsek",
                        "koramil", "kua", "sdn", "sdi", "smpn", "smp", "sman", "sma", "smkn", "smk", "mts",
                        "mtsn", "man", "terminal", "stasiun", "spbu", "upt", "uptd", "lapangan", "alun"})
_FACILITY_GAP = frozenset({"negeri", "n", "1", "2", "3", "4", "5", "6", "7", "8", "9"})

_SPELLING = [("dj", "j"), ("tj", "c"), ("oe", "u"), ("dh", "d"), ("th", "t"), ("kh", "k"), ("sj", "sy")]
_RTRW_RE = re.compile(r"\brt\.?\s*0*(\d{1,3})\s*(?:/|rw\.?)\s*(?:rw\.?)?\s*0*(\d{1,3})\b")
_UNSEEN = object()
_MEMO_MAX = 50_000  # entries per memo (a few MB): enough for a regency's everyday vocabulary
_ANY_MARKER = KEC_MARKERS | DESA_MARKERS | DUSUN_MARKERS
_COORD_RE = re.compile(r"(-?\d{1,2}\.\d{3,})\s*,\s*(-?\d{2,3}\.\d{3,})")


@lru_cache(maxsize=65536)
def canon(name: str) -> str:
    """Spelling-insensitive key: letters only, old/Javanese spellings folded."""
    s = "".join(ch for ch in fold(name) if ch.isalpha())
    for a, b in _SPELLING:
        s = s.replace(a, b)
    return s


def _deletes(key: str) -> set[str]:
    return {key[:i] + key[i + 1:] for i in range(len(key))}


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    level: str  # kecamatan | desa
    kecamatan_code: str | None = None


@dataclass(frozen=True)
class PlaceMatch:
    kecamatan: Area | None = None
    desa: Area | None = None
    ambiguous: tuple[str, ...] = ()
    address: str | None = None
    latitude: float | None = None
    longitude: float | None = None


@dataclass
class Gazetteer:
    kabupaten_name: str = ""
    areas: dict[str, Area] = field(default_factory=dict)
    kec_by_key: dict[str, str] = field(default_factory=dict)
    desa_by_key: dict[str, list[str]] = field(default_factory=dict)
    fuzzy_kec: dict[str, set[str]] = field(default_factory=dict)
    fuzzy_desa: dict[str, set[str]] = field(default_factory=dict)
    kabupaten_keys: frozenset[str] = frozenset()
    # memoised one-edit lookups (key, kecamatan?) -> key | None: pure, bounded by the vocabulary
    _fuzzy_memo: dict[tuple[str, bool], str | None] = field(default_factory=dict, repr=False, compare=False)
    _mention_memo: dict[tuple[str, str | None, bool], tuple | None] = field(
        default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_csv(cls, text: str) -> "Gazetteer":
        g = cls()
        reader = csv.DictReader(io.StringIO(text))
        for row in reader:
            code, name, level = (row.get("kode") or "").strip(), (row.get("nama") or "").strip(), (row.get("level") or "")
            parts = code.split(".")
            if not code or not name:
                continue
            if len(parts) == 2 or level.startswith("kab"):
                g.kabupaten_name = name
                continue
            if len(parts) == 3:
                area = Area(code, name, "kecamatan", code)
                g.areas[code] = area
                g.kec_by_key[canon(name)] = code
            elif len(parts) == 4:
                area = Area(code, name, "desa", ".".join(parts[:3]))
                g.areas[code] = area
                g.desa_by_key.setdefault(canon(name), []).append(code)
        for key in g.kec_by_key:
            if len(key) >= 5:
                for d in _deletes(key) | {key}:
                    g.fuzzy_kec.setdefault(d, set()).add(key)
        for key in g.desa_by_key:
            if len(key) >= 5:
                for d in _deletes(key) | {key}:
                    g.fuzzy_desa.setdefault(d, set()).add(key)
        kab = canon(g.kabupaten_name.replace("Kabupaten", "").replace("Kota", ""))
        g.kabupaten_keys = frozenset({kab}) if kab else frozenset()
        return g

    # -- lookup -------------------------------------------------------------------------
    def _fuzzy(self, key: str, index: dict[str, set[str]], exact: dict) -> str | None:
        if key in exact:
            return key
        if len(key) < 5:
            return None
        if index is self.fuzzy_kec or index is self.fuzzy_desa:
            memo_key = (key, index is self.fuzzy_kec)
            if memo_key in self._fuzzy_memo:
                return self._fuzzy_memo[memo_key]
            hit = self._fuzzy_uncached(key, index)
            if len(self._fuzzy_memo) >= _MEMO_MAX:  # bounded: start again rather than grow
                self._fuzzy_memo.clear()
            self._fuzzy_memo[memo_key] = hit
            return hit
        return self._fuzzy_uncached(key, index)

    @staticmethod
    def _fuzzy_uncached(key: str, index: dict[str, set[str]]) -> str | None:
        found: set[str] = set()
        for d in _deletes(key) | {key}:
            found |= index.get(d, set())
        # reject matches that differ too much in length (a deletion on both sides = 1 edit)
        found = {f for f in found if abs(len(f) - len(key)) <= 1}
        return next(iter(found)) if len(found) == 1 else None

    def find_kecamatan(self, name: str, fuzzy: bool = True) -> str | None:
        key = canon(name)
        if not key:
            return None
        if key in self.kec_by_key:
            return self.kec_by_key[key]
        hit = self._fuzzy(key, self.fuzzy_kec, self.kec_by_key) if fuzzy else None
        return self.kec_by_key[hit] if hit else None

    def find_desa(self, name: str, fuzzy: bool = True) -> list[str]:
        key = canon(name)
        if not key:
            return []
        if key in self.desa_by_key:
            return list(self.desa_by_key[key])
        hit = self._fuzzy(key, self.fuzzy_desa, self.desa_by_key) if fuzzy else None
        return list(self.desa_by_key[hit]) if hit else []

    # -- free text ----------------------------------------------------------------------
    def _span(self, toks: list[str], i: int, finder) -> tuple[object, int]:
        """Try the two-token join ("ngulung kulon") then one token after position i."""
        if i + 1 < len(toks):
            hit = finder(toks[i] + toks[i + 1], fuzzy=len(toks[i] + toks[i + 1]) >= 7)
            if hit:
                return hit, 2
        if i < len(toks):
            hit = finder(toks[i], fuzzy=len(toks[i]) >= 5)
            if hit:
                return hit, 1
        return None, 0

    def _mention(self, t: str, nxt: str | None, loc: int) -> tuple[str | None, list[str] | None, int] | None:
        """An unmarked place name at token t (joined with the next token first): (kecamatan code,
        desa codes, tokens used) or None. loc: 1 after a locative, 2 after a facility word.
        Pure given the gazetteer, so scan_tokens memoises it."""
        joined = t + nxt if nxt is not None else None
        for cand, used in ((joined, 2), (t, 1)):
            if not cand:
                continue
            key = canon(cand)
            if key in self.kabupaten_keys or len(key) < 4:
                continue
            if key in COMMON_WORDS and not (loc == 2 or (loc and key in LOCATIVE_OK)):
                continue
            kec = self.kec_by_key.get(key)
            desa = self.desa_by_key.get(key)
            if not kec and not desa and len(key) >= 8 and used == 1:
                hit_k = self._fuzzy(key, self.fuzzy_kec, self.kec_by_key)
                hit_d = self._fuzzy(key, self.fuzzy_desa, self.desa_by_key)
                kec = self.kec_by_key.get(hit_k) if hit_k and hit_k not in COMMON_WORDS else None
                desa = self.desa_by_key.get(hit_d) if hit_d and hit_d not in COMMON_WORDS else None
            if kec:
                return kec, None, used
            if desa:
                return None, desa, used
        return None

    def scan(self, text: str, kec_hint: str | None = None, desa_hint: str | None = None) -> PlaceMatch:
        """Find kecamatan / desa in free text; structured hints (hotline fields) win."""
        folded = fold(text)
        return self.scan_tokens(folded, raw_tokens(folded), kec_hint, desa_hint)

    def scan_tokens(self, folded: str, toks: list[str], kec_hint: str | None = None,
                    desa_hint: str | None = None) -> PlaceMatch:
        """scan() over fold(text) and its raw_tokens, so normalize tokenises a message once."""
        memo = self._mention_memo
        kec_marked: list[str] = []
        kec_loose: list[str] = []
        kec_facility: list[str] = []
        desa_marked: list[list[str]] = []
        desa_loose: list[list[str]] = []
        dusun: str | None = None
        n = len(toks)
        i = 0
        while i < n:
            t = toks[i]
            if t not in _ANY_MARKER:
                pass
            elif t in KEC_MARKERS and i + 1 < n:
                hit, used = self._span(toks, i + 1, self.find_kecamatan)
                if hit:
                    kec_marked.append(hit)
                    i += 1 + used
                    continue
            elif t in DESA_MARKERS and i + 1 < n:
                hit, used = self._span(toks, i + 1, self.find_desa)
                if hit:
                    desa_marked.append(hit)
                    i += 1 + used
                    continue
            elif t in DUSUN_MARKERS and i + 1 < n and dusun is None:
                nxt = toks[i + 1]
                if nxt.isalpha() and nxt not in KEC_MARKERS and nxt not in DESA_MARKERS:
                    dusun = nxt.capitalize()
                    i += 2
                    continue
            # unmarked mention: exact (or one-edit for long names), never a common word bare
            loc = 1 if i > 0 and toks[i - 1] in LOCATIVES else 0
            if i > 0 and (toks[i - 1] in FACILITIES or (
                    toks[i - 1] in _FACILITY_GAP and i > 1 and (toks[i - 2] in FACILITIES or (
                        toks[i - 2] in _FACILITY_GAP and i > 2 and toks[i - 3] in FACILITIES)))):
                loc = 2
            nxt = toks[i + 1] if i + 1 < n else None
            memo_key = (t, nxt, loc)
            found = memo.get(memo_key, _UNSEEN)
            if found is _UNSEEN:
                found = self._mention(t, nxt, loc)
                if len(memo) >= _MEMO_MAX:  # bounded: start again rather than grow
                    memo.clear()
                memo[memo_key] = found
            if found is not None:
                kec, desa, used = found
                if kec:  # a name shared by kecamatan and desa reads as kecamatan
                    (kec_facility if loc == 2 else kec_loose).append(kec)
                else:
                    desa_loose.append(list(desa))
                i += used - 1
            i += 1

        kec_code: str | None = None
        if kec_hint:
            kec_code = self.find_kecamatan(kec_hint)
        if not kec_code and kec_marked:
            kec_code = kec_marked[0]
        if not kec_code and kec_facility:
            kec_code = kec_facility[0]
        desa_lists: list[list[str]] = []
        if desa_hint:
            hinted = self.find_desa(desa_hint)
            if hinted:
                desa_lists.append(hinted)
        desa_lists += desa_marked + desa_loose
        if not kec_code and kec_loose:
            # a bare kecamatan name; if a desa mention disagrees, trust the desa
            kec_code = kec_loose[0]
            if desa_lists and all(self.areas[c].kecamatan_code != kec_code for c in desa_lists[0]) \
                    and len({self.areas[c].kecamatan_code for c in desa_lists[0]}) == 1:
                kec_code = None
        desa_code: str | None = None
        ambiguous: tuple[str, ...] = ()
        for codes in desa_lists:
            if kec_code:
                inside = [c for c in codes if self.areas[c].kecamatan_code == kec_code]
                if len(inside) == 1:
                    desa_code = inside[0]
                    break
                continue
            if len(codes) == 1:
                desa_code = codes[0]
                kec_code = self.areas[desa_code].kecamatan_code
                break
            if not ambiguous:
                ambiguous = tuple(codes)
        if desa_code:
            ambiguous = ()
        address_parts = []
        if dusun:
            address_parts.append(f"Dsn. {dusun}")
        m = _RTRW_RE.search(folded)
        if m:
            address_parts.append(f"RT {int(m.group(1)):02d}/RW {int(m.group(2)):02d}")
        lat = lon = None
        c = _COORD_RE.search(folded)
        if c:
            la, lo = float(c.group(1)), float(c.group(2))
            if -11 <= la <= 6 and 95 <= lo <= 141:
                lat, lon = la, lo
        return PlaceMatch(
            kecamatan=self.areas.get(kec_code) if kec_code else None,
            desa=self.areas.get(desa_code) if desa_code else None,
            ambiguous=ambiguous,
            address=" ".join(address_parts) or None,
            latitude=lat,
            longitude=lon,
        )
