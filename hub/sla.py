"""Due times on the Indonesian working calendar (holidays package + the regency's cuti bersama).

Pure calendar arithmetic over the SLA config; the scheduler jobs that act on overdue tickets
live in hub/escalation.py.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays


@lru_cache(maxsize=32)
def _holiday_set(years: tuple[int, ...], extra: tuple[str, ...]) -> frozenset[date]:
    days = set(holidays.country_holidays("ID", years=list(years)).keys())
    days.update(date.fromisoformat(d) for d in extra)
    return frozenset(days)


class WorkCalendar:
    def __init__(self, sla: dict[str, Any]):
        self.tz = ZoneInfo(sla.get("timezone", "Asia/Jakarta"))
        wh = sla.get("working_hours") or {}
        self.start = time.fromisoformat(wh.get("start", "07:30"))
        self.end = time.fromisoformat(wh.get("end", "16:00"))
        self.days = set(wh.get("days", [0, 1, 2, 3, 4]))
        self.extra = tuple(str(d) for d in sla.get("cuti_bersama") or ())

    def is_working_day(self, d: date) -> bool:
        if d.weekday() not in self.days:
            return False
        return d not in _holiday_set((d.year - 1, d.year, d.year + 1), self.extra)

    def add_working_days(self, start: datetime, n: int) -> datetime:
        """The end of the n-th working day after the day of `start` (local), returned in UTC.

        A report that arrives after hours or on a holiday counts from the next working day.
        """
        local = start.astimezone(self.tz)
        d = local.date()
        if not self.is_working_day(d) or local.time() >= self.end:
            d += timedelta(days=1)
            while not self.is_working_day(d):
                d += timedelta(days=1)
        counted = 0
        while counted < n:
            d += timedelta(days=1)
            if self.is_working_day(d):
                counted += 1
        return datetime.combine(d, self.end, self.tz).astimezone(timezone.utc)

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        local = start.astimezone(self.tz)
        remaining = timedelta(hours=hours)
        cur = local
        while True:
            d = cur.date()
            if self.is_working_day(d):
                day_start = datetime.combine(d, self.start, self.tz)
                day_end = datetime.combine(d, self.end, self.tz)
                if cur < day_start:
                    cur = day_start
                if cur < day_end:
                    avail = day_end - cur
                    if remaining <= avail:
                        return (cur + remaining).astimezone(timezone.utc)
                    remaining -= avail
            cur = datetime.combine(d + timedelta(days=1), self.start, self.tz)


def rule_for(sla: dict[str, Any], urgency: str, category: str | None) -> dict[str, Any]:
    if urgency != "darurat" and category:
        override = (sla.get("category_overrides") or {}).get(category)
        if override:
            return override
    return (sla.get("urgency") or {}).get(urgency) or {"working_days": 5}


def compute_due(sla: dict[str, Any], urgency: str, category: str | None, created_at: datetime) -> datetime:
    rule = rule_for(sla, urgency, category)
    if "minutes" in rule:  # emergencies: around the clock
        return created_at + timedelta(minutes=float(rule["minutes"]))
    cal = WorkCalendar(sla)
    if "working_hours" in rule:
        return cal.add_working_hours(created_at, float(rule["working_hours"]))
    return cal.add_working_days(created_at, int(rule.get("working_days", 5)))
