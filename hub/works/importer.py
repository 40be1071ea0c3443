"""`simpul works import rup|tender|kontrak F`: the LKPP shapes (SiRUP plan, SPSE tender
result, e-kontrak / BAP-BAST) into the works register.

Columns are found by meaning (the names LKPP exports and offices use, compared after canon()),
the header may sit under a title block, a bad row is reported with its spreadsheet row number
and skipped. Keys: kd_rup (plan), kd_tender (tender), no_kontrak (contract), joined
kd_rup -> kd_tender -> contract. Re-importing adds nothing; a changed value is updated and the
change written to works_history (old -> new, file and row). Officials' personal columns (NIP,
bank accounts, NIK, their phone or e-mail) are never read: they are dropped and named in the
summary.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import Engine, select
from sqlmodel import Session

from adapters.hotline import canon
from hub.config import RegencyConfig
from hub.db import get_engine, writer
from hub.lines.hotline.importer import ImportError_, read_sheet
from hub.logging import get_logger
from hub.models import utcnow
from hub.works import parse as P
from hub.works.geo import place_from_text
from hub.works.models import (WorksContract, WorksHistory, WorksPayment, WorksProgress, WorksProject,
                              WorksTender)

log = get_logger(__name__)
KINDS = ("rup", "tender", "kontrak")

# ours -> names in the exports (after canon(): lower case, '_' and punctuation become spaces)
COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "rup": {
        "kd_rup": ("kd rup", "kode rup", "id rup", "kd rup paket", "kode paket rup"),
        "name": ("nama paket", "paket", "nama kegiatan", "uraian paket"),
        "pagu": ("pagu", "pagu anggaran", "nilai pagu", "pagu rup", "total pagu"),
        "method": ("metode pengadaan", "metode pemilihan", "metode", "cara pengadaan"),
        "start": ("tgl awal kontrak", "tanggal awal kontrak", "tgl awal pelaksanaan kontrak", "awal kontrak",
                  "tgl awal pelaksanaan", "jadwal pelaksanaan awal"),
        "end": ("tgl akhir kontrak", "tanggal akhir kontrak", "tgl akhir pelaksanaan kontrak", "akhir kontrak",
                "tgl akhir pelaksanaan", "jadwal pelaksanaan akhir"),
        "location": ("lokasi", "lokasi pekerjaan", "detail lokasi", "lokasi paket"),
        "satker": ("nama satker", "satker", "satuan kerja", "nama satuan kerja", "opd", "skpd", "perangkat daerah"),
        "funding": ("sumber dana", "sumber pendanaan", "dana"),
        "year": ("tahun anggaran", "tahun", "ta", "thn anggaran"),
        "ppk": ("nama ppk", "ppk", "pejabat pembuat komitmen"),
        "kecamatan": ("kecamatan", "kec"),
        "desa": ("desa", "kelurahan", "desa kelurahan"),
        "lat": ("latitude", "lat", "lintang"),
        "lon": ("longitude", "lon", "lng", "long", "bujur"),
        "coords": ("koordinat", "titik koordinat", "koordinat lokasi"),
        "line": ("garis", "koordinat ruas", "ruas koordinat", "geometri"),
    },
    "tender": {
        "kd_tender": ("kd tender", "kode tender", "kd lelang", "kode lelang", "id tender"),
        "kd_rup": ("kd rup paket", "kd rup", "kode rup", "kode rup paket"),
        "name": ("nama paket", "paket", "nama tender"),
        "pagu": ("pagu", "nilai pagu", "pagu paket"),
        "hps": ("hps", "nilai hps", "harga perkiraan sendiri", "hps paket"),
        "value": ("nilai kontrak", "harga kontrak", "nilai penawaran pemenang", "harga terkoreksi",
                  "nilai terkoreksi", "nilai penawaran"),
        "winner": ("nama penyedia", "pemenang", "nama pemenang", "penyedia", "nama rekanan"),
        "npwp": ("npwp penyedia", "npwp", "npwp pemenang", "npwp rekanan"),
        "award": ("tgl penetapan pemenang", "tanggal penetapan pemenang", "tgl pengumuman pemenang",
                  "tanggal pemenang"),
    },
    "kontrak": {
        "number": ("no kontrak", "nomor kontrak", "no spk", "nomor spk", "no surat perjanjian"),
        "kd_tender": ("kd tender", "kode tender", "kd lelang", "kode lelang"),
        "kd_rup": ("kd rup", "kode rup", "kd rup paket"),
        "value": ("nilai kontrak", "nilai spk", "harga kontrak"),
        "progress": ("progres pekerjaan", "progres", "progres fisik", "persentase progres", "realisasi fisik",
                     "prosentase pekerjaan"),
        "payment": ("besar pembayaran", "nilai pembayaran", "jumlah pembayaran", "pembayaran"),
        "term": ("termin", "jenis pembayaran", "tahap pembayaran", "tahap", "cara pembayaran termin"),
        "bap": ("tgl bap", "tanggal bap", "tgl ba pembayaran", "tgl berita acara pembayaran"),
        "bast": ("tgl bast", "tanggal bast", "tgl serah terima", "tgl pho", "tanggal serah terima pekerjaan"),
        "signed": ("tgl kontrak", "tanggal kontrak", "tgl ttd kontrak", "tgl spk", "tanggal spk"),
        "start": ("tgl spmk", "tanggal spmk", "tgl mulai kerja", "tgl mulai pelaksanaan", "tanggal mulai"),
        "end": ("tgl selesai kontrak", "tgl akhir kontrak", "tanggal selesai", "tgl selesai pekerjaan",
                "tanggal akhir kontrak", "tgl selesai"),
        "winner": ("nama penyedia", "penyedia", "nama rekanan", "pelaksana"),
        "npwp": ("npwp penyedia", "npwp", "npwp rekanan"),
    },
}
REQUIRED = {"rup": ("kd_rup", "name"), "tender": ("kd_tender",), "kontrak": ("number",)}


def personal_column(name: Any) -> bool:
    """Officials' personal data: NIP, NIK, bank accounts, their phone or e-mail, their NPWP."""
    words = set(canon(name).split())
    if not words:
        return False
    if words & {"nip", "nik", "ktp", "rekening", "norek", "rek", "bank", "iban", "swift"}:
        return True
    joined = canon(name)
    if "no rek" in joined or "nomor rekening" in joined:
        return True
    officials = {"ppk", "pa", "kpa", "pptk", "pejabat", "pokja", "pp", "bendahara", "kepala"}
    return bool(words & officials) and bool(words & {"npwp", "hp", "telp", "telepon", "email", "alamat", "wa"})


