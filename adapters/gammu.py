"""Gammu SMSD's database (tables gammu, inbox, outbox, outbox_multipart, sentitems; schema
versions 15-18 on PostgreSQL, MySQL/MariaDB or SQLite): read new inbox rows and join multipart
messages, mark rows processed, and queue replies in outbox for the daemon to send.

Knows Gammu's tables only: never imports hub, never logs a phone number or message text.
"""
from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import (Column, Engine, Integer, MetaData, Table, Text, create_engine, exc, func,
                        insert, literal_column, select, update)
from sqlalchemy.engine import make_url

from adapters import dukcapil
from adapters.base import OutboundMessage, PermanentError, RetryableError, SendResult
from normalizer.types import InboundMessage

SUPPORTED_VERSIONS = range(15, 19)  # 15..18; 18 adds inbox.MessageID / SequencePosition
TEXT_CODINGS = {"Default_No_Compression", "Unicode_No_Compression"}
BINARY_CODING = "8bit"
USSD_CLASS = 127

# GSM 03.38 default alphabet (one septet) and its extension table (two septets).
GSM7_BASIC = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
              "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXT = "^{}\\[~]|€\f"

_meta = MetaData()
GAMMU = Table("gammu", _meta, Column("Version", Integer))


def _inbox_columns() -> list[Column]:
    return [Column("ID", Integer, primary_key=True), Column("ReceivingDateTime"), Column("Text", Text),
            Column("SenderNumber", Text), Column("Coding", Text), Column("UDH", Text),
            Column("SMSCNumber", Text), Column("Class", Integer), Column("TextDecoded", Text),
            Column("RecipientID", Text), Column("Processed")]


INBOX = Table("inbox", _meta, *_inbox_columns())
# Schema 18 only: the daemon's own multipart grouping.
INBOX_18 = Table("inbox", MetaData(), *_inbox_columns(), Column("MessageID", Integer),
                 Column("SequencePosition", Integer))
OUTBOX = Table(
    "outbox", _meta, Column("ID", Integer, primary_key=True), Column("DestinationNumber", Text),
    Column("TextDecoded", Text), Column("Coding", Text), Column("UDH", Text), Column("MultiPart"),
    Column("CreatorID", Text), Column("SenderID", Text), Column("Class", Integer),
    Column("DeliveryReport", Text),
)
OUTBOX_MULTIPART = Table(
    "outbox_multipart", _meta, Column("ID", Integer), Column("SequencePosition", Integer),
    Column("TextDecoded", Text), Column("Coding", Text), Column("UDH", Text), Column("Class", Integer),
)
SENTITEMS = Table(
    "sentitems", _meta, Column("ID", Integer), Column("SequencePosition", Integer),
    Column("DestinationNumber", Text), Column("CreatorID", Text), Column("Status", Text),
)


class GammuSchemaError(RuntimeError):
    """The database is not a Gammu SMSD schema we support."""


@dataclass(frozen=True)
class Concat:
    """Concatenated-SMS information element of a UDH: reference, total parts, this part."""

    ref: int
    total: int
    seq: int


def parse_udh(udh_hex: str | None) -> Concat | None:
    """`050003RRTTSS` (8-bit reference) or `060804RRRRTTSS` (16-bit) -> Concat, else None."""
    if not udh_hex:
        return None
    try:
        data = bytes.fromhex(udh_hex.strip())
    except ValueError:
        return None
    if not data or data[0] + 1 > len(data):
        return None
    i, end = 1, data[0] + 1
    while i + 1 < end:
        iei, length = data[i], data[i + 1]
        body = data[i + 2:i + 2 + length]
        if iei == 0x00 and length == 3 and len(body) == 3 and body[1] >= 1:
            return Concat(body[0], body[1], body[2])
        if iei == 0x08 and length == 4 and len(body) == 4 and body[2] >= 1:
            return Concat((body[0] << 8) | body[1], body[2], body[3])
        i += 2 + length
    return None


def decode_part(row: dict[str, Any]) -> str | None:
    """One part's own text from the hex `Text` column (UCS-2 for the text codings), or None."""
    if row.get("Coding") not in TEXT_CODINGS or not row.get("Text"):
        return None
    try:
        return bytes.fromhex(row["Text"]).decode("utf-16-be", errors="replace")
    except ValueError:
        return None


