"""E-mail delivery against a real local SMTP server (aiosmtpd): plain, STARTTLS with a
self-signed certificate made in the test (trustme), implicit TLS, AUTH, and the error table;
then a ticket for an e-mail OPD goes from the outbox to the server's mailbox."""
from __future__ import annotations

import email
import email.policy
import ssl

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select
from sqlmodel import Session

from adapters import email_smtp
from adapters.base import PermanentError, RetryableError
from hub import outbox
from hub.db import session_scope
from hub.models import Outbox, TicketEvent
from hub.tickets import queue_delivery
from tests.delivery.helpers import make_ticket


class Mailbox:
    def __init__(self, reject: str | None = None):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes = []
        self.reject = reject

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject:
            return self.reject
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ctx, str(path)


def _auth(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == b"simpul" and data.password == b"rahasia-smtp"
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server(request, ca):
    mode, reject = getattr(request, "param", ("none", None))
    ctx, _ = ca
    box = Mailbox(reject=reject)
    port = _free_port()
    kwargs = {}
    if mode == "starttls":
        kwargs = dict(tls_context=ctx, require_starttls=True, authenticator=_auth, auth_require_tls=True)
    elif mode == "tls":
        kwargs = dict(ssl_context=ctx)
    ctl = Controller(box, hostname="127.0.0.1", port=port, **kwargs)
    ctl.start()
    yield box, port, mode
    ctl.stop()


def _cfg(port: int, mode: str, ca_file: str | None, **kw) -> email_smtp.SmtpConfig:
    return email_smtp.SmtpConfig(host="localhost" if mode != "none" else "127.0.0.1", port=port, tls=mode,
                                 from_addr="simpul@trenggalekkab.go.id", ca_file=ca_file, timeout_s=5, **kw)


MAIL = email_smtp.Email(to=("pengaduan.pupr@trenggalekkab.go.id",), subject="[Simpul K7X2M9P] Laporan baru: jalan",
                        text="Yth. PUPR,\nLaporan warga: jalan berlubang.", html="<p>Laporan warga: <b>jalan</b></p>",
                        message_id="msg_abc123")


@pytest.mark.parametrize("smtp_server", [("none", None), ("starttls", None), ("tls", None)], indirect=True,
                         ids=["plain", "starttls", "implicit-tls"])
async def test_round_trip(smtp_server, ca):
    box, port, mode = smtp_server
    creds = {"username": "simpul", "password": "rahasia-smtp"} if mode == "starttls" else {}
    res = await email_smtp.send(_cfg(port, mode, ca[1], **creds), MAIL)
    assert res.provider_id == "<msg_abc123@trenggalekkab.go.id>"
    [msg] = box.messages
    assert msg["Subject"] == MAIL.subject and msg["Message-ID"] == "<msg_abc123@trenggalekkab.go.id>"
    assert msg.get_body(("plain",)).get_content().startswith("Yth. PUPR")
    assert "<b>jalan</b>" in msg.get_body(("html",)).get_content()


@pytest.mark.parametrize("smtp_server", [("starttls", None)], indirect=True)
async def test_untrusted_certificate_is_not_accepted(smtp_server):
    box, port, mode = smtp_server
    with pytest.raises(RetryableError, match="SMTP connection failed"):
        await email_smtp.send(_cfg(port, "starttls", None), MAIL)  # no CA given: the self-signed cert fails
    assert box.messages == []


@pytest.mark.parametrize("smtp_server,error", [
    (("none", "550 5.1.1 mailbox unknown"), PermanentError),
    (("none", "451 4.3.0 try again later"), RetryableError),
], indirect=["smtp_server"])
async def test_refusals(smtp_server, error):
    box, port, mode = smtp_server
    with pytest.raises(error, match="recipients refused"):
        await email_smtp.send(_cfg(port, mode, None), MAIL)


async def test_server_down_is_retryable():
    with pytest.raises(RetryableError):
        await email_smtp.send(_cfg(_free_port(), "none", None), MAIL)


def test_no_recipient_is_permanent():
    with pytest.raises(PermanentError):
        email_smtp.build_message(email_smtp.SmtpConfig(), email_smtp.Email(to=(), subject="x", text="y"))


@pytest.mark.parametrize("smtp_server", [("none", None)], indirect=True)
async def test_ticket_reaches_the_opd_mailbox(smtp_server, sqlite_url, seeded, monkeypatch):
    """PUPR is an e-mail OPD in the shipped config: ticket -> outbox -> SMTP -> mailbox."""
    from hub.db import get_engine
    from hub.settings import reset_settings

    box, port, _ = smtp_server
    monkeypatch.setenv("SIMPUL_SMTP_PORT", str(port))
    reset_settings()
    with session_scope() as s:
        t = make_ticket(s, opd="PUPR", code="K7X2M9P", text="Jalan berlubang besar di Desa Sumberingin",
                        reporter_phone="+6281234567890", reporter_name="Budi", latitude=-8.05, longitude=111.7)
        queue_delivery(s, t, "ticket.created")
    engine = get_engine()
    assert await outbox.run_once(engine) == 1
    [msg] = box.messages
    assert box.envelopes[0].rcpt_tos == ["pengaduan.pupr@trenggalekkab.go.id"]
    assert "[Simpul K7X2M9P] Laporan baru" in msg["Subject"]
    text = msg.get_body(("plain",)).get_content()
    assert "Jalan berlubang besar di Desa Sumberingin" in text and "Kode laporan" in text
    assert "Kec. Trenggalek" in text and "+6281234567890" in text
    assert "/api/v1/opd/tickets/K7X2M9P/status" in text
    assert "Yth. Dinas Pekerjaan Umum" in msg.get_body(("html",)).get_content()
    with Session(engine) as s:
        row = s.scalars(select(Outbox)).one()
        ev = s.scalars(select(TicketEvent).where(TicketEvent.kind == "delivered")).one()
    assert row.state == "done" and msg["Message-ID"] == f"<{row.message_id}@trenggalekkab.go.id>"
    assert ev.data["provider_id"] == msg["Message-ID"] and ev.note == "ticket.created via email"


async def test_no_smtp_server_just_retries(sqlite_url, seeded, monkeypatch):
    """`make run` with no mail catcher: the e-mail waits in the outbox, nothing crashes."""
    from hub.db import get_engine
    from hub.settings import reset_settings

    monkeypatch.setenv("SIMPUL_SMTP_PORT", str(_free_port()))
    reset_settings()
    with session_scope() as s:
        queue_delivery(s, make_ticket(s, opd="PUPR", code="K7X2M9Q"), "ticket.created")
    assert await outbox.run_once(get_engine()) == 1
    with Session(get_engine()) as s:
        row = s.scalars(select(Outbox)).one()
    assert row.state == "pending" and row.attempts == 1 and "SMTP connection failed" in row.last_error


@pytest.mark.parametrize("smtp_server", [("none", None)], indirect=True)
async def test_escalation_email_reaches_the_opd_head(smtp_server, sqlite_url, seeded, monkeypatch):
    from datetime import datetime, timedelta, timezone

    from hub.db import get_engine
    from hub.escalation import escalate_once
    from hub.settings import reset_settings

    box, port, _ = smtp_server
    monkeypatch.setenv("SIMPUL_SMTP_PORT", str(port))
    reset_settings()
    now = datetime.now(timezone.utc)
    with session_scope() as s:
        make_ticket(s, opd="BPBD", code="BJR2345", urgency="darurat", text="Banjir setinggi dada di Desa Ngantru",
                    created_at=now - timedelta(minutes=50), due_at=now - timedelta(minutes=20))
    escalate_once(get_engine(), seeded, now)
    assert await outbox.run_once(get_engine(), kinds=["notify"]) == 1
    [msg] = box.messages
    assert box.envelopes[0].rcpt_tos == ["kalak.bpbd@trenggalekkab.go.id"]
    assert msg["Subject"].startswith("[DARURAT] [Simpul BJR2345] Eskalasi laporan terlambat")
    text = msg.get_body(("plain",)).get_content()
    assert "Banjir setinggi dada" in text and "eskalasi ke kepala OPD" in text and "Tingkat eskalasi : 2" in text


async def test_email_mentions_attachments_with_hub_links_reply_to_and_a_wib_date(smtp_server, sqlite_url, seeded,
                                                                                monkeypatch):
    """Issue #13 item 5: the OPD's mail names the attachments (signed hub links, also for a
    Telegram photo and a web upload), has a Reply-To, and a Date in the regency's zone."""
    from email.utils import parsedate_to_datetime

    from hub.db import get_engine
    from hub.settings import reset_settings

    box, port, _ = smtp_server
    monkeypatch.setenv("SIMPUL_SMTP_PORT", str(port))
    monkeypatch.setenv("SIMPUL_SMTP_REPLY_TO", "pengaduan@trenggalekkab.go.id")
    reset_settings()
    with session_scope() as s:
        t = make_ticket(s, opd="PUPR", code="K7X2M9Q", text="Jalan berlubang",
                        attachments=[{"url": "telegram-file:AgACAgUAAxkBAAIBsmaLarge", "kind": "photo"},
                                     {"url": "/lampiran/abc.jpg", "kind": "photo"}])
        queue_delivery(s, t, "ticket.created")
    assert await outbox.run_once(get_engine()) == 1
    [msg] = box.messages
    text = msg.get_body(("plain",)).get_content()
    assert "Lampiran (2 berkas" in text and "(2 lampiran)" in msg["Subject"]
    assert text.count("http://127.0.0.1:8000/media/K7X2M9Q/") == 2 and "telegram-file" not in text
    assert msg["Reply-To"] == "pengaduan@trenggalekkab.go.id"
    assert msg["Date"].endswith("+0700")
    assert parsedate_to_datetime(msg["Date"]).utcoffset().total_seconds() == 7 * 3600
