"""Pure S-curve arithmetic (kurva S): the planned curve from weighted schedule items, or a
straight line between start and planned end; the actual curve from progress reports; the
projected completion date. Dates in, percentages (0-100) out; no database, no clock."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Iterable, Sequence


@dataclass(frozen=True)
class Item:
    name: str
    weight: float
    start: date
    end: date


def items_from(schedule: Iterable[dict[str, Any]]) -> list[Item]:
    out = []
    for it in schedule or ():
        out.append(Item(str(it.get("name") or it.get("uraian") or "-"), float(it.get("weight") or it.get("bobot") or 0),
                        _d(it["start"]), _d(it["end"])))
    return [i for i in out if i.weight > 0]


def _d(v: Any) -> date:
    return v if isinstance(v, date) else date.fromisoformat(str(v)[:10])


def _frac(d: date, start: date, end: date) -> float:
    if d <= start:
        return 0.0
    if d >= end:
        return 1.0
    return (d - start).days / max(1, (end - start).days)


def planned_pct(d: date, start: date | None, end: date | None, schedule: Sequence[Item] = ()) -> float | None:
    """Planned cumulative progress on day d: weighted schedule items, else a straight line."""
    if schedule:
        total = sum(i.weight for i in schedule)
        return round(100.0 * sum(i.weight * _frac(d, i.start, i.end) for i in schedule) / total, 4)
    if start is None or end is None:
        return None
    return round(100.0 * _frac(d, start, end), 4)


def planned_points(start: date | None, end: date | None, schedule: Sequence[Item] = (), n: int = 24
                   ) -> list[tuple[date, float]]:
    if schedule:
        start = min(i.start for i in schedule)
        end = max(i.end for i in schedule)
    if start is None or end is None:
        return []
    span = max(1, (end - start).days)
    days = sorted({start + timedelta(days=round(span * k / n)) for k in range(n + 1)})
    return [(d, planned_pct(d, start, end, schedule) or 0.0) for d in days]


def actual_at(d: date, reports: Sequence[tuple[date, float]]) -> float:
    """Cumulative progress on day d: the latest report on or before d (0 before any)."""
    best = 0.0
    latest = None
    for when, pct in reports:
        if when <= d and (latest is None or when >= latest):
            latest, best = when, pct
    return best


def projected_end(start: date | None, reports: Sequence[tuple[date, float]]) -> date | None:
    """Completion at the average pace so far; None when nothing was done yet (never)."""
    if start is None or not reports:
        return None
    when, pct = max(reports)
    if pct >= 100:
        return when
    days = (when - start).days
    if pct <= 0 or days <= 0:
        return None
    rate = pct / days
    return when + timedelta(days=int(-(-(100 - pct) // rate)))