@dataclass
class WorksImportReport:
    kind: str = ""
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    events_added: int = 0  # progress / payment reports from contract rows
    empty: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)
    dropped_personal: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    joined: int = 0  # tenders with their plan / contracts with their tender
    unjoined: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _score(kind: str, cells: list[Any]) -> int:
    names = {canon(c) for c in cells if not P.blank(c)}
    return sum(1 for aliases in COLUMNS[kind].values() if names & set(aliases))


def find_columns(kind: str, header: list[Any]) -> tuple[dict[str, int], list[str], list[str]]:
    names = [canon(c) for c in header]
    personal = [str(h) for h in header if not P.blank(h) and personal_column(h)]
    skip = {i for i, h in enumerate(header) if not P.blank(h) and personal_column(h)}
    found: dict[str, int] = {}
    for ours, aliases in COLUMNS[kind].items():
        for alias in aliases:
            idx = next((i for i, n in enumerate(names) if n == alias and i not in skip
                        and i not in found.values()), None)
            if idx is not None:
                found[ours] = idx
                break
    missing = [c for c in REQUIRED[kind] if c not in found]
    if missing:
        want = "; ".join(f"{m} ({', '.join(COLUMNS[kind][m][:3])})" for m in missing)
        shown = ", ".join(str(c) for c in header if not P.blank(c))
        raise ImportError_(f"kolom wajib tidak ditemukan: {want}; kolom berkas: {shown}")
    used = set(found.values()) | skip
    ignored = [str(h) for i, h in enumerate(header) if i not in used and not P.blank(h)]
    return found, personal, ignored


# --- values per kind ------------------------------------------------------------------------

