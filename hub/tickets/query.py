"""Which tickets a list shows: one TicketFilter, one visibility rule, one cursor format.

The ticket API (/api/v1/tickets), the staff pages (/tiket) and the OPD pull API
(/api/v1/opd/tickets) build their queries here, so "an OPD sees only its tickets" is written
once (`visible_to`, `get_visible`). Another OPD's ticket is NotFound, never Forbidden, so codes
of other OPDs cannot be probed.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol, Sequence

from sqlalchemy import Select, or_, select
from sqlmodel import Session

from hub.models import OPEN_STATUSES, Ticket
from hub.tickets.errors import TicketError


class Viewer(Protocol):
    role: str
    opd_code: str | None


class InvalidCursor(TicketError):
    status_code = 400


def _aware(d: datetime) -> datetime:
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


@dataclass
class TicketFilter:
    """What a ticket list asks for; every field None/empty means "any"."""

    statuses: Sequence[str] = ()
    opd: str | None = None
    channel: str | None = None
    kecamatan: str | None = None
    desa: str | None = None  # Kemendagri desa code
    no_place: bool = False  # tickets without a known kecamatan
    urgency: str | None = None
    text: str | None = None  # a ticket code, or words in the report
    created_since: datetime | None = None
    created_until: datetime | None = None
    updated_since: datetime | None = None
    overdue: bool | None = None  # True: open and past due; False: not that
    needs_triage: bool | None = None
    open_only: bool = False

    def apply(self, stmt: Select) -> Select:
        if self.statuses:
            stmt = stmt.where(Ticket.status.in_(list(self.statuses)))
        for value, col in ((self.opd, Ticket.opd_code), (self.channel, Ticket.channel),
                           (self.urgency, Ticket.urgency), (self.kecamatan, Ticket.kecamatan_code),
                           (self.desa, Ticket.desa_code)):
            if value:
                stmt = stmt.where(col == value)
        if self.no_place:
            stmt = stmt.where(Ticket.kecamatan_code.is_(None))
        if self.text and self.text.strip():
            text = self.text.strip()
            # Search never matches a NIK: words are looked up in the report as written, but a
            # query with digits only in the text whose NIKs are masked (text_clean).
            col = Ticket.text_clean if any(ch.isdigit() for ch in text) else Ticket.text_original
            stmt = stmt.where(or_(Ticket.code == text.upper(), col.ilike(f"%{text}%")))
        if self.created_since is not None:
            stmt = stmt.where(Ticket.created_at >= _aware(self.created_since))
        if self.created_until is not None:
            stmt = stmt.where(Ticket.created_at < _aware(self.created_until))
        if self.updated_since is not None:
            stmt = stmt.where(Ticket.updated_at >= _aware(self.updated_since))
        if self.overdue is not None:
            cond = Ticket.status.in_(OPEN_STATUSES) & (Ticket.due_at < datetime.now(timezone.utc))
            stmt = stmt.where(cond if self.overdue else ~cond)
        if self.needs_triage is not None:
            stmt = stmt.where(Ticket.needs_triage.is_(self.needs_triage))
        if self.open_only:
            stmt = stmt.where(Ticket.status.in_(OPEN_STATUSES))
        return stmt

    def query(self, who: Viewer | None = None) -> Select:
        """SELECT tickets matching this filter that `who` may see (no order, no limit)."""
        stmt = self.apply(select(Ticket))
        return visible_to(stmt, who) if who is not None else stmt


def visible_to(stmt: Select, who: Viewer) -> Select:
    """The one visibility rule: OPD staff and OPD keys see only their own OPD's tickets."""
    if who.role == "opd":
        return stmt.where(Ticket.opd_code == who.opd_code)
    return stmt


def can_see(ticket: Ticket, who: Viewer) -> bool:
    return who.role != "opd" or ticket.opd_code == who.opd_code


def get_visible(session: Session, code: str, who: Viewer) -> Ticket:
    """The ticket behind `code` if `who` may see it; NotFound otherwise (also for other OPDs')."""
    from hub.tickets import NotFound, resolve_code

    t = resolve_code(session, code)
    if t is None or not can_see(t, who):
        raise NotFound(f"ticket {code} not found")
    return t


# ---------------------------------------------------------------- cursors
MAX_CURSOR_CHARS = 128


def encode_cursor(*parts: Any) -> str:
    """An opaque page cursor: its parts joined by "|", URL-safe base64 without padding."""
    raw = "|".join(p.astimezone(timezone.utc).isoformat() if isinstance(p, datetime) else str(p) for p in parts)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> tuple[Any, ...]:
    """The parts of a cursor made by encode_cursor, each converted by its type (datetime or a
    callable such as int); InvalidCursor (400) when it was not made here. Cursors are short and
    their integers are ids the store can take (positive, 64-bit): anything else is refused here
    rather than becoming a 500 in the query."""
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError(len(cursor))
        parts = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
        if len(parts) != len(types):
            raise ValueError(cursor)
        values = tuple(datetime.fromisoformat(p) if t is datetime else t(p) for p, t in zip(parts, types))
        if any(isinstance(v, int) and not 0 < v < 2 ** 63 for v in values):
            raise ValueError(values)
        return values
    except Exception:
        raise InvalidCursor("invalid cursor: pass next_cursor of the previous page unchanged") from None
