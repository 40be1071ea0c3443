"""Due times on the Indonesian working calendar: table tests over hub.sla.compute_due.

Each row is a real calendar case (WIB, working hours 07:30-16:00 Mon-Fri) with the due time
worked out by hand from the 2026 national holidays and Trenggalek's cuti bersama list.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from hub.sla import WorkCalendar, compute_due

WIB = ZoneInfo("Asia/Jakarta")
SLA = {
    "timezone": "Asia/Jakarta",
    "working_hours": {"start": "07:30", "end": "16:00", "days": [0, 1, 2, 3, 4]},
    "urgency": {"darurat": {"minutes": 30}, "tinggi": {"working_days": 1}, "normal": {"working_days": 5}},
    "category_overrides": {"KEPENDUDUKAN": {"working_days": 3}},
    # SKB 3 Menteri No. 1497/2/5 Tahun 2025: the eight cuti bersama days of 2026 (as shipped)
    "cuti_bersama": ["2026-02-16", "2026-03-18", "2026-03-20", "2026-03-23", "2026-03-24", "2026-05-15",
                     "2026-05-28", "2026-12-24"],
}
HOURLY = {**SLA, "urgency": {**SLA["urgency"], "tinggi": {"working_hours": 4}}}
NO_CUTI = {**SLA, "cuti_bersama": []}


def wib(y, mo, d, h=0, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=WIB)


CASES = [
    # label, sla, urgency, category, created (WIB), due (WIB)
    ("friday afternoon, 1 working day -> monday close", SLA, "tinggi", None, wib(2026, 11, 27, 14), wib(2026, 11, 30, 16)),
    ("friday afternoon, 5 working days -> next friday", SLA, "normal", None, wib(2026, 11, 27, 14), wib(2026, 12, 4, 16)),
    ("friday after hours counts from monday", SLA, "tinggi", None, wib(2026, 11, 27, 17), wib(2026, 12, 1, 16)),
    ("at closing time exactly counts from the next day", SLA, "tinggi", None, wib(2026, 11, 27, 16), wib(2026, 12, 1, 16)),
    ("saturday counts from monday", SLA, "normal", None, wib(2026, 11, 28, 10), wib(2026, 12, 7, 16)),
    ("before opening counts that day", SLA, "tinggi", None, wib(2026, 11, 30, 6), wib(2026, 12, 1, 16)),
    ("national holiday (17 Agustus, monday) is skipped", SLA, "tinggi", None, wib(2026, 8, 14, 10), wib(2026, 8, 18, 16)),
    ("report on a national holiday counts from the next working day", SLA, "tinggi", None, wib(2026, 8, 17, 9), wib(2026, 8, 19, 16)),
    ("cuti bersama around Nyepi and Idul Fitri is skipped", SLA, "normal", None, wib(2026, 3, 17, 10), wib(2026, 3, 31, 16)),
    ("cuti bersama before Imlek (16 Feb) is skipped", SLA, "tinggi", None, wib(2026, 2, 13, 10), wib(2026, 2, 18, 16)),
    ("cuti bersama after Idul Adha (28 May) is skipped", SLA, "tinggi", None, wib(2026, 5, 26, 10), wib(2026, 5, 29, 16)),
    ("without the cuti bersama list those days count", NO_CUTI, "normal", None, wib(2026, 3, 17, 10), wib(2026, 3, 25, 16)),
    ("cuti bersama 24 Dec + Christmas + weekend", SLA, "tinggi", None, wib(2026, 12, 23, 10), wib(2026, 12, 28, 16)),
    ("year boundary uses next year's holidays (1 and 5 Jan 2027)", SLA, "normal", None, wib(2026, 12, 31, 10), wib(2027, 1, 11, 16)),
    ("category override: KEPENDUDUKAN 3 working days", SLA, "normal", "KEPENDUDUKAN", wib(2026, 11, 30, 9), wib(2026, 12, 3, 16)),
    ("darurat ignores the category override", SLA, "darurat", "KEPENDUDUKAN", wib(2026, 11, 30, 9), wib(2026, 11, 30, 9, 30)),
    ("darurat at 03:00 sunday: minutes, around the clock", SLA, "darurat", None, wib(2026, 11, 29, 3), wib(2026, 11, 29, 3, 30)),
    ("darurat on a national holiday night", SLA, "darurat", None, wib(2026, 8, 17, 3), wib(2026, 8, 17, 3, 30)),
    ("darurat crossing midnight", SLA, "darurat", None, wib(2026, 11, 27, 23, 45), wib(2026, 11, 28, 0, 15)),
    ("unknown urgency falls back to 5 working days", SLA, "sedang", None, wib(2026, 11, 30, 9), wib(2026, 12, 7, 16)),
    ("working hours: friday 14:00 + 4h -> monday 09:30", HOURLY, "tinggi", None, wib(2026, 11, 27, 14), wib(2026, 11, 30, 9, 30)),
    ("working hours: after hours friday -> monday 11:30", HOURLY, "tinggi", None, wib(2026, 11, 27, 18), wib(2026, 11, 30, 11, 30)),
    ("working hours: before opening -> same day 11:30", HOURLY, "tinggi", None, wib(2026, 11, 30, 6), wib(2026, 11, 30, 11, 30)),
    ("working hours: across a holiday monday", HOURLY, "tinggi", None, wib(2026, 8, 14, 15), wib(2026, 8, 18, 10, 30)),
]


@pytest.mark.parametrize("label,sla,urgency,category,created,due", CASES, ids=[c[0] for c in CASES])
def test_compute_due(label, sla, urgency, category, created, due):
    got = compute_due(sla, urgency, category, created.astimezone(timezone.utc))
    assert got.tzinfo is not None
    assert got == due.astimezone(timezone.utc), f"{label}: got {got.astimezone(WIB)}"


@pytest.mark.parametrize("day,working", [
    ("2026-11-27", True), ("2026-11-28", False), ("2026-08-17", False), ("2026-03-18", False),
    ("2026-12-24", False), ("2026-12-25", False), ("2026-03-20", False), ("2026-02-16", False), ("2026-05-28", False),
    ("2026-03-25", True),
])
def test_working_day(day, working):
    from datetime import date

    assert WorkCalendar(SLA).is_working_day(date.fromisoformat(day)) is working


def test_shipped_sla_config_gives_due_times():
    from hub.config import load_regency
    from config import DEFAULT_CONFIG_DIR

    sla = load_regency(DEFAULT_CONFIG_DIR).sla
    created = wib(2026, 11, 27, 14).astimezone(timezone.utc)
    assert compute_due(sla, "darurat", None, created) == wib(2026, 11, 27, 14, 30).astimezone(timezone.utc)
    assert compute_due(sla, "tinggi", None, created) == wib(2026, 11, 30, 16).astimezone(timezone.utc)


def test_shipped_cuti_bersama_2026_is_the_skb_list_and_names_it():
    """Issue #13 item 11: SKB 3 Menteri No. 1497 / 2 / 5 Tahun 2025 lists eight days; Nyepi
    itself (19 March) is a national holiday, not cuti bersama."""
    from pathlib import Path

    import yaml

    path = Path(__file__).resolve().parents[2] / "config" / "trenggalek" / "sla.yaml"
    text = path.read_text(encoding="utf-8")
    days = [d for d in yaml.safe_load(text)["cuti_bersama"] if d.startswith("2026")]
    assert days == SLA["cuti_bersama"]
    assert "SKB 3 Menteri" in text and "1497" in text
    cal = WorkCalendar(yaml.safe_load(text))
    assert not cal.is_working_day(datetime(2026, 3, 19).date())  # Nyepi, from the holidays package