def _coords(row: dict[str, Any]) -> tuple[float | None, float | None]:
    lat, lon = row.get("lat"), row.get("lon")
    if P.blank(lat) and P.blank(lon) and not P.blank(row.get("coords")):
        parts = re.split(r"[;,\s]+", str(row["coords"]).strip())
        if len(parts) != 2:
            raise P.CellError(f"koordinat {str(row['coords'])[:40]!r}: tulis 'lintang, bujur'")
        lat, lon = parts
    if P.blank(lat) or P.blank(lon):
        return None, None
    la, lo = float(P.decimal(str(lat).replace(",", ".") if isinstance(lat, str) else lat, "lintang")), \
        float(P.decimal(str(lon).replace(",", ".") if isinstance(lon, str) else lon, "bujur"))
    if not (-90 <= la <= 90 and -180 <= lo <= 180):
        raise P.CellError(f"koordinat {la}, {lo} di luar jangkauan")
    return la, lo


def parse_line(v: Any) -> list[list[float]] | None:
    """'-8.05 111.70; -8.06 111.71' (lat lon pairs separated by ';') -> [[lat, lon], ...]."""
    if P.blank(v):
        return None
    pts = []
    for part in str(v).split(";"):
        nums = re.findall(r"-?\d+(?:\.\d+)?", part)
        if len(nums) != 2:
            raise P.CellError(f"garis: titik {part.strip()[:30]!r} harus 'lintang bujur'")
        pts.append([float(nums[0]), float(nums[1])])
    if len(pts) < 2:
        raise P.CellError("garis: perlu minimal dua titik")
    return pts


def rup_values(row: dict[str, Any], cfg: RegencyConfig | None) -> dict[str, Any]:
    lat, lon = _coords(row)
    satker = P.text(row.get("satker"))
    vals = {"name": P.text(row.get("name"), 2000), "pagu_sen": P.sen(row.get("pagu"), "pagu"),
            "method": P.text(row.get("method"), 80), "planned_start": P.day(row.get("start"), "tgl_awal_kontrak"),
            "planned_end": P.day(row.get("end"), "tgl_akhir_kontrak"),
            "location_text": P.text(row.get("location"), 1000), "satker": satker,
            "funding_source": P.text(row.get("funding"), 60), "ppk": P.text(row.get("ppk"), 200),
            "latitude": lat, "longitude": lon, "line": parse_line(row.get("line"))}
    if not vals["name"]:
        raise P.CellError("nama_paket kosong")
    y = P.decimal(row.get("year"), "tahun_anggaran")
    vals["fiscal_year"] = int(y) if y is not None else (vals["planned_start"].year if vals["planned_start"] else None)
    if vals["planned_start"] and vals["planned_end"] and vals["planned_end"] < vals["planned_start"]:
        raise P.CellError("tgl_akhir_kontrak sebelum tgl_awal_kontrak")
    if cfg is not None:
        vals["opd_code"] = opd_for(satker, cfg)
        where = " ".join(str(x) for x in (row.get("kecamatan"), row.get("desa"), row.get("location")) if not P.blank(x))
        kec, desa = place_from_text(where, cfg)
        vals["kecamatan_code"], vals["desa_code"] = kec, desa
    return vals


def tender_values(row: dict[str, Any]) -> dict[str, Any]:
    return {"kd_rup": P.code(row.get("kd_rup")), "name": P.text(row.get("name"), 2000),
            "pagu_sen": P.sen(row.get("pagu"), "pagu"), "hps_sen": P.sen(row.get("hps"), "hps"),
            "value_sen": P.sen(row.get("value"), "nilai_kontrak"), "winner_name": P.text(row.get("winner")),
            "winner_npwp": P.npwp(row.get("npwp")), "award_date": P.day(row.get("award"), "tgl_penetapan_pemenang")}


