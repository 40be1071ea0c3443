"""Pure red-flag rules (issue #16 section 3) over plain facts of one contract. Each flag names
its rule, the numbers that tripped it and the data it came from. The caller (hub.works.service)
gathers the facts from the store and files the flags.

Kontrak kritis follows the PUPR rule: period I (plan 0-70 %, 70 included) is critical when the
actual is more than 10 points behind; period II (plan above 70 %) when more than 5 behind, or
less than 5 behind while the completion projected at the pace so far falls after the end of
the fiscal year. Exactly 10 (period I) or exactly 5 (period II) points behind is not critical.
Deviations are compared after rounding to 0.01 point, so a float never decides a boundary.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

RULES = {
    "kontrak_kritis": "Kontrak kritis",
    "bayar_mendahului_progres": "Pembayaran mendahului progres",
    "bayar_melebihi_kontrak": "Pembayaran melebihi nilai kontrak",
    "nilai_melebihi_hps": "Nilai kontrak melebihi HPS",
    "adendum": "Adendum menambah nilai/waktu",
    "tanpa_laporan": "Tidak ada laporan progres",
    "lewat_tanpa_bast": "Lewat tanggal selesai tanpa BAST",
    "klaim_vs_lapangan": "Warga: tidak ada pekerjaan, penyedia: progres tinggi",
}


@dataclass
class Facts:
    number: str
    today: date
    value_sen: int | None = None
    hps_sen: int | None = None
    start: date | None = None
    planned_end: date | None = None
    bast_on: date | None = None
    terminated: bool = False
    fiscal_year: int | None = None
    plan_pct: float | None = None  # planned cumulative % today
    actual_pct: float = 0.0  # latest reported cumulative %
    last_report: date | None = None
    last_report_source: str | None = None
    projected_end: date | None = None
    paid_sen: int = 0
    advance_sen: int = 0
    payment_sources: list[str] = field(default_factory=list)
    addenda: list[dict[str, Any]] = field(default_factory=list)
    working_days_silent: int | None = None  # working days since the last report (or the start)
    no_work_claims: list[str] = field(default_factory=list)  # ticket codes of citizens saying "no work"


@dataclass(frozen=True)
class Thresholds:
    paid_ahead_margin_pct: float = 5.0
    silent_working_days: int = 10
    claim_vs_ground_pct: float = 50.0
    addenda_min_count: int = 1


@dataclass
class Flag:
    rule: str
    message: str
    numbers: dict[str, Any]
    sources: list[str]


def _rp(sen: int) -> str:
    return "Rp" + f"{sen // 100:,}".replace(",", ".")


def kritis(plan: float | None, actual: float, projected: date | None, fy_end: date | None) -> tuple[bool, str]:
    if plan is None:
        return False, ""
    dev = round(plan - actual, 2)
    if plan <= 70:
        return dev > 10, "periode I (rencana 0-70 %): terlambat > 10 poin"
    if dev > 5:
        return True, "periode II (rencana 70-100 %): terlambat > 5 poin"
    if 0 < dev < 5 and fy_end is not None and (projected is None or projected > fy_end):
        return True, "periode II: terlambat < 5 poin tetapi selesai melewati akhir tahun anggaran"
    return False, ""


def evaluate(f: Facts, th: Thresholds = Thresholds()) -> list[Flag]:
    out: list[Flag] = []
    running = not f.terminated and f.bast_on is None and f.start is not None and f.start <= f.today
    contract_src = f"kontrak {f.number}"
    report_src = [f.last_report_source] if f.last_report_source else []
    if running and f.plan_pct is not None:
        fy_end = date(f.fiscal_year, 12, 31) if f.fiscal_year else None
        hit, why = kritis(f.plan_pct, f.actual_pct, f.projected_end, fy_end)
        if hit:
            dev = round(f.plan_pct - f.actual_pct, 2)
            out.append(Flag("kontrak_kritis", f"Kontrak kritis: rencana {f.plan_pct:.2f} %, realisasi "
                            f"{f.actual_pct:.2f} %, deviasi {dev:.2f} poin ({why})",
                            {"plan_pct": round(f.plan_pct, 2), "actual_pct": round(f.actual_pct, 2), "deviation": dev,
                             "projected_end": f.projected_end.isoformat() if f.projected_end else None,
                             "fiscal_year_end": fy_end.isoformat() if fy_end else None},
                            [f"kurva S rencana {contract_src}", *report_src]))
    if f.value_sen:
        unrecovered = f.advance_sen * max(0.0, 1 - f.actual_pct / 100)
        earned = f.actual_pct / 100 * f.value_sen
        allowed = earned + unrecovered + th.paid_ahead_margin_pct / 100 * f.value_sen
        if f.paid_sen > allowed + 0.5:
            out.append(Flag("bayar_mendahului_progres",
                            f"Dibayar {_rp(f.paid_sen)} sedangkan progres {f.actual_pct:.2f} % x nilai kontrak + "
                            f"uang muka belum kembali = {_rp(int(earned + unrecovered))} (batas toleransi "
                            f"{th.paid_ahead_margin_pct:g} %)",
                            {"paid": f.paid_sen / 100, "earned": round(earned / 100, 2),
                             "unrecovered_advance": round(unrecovered / 100, 2),
                             "margin_pct": th.paid_ahead_margin_pct, "actual_pct": f.actual_pct},
                            [*f.payment_sources, *report_src, contract_src]))
        if f.paid_sen > f.value_sen:
            out.append(Flag("bayar_melebihi_kontrak",
                            f"Total pembayaran {_rp(f.paid_sen)} melebihi nilai kontrak {_rp(f.value_sen)}",
                            {"paid": f.paid_sen / 100, "value": f.value_sen / 100,
                             "excess": (f.paid_sen - f.value_sen) / 100},
                            [*f.payment_sources, contract_src]))
    if f.value_sen and f.hps_sen and f.value_sen > f.hps_sen:
        out.append(Flag("nilai_melebihi_hps", f"Nilai kontrak {_rp(f.value_sen)} melebihi HPS {_rp(f.hps_sen)}",
                        {"value": f.value_sen / 100, "hps": f.hps_sen / 100,
                         "excess_pct": round(100 * (f.value_sen - f.hps_sen) / f.hps_sen, 2)},
                        [contract_src, "hasil tender (HPS)"]))
    raising = [a for a in f.addenda if (a.get("value_delta_sen") or 0) > 0 or (a.get("days") or 0) > 0]
    if raising and len(raising) >= th.addenda_min_count:
        total = sum(int(a.get("value_delta_sen") or 0) for a in raising if (a.get("value_delta_sen") or 0) > 0)
        days = sum(int(a.get("days") or 0) for a in raising if (a.get("days") or 0) > 0)
        out.append(Flag("adendum", f"{len(raising)} adendum menambah nilai {_rp(total)} dan/atau waktu {days} hari",
                        {"count": len(raising), "value_added": total / 100, "days_added": days},
                        [f"adendum {a.get('number') or i + 1} {contract_src}" for i, a in enumerate(raising)]))
    if running and f.working_days_silent is not None and f.working_days_silent >= th.silent_working_days:
        out.append(Flag("tanpa_laporan", f"Tidak ada laporan progres selama {f.working_days_silent} hari kerja "
                        f"(batas {th.silent_working_days})",
                        {"working_days": f.working_days_silent, "limit": th.silent_working_days,
                         "last_report": f.last_report.isoformat() if f.last_report else None},
                        report_src or [contract_src]))
    if (not f.terminated and f.bast_on is None and f.planned_end is not None and f.today > f.planned_end):
        out.append(Flag("lewat_tanpa_bast", f"Tanggal selesai {f.planned_end.strftime('%d/%m/%Y')} terlewati "
                        f"{(f.today - f.planned_end).days} hari tanpa BAST",
                        {"planned_end": f.planned_end.isoformat(), "days_late": (f.today - f.planned_end).days},
                        [contract_src]))
    if f.no_work_claims and f.actual_pct >= th.claim_vs_ground_pct:
        out.append(Flag("klaim_vs_lapangan", f"{len(f.no_work_claims)} laporan warga menyebut tidak ada pekerjaan, "
                        f"penyedia melaporkan {f.actual_pct:.2f} % (batas {th.claim_vs_ground_pct:g} %)",
                        {"citizen_reports": len(f.no_work_claims), "actual_pct": f.actual_pct,
                         "threshold_pct": th.claim_vs_ground_pct},
                        [*(f"laporan warga {c}" for c in f.no_work_claims), *report_src]))
    return out