@dataclass(frozen=True)
class GammuSms:
    """One message as the citizen sent it: the inbox rows of all its parts, joined."""

    ids: tuple[int, ...]
    sender: str
    text: str
    received: datetime | None
    binary: bool = False
    ussd: bool = False
    parts: int = 1
    missing: tuple[int, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    concat: tuple[int, int] | None = None  # (reference, total) of a concatenated SMS (UDH)
    seqs: tuple[int, ...] = ()  # the part numbers present  # the rows could not be read as a message (the hub keeps them for triage)

    @property
    def provider_id(self) -> str:
        """The first inbox ID, with its receiving time so a re-created Gammu database (IDs from
        1 again) can never look like a message we already have."""
        stamp = self.received.strftime("%Y%m%dT%H%M%S") if self.received else "0"
        return f"{min(self.ids)}@{stamp}"


def part_bytes(row: dict[str, Any]) -> bytes | None:
    """One part's own UCS-2/UTF-16 bytes from the hex `Text` column (text codings), or None."""
    if row.get("Coding") not in TEXT_CODINGS or not row.get("Text"):
        return None
    try:
        return bytes.fromhex(row["Text"])
    except ValueError:
        return None


def decode_joined(chunks: list[bytes]) -> str:
    """Parts' bytes joined *before* decoding: an emoji (a UTF-16 surrogate pair) whose halves
    fell in different parts survives; decoded part by part it became two U+FFFD."""
    return b"".join(chunks).decode("utf-16-be", errors="replace")


def join_parts(rows: list[dict[str, Any]]) -> tuple[str, bool]:
    """Text of a message from its part rows (in order) -> (text, binary)."""
    if any(r.get("Coding") == BINARY_CODING for r in rows):
        return "", True
    own = [part_bytes(r) for r in rows]
    if all(b is not None for b in own):
        return decode_joined(own), False  # type: ignore[arg-type]
    # Compressed codings: only TextDecoded; the daemon may have put the whole text in part 1.
    return "".join(r.get("TextDecoded") or "" for r in rows), False


def group_rows(rows: Iterable[dict[str, Any]], version: int) -> list[tuple[tuple, list[dict[str, Any]], int]]:
    """Rows -> [(key, parts in order, expected parts)], in the order their first part arrived."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    totals: dict[tuple, int] = {}
    for r in rows:
        c = parse_udh(r.get("UDH"))
        if version >= 18 and r.get("MessageID"):
            key: tuple = ("mid", r["MessageID"])
            r["_seq"] = r.get("SequencePosition") or (c.seq if c else 1)
            totals[key] = max(totals.get(key, 1), c.total if c else 1, r["_seq"])
        elif c is not None and c.total > 1:
            key = ("udh", r.get("SenderNumber") or "", c.ref, c.total)
            r["_seq"] = c.seq
            totals[key] = c.total
        else:
            key = ("id", r["ID"])
            r["_seq"] = 1
            totals[key] = 1
        groups.setdefault(key, []).append(r)
    out = []
    for key, parts in groups.items():
        seen: dict[int, dict[str, Any]] = {}
        for p in sorted(parts, key=lambda p: (p["_seq"], p["ID"])):
            seen.setdefault(p["_seq"], p)  # a part delivered twice by the network counts once
        out.append((key, [seen[s] for s in sorted(seen)], totals[key]))
    out.sort(key=lambda g: min(p["ID"] for p in g[1]))
    return out


def concat_key(sender: str, ref: int, total: int) -> str:
    """Parts of one concatenated SMS share sender, UDH reference and part count."""
    return f"{sender}|{ref}|{total}"


def _concat_of(parts: list[dict[str, Any]]) -> tuple[int, int] | None:
    for p in parts:
        c = parse_udh(p.get("UDH"))
        if c is not None and c.total > 1:
            return (c.ref, c.total)
    return None


def gsm7_length(text: str) -> int | None:
    """Septets needed in the GSM default alphabet, or None when the text needs UCS-2."""
    n = 0
    for ch in text:
        if ch in GSM7_BASIC:
            n += 1
        elif ch in GSM7_EXT:
            n += 2
        else:
            return None
    return n


def split_sms(text: str) -> tuple[str, list[str]]:
    """(Gammu coding, parts): one part up to 160 GSM-7 / 70 UCS-2 characters, otherwise parts of
    153 / 67 that fit beside a concatenation UDH."""
    if gsm7_length(text) is not None:
        if gsm7_length(text) <= 160:
            return "Default_No_Compression", [text]
        parts, cur, size = [], "", 0
        for ch in text:
            w = 2 if ch in GSM7_EXT else 1
            if size + w > 153:
                parts.append(cur)
                cur, size = "", 0
            cur += ch
            size += w
        parts.append(cur)
        return "Default_No_Compression", parts
    units = text.encode("utf-16-be")
    if len(units) <= 140:
        return "Unicode_No_Compression", [text]
    parts, cur = [], ""
    for ch in text:  # keep surrogate pairs together
        if len((cur + ch).encode("utf-16-be")) > 134:
            parts.append(cur)
            cur = ""
        cur += ch
    parts.append(cur)
    return "Unicode_No_Compression", parts


def _as_datetime(value: Any) -> datetime | None:
    """ReceivingDateTime: a datetime (PostgreSQL, MySQL) or text (SQLite), modem-local time."""
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _engine_url(url: str) -> str:
    u = make_url(url)
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    elif u.drivername in ("mysql", "mariadb"):
        u = u.set(drivername="mysql+pymysql")
    return u.render_as_string(hide_password=False)


class GammuAdapter:
    """A Gammu SMSD database: the modem's inbox in, our replies out."""

    name = "sms"

    def __init__(self, database_url: str | None = None, phone_id: str | None = None,
                 creator: str = "simpul", multipart_wait_s: float = 120.0, engine: Engine | None = None):
        self.database_url = database_url
        self.phone_id = phone_id
        self.creator = creator
        self.multipart_wait_s = multipart_wait_s
        self._engine = engine
        self._version: int | None = None
        self._first_seen: dict[tuple, float] = {}
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            if not self.database_url:
                raise PermanentError("gammu_database_url is not configured")
            self._engine = create_engine(_engine_url(self.database_url), pool_pre_ping=True)
        return self._engine

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def schema_version(self) -> int:
        """The `gammu` table's Version row; raises GammuSchemaError outside 15..18."""
        if self._version is None:
            try:
                with self.engine.connect() as conn:
                    v = conn.execute(select(func.max(GAMMU.c.Version))).scalar()
            except exc.ProgrammingError as e:
                raise GammuSchemaError(f"no gammu table: is this a Gammu SMSD database? ({type(e).__name__})") from None
            if v is None or int(v) not in SUPPORTED_VERSIONS:
                raise GammuSchemaError(f"Gammu schema version {v} is not supported (15 to 18)")
            self._version = int(v)
        return self._version

    # -- inbox -----------------------------------------------------------------------------
    def fetch(self, limit: int = 500, now: float | None = None) -> list[GammuSms]:
        """New messages (Processed = 'false'), multipart joined. A message with parts still
        missing waits up to `multipart_wait_s` for them, then comes as it is."""
        version = self.schema_version()
        table = INBOX_18 if version >= 18 else INBOX
        q = (select(*table.columns).where(table.c.Processed == literal_column("'false'"))
             .order_by(table.c.ID).limit(limit))
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        now = time.monotonic() if now is None else now
        out: list[GammuSms] = []
        live_keys = set()
        for key, parts, total in group_rows(rows, version):
            live_keys.add(key)
            seqs = {p["_seq"] for p in parts}
            missing = tuple(s for s in range(1, total + 1) if s not in seqs)
            if missing:
                first = self._first_seen.setdefault(key, now)
                if now - first < self.multipart_wait_s:
                    continue
            try:
                out.append(self._message(parts, total, missing, version))
            except Exception as exc:  # rows we cannot read are never left behind (or lost)
                out.append(GammuSms(
                    ids=tuple(p["ID"] for p in parts), sender=str(parts[0].get("SenderNumber") or "").strip(),
                    text="".join(str(p.get("TextDecoded") or "") for p in parts), received=None,
                    parts=total, error=f"{type(exc).__name__}: {exc}"[:300],
                    raw={"rows": [{k: str(v) for k, v in p.items() if not k.startswith("_")} for p in parts]}))
        for key in list(self._first_seen):
            if key not in live_keys:
                del self._first_seen[key]
        return out

    def _message(self, parts: list[dict[str, Any]], total: int, missing: tuple[int, ...],
                 version: int) -> GammuSms:
        text, binary = join_parts(parts)
        head = parts[0]
        return GammuSms(
            ids=tuple(p["ID"] for p in parts), sender=(head.get("SenderNumber") or "").strip(),
            text=text, received=_as_datetime(head.get("ReceivingDateTime")),
            binary=binary, ussd=head.get("Class") == USSD_CLASS, parts=total, missing=missing,
            concat=_concat_of(parts), seqs=tuple(p["_seq"] for p in parts),
            raw={"parts": {str(p["_seq"]): {"text": p.get("Text") or "", "coding": p.get("Coding"),
                                            "decoded": p.get("TextDecoded") or ""} for p in parts},"inbox_ids": [p["ID"] for p in parts], "coding": head.get("Coding"),
                 "udh": [p.get("UDH") or "" for p in parts], "class": head.get("Class"),
                 "recipient_id": head.get("RecipientID"), "smsc": head.get("SMSCNumber"),
                 "receiving": str(head.get("ReceivingDateTime")), "schema_version": version},
        )

    def mark_processed(self, ids: Iterable[int]) -> int:
        ids = sorted(set(ids))
        if not ids:
            return 0
        with self.engine.begin() as conn:
            return conn.execute(update(INBOX).where(INBOX.c.ID.in_(ids))
                                .values(Processed=literal_column("'true'"))).rowcount

    def to_inbound(self, sms: GammuSms) -> InboundMessage:
        fields: dict[str, Any] = dict(dukcapil.parse(sms.text) or {}) if not sms.binary else {}
        if sms.binary:
            fields["binary"] = True
        if sms.parts > 1:
            fields["sms_parts"] = sms.parts
        if sms.missing:
            fields["sms_parts_missing"] = list(sms.missing)
        if sms.concat is not None:  # a later part of the same message finds it by this key
            fields["sms_concat"] = concat_key(sms.sender, *sms.concat)
        return InboundMessage(channel="sms", text=sms.text, sender=sms.sender, provider_id=sms.provider_id,
                              fields=fields, raw=sms.raw)

    # -- outbox ----------------------------------------------------------------------------
    def send_sync(self, message: OutboundMessage) -> SendResult:
        to = message.to.removeprefix("whatsapp:").strip()
        if not re.fullmatch(r"\+?\d{3,19}", to):
            raise PermanentError("destination is not a phone number")
        if not message.text:
            raise PermanentError("empty message")
        mid = str(message.extra.get("message_id") or "")
        creator = f"{self.creator}:{mid}" if mid else self.creator
        coding, parts = split_sms(message.text)
        try:
            with self._lock, self.engine.begin() as conn:
                if mid:  # sent before and our outbox lost the answer: do not send twice
                    for table in (OUTBOX, SENTITEMS):
                        prior = conn.execute(select(table.c.ID).where(
                            table.c.DestinationNumber == to, table.c.CreatorID == creator).limit(1)).scalar()
                        if prior is not None:
                            return SendResult(provider_id=str(prior), detail={"status": "queued", "repeat": True})
                multi = len(parts) > 1
                ref = random.randint(0, 255)
                udh = [f"050003{ref:02X}{len(parts):02X}{i + 1:02X}" if multi else "" for i in range(len(parts))]
                values = {"DestinationNumber": to, "TextDecoded": parts[0], "Coding": coding,
                          "UDH": udh[0], "MultiPart": literal_column("'true'" if multi else "'false'"),
                          "CreatorID": creator, "Class": -1, "DeliveryReport": "default"}
                if self.phone_id:
                    values["SenderID"] = self.phone_id
                res = conn.execute(insert(OUTBOX).values(**values))
                oid = res.inserted_primary_key[0] if res.inserted_primary_key else None
                if oid is None:
                    oid = conn.execute(select(func.max(OUTBOX.c.ID)).where(OUTBOX.c.CreatorID == creator)).scalar()
                for i, part in enumerate(parts[1:], start=2):
                    conn.execute(insert(OUTBOX_MULTIPART).values(ID=oid, SequencePosition=i, TextDecoded=part,
                                                                 Coding=coding, UDH=udh[i - 1], Class=-1))
        except (exc.OperationalError, exc.InterfaceError) as e:
            raise RetryableError(f"Gammu database unavailable: {type(e.orig or e).__name__}") from None
        except exc.DBAPIError as e:
            raise PermanentError(f"Gammu outbox refused the message: {type(e.orig or e).__name__}") from None
        return SendResult(provider_id=str(oid), detail={"status": "queued", "parts": len(parts)})

    async def send(self, message: OutboundMessage) -> SendResult:
        return await asyncio.to_thread(self.send_sync, message)