def contract_values(row: dict[str, Any]) -> dict[str, Any]:
    vals = {"kd_tender": P.code(row.get("kd_tender")), "kd_rup": P.code(row.get("kd_rup")),
            "value_sen": P.sen(row.get("value"), "nilai_kontrak"), "winner_name": P.text(row.get("winner")),
            "winner_npwp": P.npwp(row.get("npwp")), "signed_on": P.day(row.get("signed"), "tgl_kontrak"),
            "start_on": P.day(row.get("start"), "tgl_spmk"), "planned_end": P.day(row.get("end"), "tgl_selesai"),
            "bast_on": P.day(row.get("bast"), "tgl_bast")}
    if vals["start_on"] and vals["planned_end"] and vals["planned_end"] < vals["start_on"]:
        raise P.CellError("tanggal selesai sebelum tanggal SPMK")
    return vals


def opd_for(satker: str | None, cfg: RegencyConfig) -> str | None:
    """The OPD code of a satker name ('Dinas Pekerjaan Umum dan Penataan Ruang' -> PUPR)."""
    if not satker:
        return None
    key = canon(satker)
    by_code = {o.code.lower(): o.code for o in cfg.opds}
    if key.replace(" ", "") in by_code:
        return by_code[key.replace(" ", "")]
    words = set(key.split()) - {"dan", "kabupaten", "trenggalek", "kab"}
    best, score = None, 0.0
    for o in cfg.opds:
        name = canon(o.name)
        if name == key or (len(name) > 10 and name in key):
            return o.code
        ow = set(name.split()) - {"dan", "kabupaten", "trenggalek", "kab"}
        if ow and words:
            s = len(ow & words) / len(ow | words)
            if s > score:
                best, score = o.code, s
        if o.code.lower() in key.split():
            return o.code
    return best if score >= 0.5 else None


# --- storing ----------------------------------------------------------------------------------

def _jsonable(v: Any) -> Any:
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    return v


def _defaults(model: type) -> dict[str, Any]:
    """Default-factory fields filled in up front: SQLModel otherwise inspects each factory's
    signature for every new object (3 ms a row, most of an import's time)."""
    return {name: f.default_factory() for name, f in model.model_fields.items() if f.default_factory is not None}


def _history(**kw: Any) -> WorksHistory:
    return WorksHistory(**{**_defaults(WorksHistory), **kw})


def upsert(session: Session, obj: Any | None, model: type, key_field: str, key: str, vals: dict[str, Any],
           entity: str, actor: str, source: str, cache: dict[str, Any]) -> str:
    """Create or update one row; a blank cell never erases a known value. History per change."""
    if obj is None:
        obj = model(**{**_defaults(model), key_field: key, **{k: v for k, v in vals.items() if v is not None}})
        session.add(obj)
        cache[key] = obj
        session.add(_history(entity=entity, entity_key=key, actor=actor, kind="created", source=source,
                                 changes={k: [None, _jsonable(v)] for k, v in vals.items() if v is not None}))
        return "added"
    changes = {}
    for k, v in vals.items():
        if v is None:
            continue
        old = getattr(obj, k)
        if isinstance(old, float) and isinstance(v, float) and abs(old - v) < 1e-9:
            continue
        if old != v:
            changes[k] = [_jsonable(old), _jsonable(v)]
            setattr(obj, k, v)
    if not changes:
        return "unchanged"
    obj.updated_at = utcnow()
    session.add(obj)
    session.add(_history(entity=entity, entity_key=key, actor=actor, kind="updated", source=source,
                             changes=changes))
    return "updated"


TERMS = {"uang muka": "uang_muka", "um": "uang_muka", "uang_muka": "uang_muka", "retensi": "retensi",
         "pemeliharaan": "retensi", "termin": "termin"}


def term_of(v: Any) -> tuple[str, int | None]:
    s = canon(v)
    if not s:
        return "termin", None
    for k, t in TERMS.items():
        if s.startswith(canon(k)):
            n = re.search(r"\d+", s)
            return t, int(n.group()) if n and t == "termin" else None
    n = re.search(r"\d+", s)
    return "termin", int(n.group()) if n else None


def _add_contract_events(session: Session, c: WorksContract, row: dict[str, Any], actor: str, source: str,
                         known: dict[int, tuple[set, set]]) -> int:
    """Progress and payment of a BAP/BAST row, each once: (date, %) and (date, amount, term)."""
    added = 0
    pct = P.percent(row.get("progress"), "progres_pekerjaan")
    amount = P.sen(row.get("payment"), "besar_pembayaran")
    when = P.day(row.get("bap"), "tgl_bap") or P.day(row.get("bast"), "tgl_bast")
    if (pct is not None or amount) and when is None:
        raise P.CellError("progres/pembayaran tanpa tgl_bap atau tgl_bast")
    prog, pays = known.setdefault(c.id, (set(), set()))
    if pct is not None and (when, round(pct, 4)) not in prog:
        session.add(WorksProgress(**_defaults(WorksProgress), contract_id=c.id, pct=pct, as_of=when, actor=actor,
                                  source=source, note="BAP/BAST (impor)"))
        prog.add((when, round(pct, 4)))
        added += 1
    if amount:
        term, no = term_of(row.get("term"))
        if (when, amount, term) not in pays:
            session.add(WorksPayment(**_defaults(WorksPayment), contract_id=c.id, amount_sen=amount, paid_on=when, term=term, term_no=no,
                                     actor=actor, source=source, note="BAP (impor)"))
            pays.add((when, amount, term))
            added += 1
    return added


def import_works(path: Path, kind: str, cfg: RegencyConfig | None = None, sheet: str | None = None,
                 engine: Engine | None = None, actor: str = "import", chunk: int = 500,
                 on_bad_row: Callable[[int, str], None] | None = None) -> WorksImportReport:
    if kind not in KINDS:
        raise ImportError_(f"unknown shape {kind!r}; use one of {', '.join(KINDS)}")
    engine = engine or get_engine()
    started = time.perf_counter()
    rows_iter, _total = read_sheet(Path(path), sheet)
    report = WorksImportReport(kind=kind)
    first = []
    for n, cells in rows_iter:
        first.append((n, cells))
        if len(first) >= 10:
            break
    if not first:
        raise ImportError_(f"{path}: the file is empty")
    best = max(first, key=lambda r: _score(kind, r[1]))
    header = best[1]
    cols, report.dropped_personal, report.ignored_columns = find_columns(kind, header)
    report.columns = {k: str(header[i]) for k, i in cols.items()}
    fname = Path(path).name

    def body():
        for n, cells in first:
            if n > best[0]:
                yield n, cells
        yield from rows_iter

    batch: list[tuple[int, dict[str, Any]]] = []
    for n, cells in body():
        if all(P.blank(c) for c in cells):
            report.empty += 1
            continue
        report.rows += 1
        batch.append((n, {ours: (cells[i] if i < len(cells) else None) for ours, i in cols.items()}))
        if len(batch) >= chunk:
            _store(engine, kind, batch, cfg, actor, fname, report, on_bad_row)
            batch = []
    _store(engine, kind, batch, cfg, actor, fname, report, on_bad_row)
    _count_joins(engine, kind, report)
    report.seconds = time.perf_counter() - started
    log.info("works.import.done", kind=kind, file=fname, rows=report.rows, added=report.added,
             updated=report.updated, bad=len(report.bad), dropped=len(report.dropped_personal),
             seconds=round(report.seconds, 2))
    return report


def _store(engine: Engine, kind: str, batch: list[tuple[int, dict[str, Any]]], cfg: RegencyConfig | None,
           actor: str, fname: str, report: WorksImportReport, on_bad_row) -> None:
    if not batch:
        return

    def bad(n: int, reason: str) -> None:
        report.bad.append((n, reason))
        if on_bad_row:
            on_bad_row(n, reason)

    with Session(writer(engine), expire_on_commit=False) as s:
        if kind in ("rup", "tender"):
            # a plan row (RUP) or a tender row: keyed on its code, upserted, nothing else joins
            col, model, attr, values, what, missing = (
                ("kd_rup", WorksProject, "code", lambda r: rup_values(r, cfg), "project", "kd_rup kosong")
                if kind == "rup" else
                ("kd_tender", WorksTender, "kd_tender", tender_values, "tender", "kd_tender kosong"))
            keys = {P.code(r.get(col)) for _, r in batch} - {None}
            cache = {getattr(o, attr): o for o in s.scalars(select(model).where(getattr(model, attr).in_(keys)))}
            for n, row in batch:
                key = P.code(row.get(col))
                if not key:
                    bad(n, missing)
                    continue
                try:
                    vals = values(row)
                except P.CellError as exc:
                    bad(n, str(exc))
                    continue
                res = upsert(s, cache.get(key), model, attr, key, vals, what, actor, f"{fname}:{n}", cache)
                setattr(report, res, getattr(report, res) + 1)
        if kind == "tender":
            s.flush()
            # contracts imported before their tender learn their plan now
            tenders = {t.kd_tender: t.kd_rup for t in cache.values() if t.kd_rup}
            if tenders:
                for c in s.scalars(select(WorksContract).where(WorksContract.kd_tender.in_(list(tenders)),
                                                               WorksContract.kd_rup.is_(None))):
                    c.kd_rup = tenders[c.kd_tender]
                    s.add(c)
        if kind not in ("rup", "tender"):
            keys = {P.code(r.get("number")) for _, r in batch} - {None}
            cache = {c.number: c for c in s.scalars(select(WorksContract).where(WorksContract.number.in_(keys)))}
            tkeys = {P.code(r.get("kd_tender")) for _, r in batch} - {None}
            tenders = {t.kd_tender: t for t in s.scalars(select(WorksTender).where(WorksTender.kd_tender.in_(tkeys)))}
            known: dict[int, tuple[set, set]] = {}
            ids = [c.id for c in cache.values()]
            if ids:
                for cid, d, pct in s.execute(select(WorksProgress.contract_id, WorksProgress.as_of, WorksProgress.pct)
                                             .where(WorksProgress.contract_id.in_(ids))):
                    known.setdefault(cid, (set(), set()))[0].add((d, round(pct, 4)))
                for cid, d, amt, term in s.execute(select(WorksPayment.contract_id, WorksPayment.paid_on,
                                                          WorksPayment.amount_sen, WorksPayment.term)
                                                   .where(WorksPayment.contract_id.in_(ids))):
                    known.setdefault(cid, (set(), set()))[1].add((d, amt, term))
            for n, row in batch:
                key = P.code(row.get("number"))
                if not key:
                    bad(n, "no_kontrak kosong")
                    continue
                try:
                    vals = contract_values(row)
                    P.percent(row.get("progress"), "progres_pekerjaan")
                    P.sen(row.get("payment"), "besar_pembayaran")
                except P.CellError as exc:
                    bad(n, str(exc))
                    continue
                t = tenders.get(vals["kd_tender"] or "")
                if t is not None:
                    vals["kd_rup"] = vals["kd_rup"] or t.kd_rup
                    vals["winner_name"] = vals["winner_name"] or t.winner_name
                    vals["winner_npwp"] = vals["winner_npwp"] or t.winner_npwp
                c = cache.get(key)
                if c is None:
                    vals["original_value_sen"] = vals["value_sen"]
                    vals["original_end"] = vals["planned_end"]
                res = upsert(s, c, WorksContract, "number", key, vals, "contract", actor, f"{fname}:{n}", cache)
                setattr(report, res, getattr(report, res) + 1)
                c = cache[key]
                if c.id is None:
                    s.flush([c])
                try:  # cells are all read before anything is added, so a bad cell adds nothing
                    report.events_added += _add_contract_events(s, c, row, actor, f"import:{fname}:{n}", known)
                except P.CellError as exc:
                    bad(n, str(exc))
        s.commit()


def _count_joins(engine: Engine, kind: str, report: WorksImportReport) -> None:
    with Session(engine) as s:
        if kind == "tender":
            rows = s.execute(select(WorksTender.kd_tender, WorksTender.kd_rup)).all()
            plans = set(s.scalars(select(WorksProject.code)))
            report.joined = sum(1 for _, r in rows if r in plans)
            report.unjoined = [t for t, r in rows if r not in plans][:50]
        elif kind == "kontrak":
            rows = s.execute(select(WorksContract.number, WorksContract.kd_tender, WorksContract.kd_rup)).all()
            tenders = set(s.scalars(select(WorksTender.kd_tender)))
            plans = set(s.scalars(select(WorksProject.code)))
            report.joined = sum(1 for _, t, r in rows if t in tenders or r in plans)
            report.unjoined = [n for n, t, r in rows if not (t in tenders or r in plans)][:50]
