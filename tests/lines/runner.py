"""Shared table runner for every line's tests: one row = one provider payload and what the hub
must make of it, or one reply and the exact request the provider must get. It never fakes the hub.

Three kinds of table, one checker of canonical messages (`Expect`, `check_message`):
- incoming over HTTP: `Case` rows, `run_case` (webhooks, the hotline API);
- pulled from the provider: `PullCase` rows, `run_pull` (Gammu's inbox, LAPOR!'s reports);
- outgoing: `OutCase` rows, `run_outgoing` (message in -> the provider request, or the error
  class with its Retry-After; secrets never in the error text nor the logs).

How to use it (see tests/lines/twilio/test_twilio.py for a full example):

    from tests.lines.runner import Case, run_case

    CASES = [
        Case("text", "message__text.json", status=200, channel="sms", text="Jalan rusak",
             sender="+6281234567890", provider_id="SM0001", reply="kode"),
        Case("bad signature", "message__text.json", headers={"X-Twilio-Signature": "bad"},
             status=403, stored=False),
    ]

    @pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
    def test_webhook(case, sqlite_client):
        run_case(sqlite_client, "/webhooks/twilio/sms", FIXTURES, case, encoding="form",
                 prepare=sign_twilio)

- Fixture files live in tests/lines/<line>/fixtures/<event__variant>.json (a JSON object:
  posted as JSON, or as a form when encoding="form") or .txt (a raw urlencoded form body).
- `prepare(url, body, headers) -> headers` adds per-line proof (signature, secret token);
  a row's own `headers` win over what `prepare` set, so a bad proof is just one more row.
- Expectations left as None are not checked. `stored` defaults to "a message is expected
  when `channel` is given"; stored=False asserts that nothing new reached raw_messages.
- `reply` is a substring expected in the reply: by default the HTTP response body (TwiML);
  pass `reply_of=lambda response: ...` to read it elsewhere (e.g. the fake Bot API's
  recorded sendMessage calls).
- `fields` is a dict of items expected inside the stored message's `fields`; `attachments` a
  tuple with, per expected attachment, the items it must hold; `coordinates` (lat, lon).
- run_case returns (response, stored RawMessage or None) for extra row-specific assertions.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import func, select
from sqlmodel import Session

Prepare = Callable[[str, Any, dict[str, str]], dict[str, str]]


@dataclass(frozen=True)
class Expect:
    """What one canonical message (normalizer.types.InboundMessage) must be; None: not checked.
    `fields`: items it must hold in `fields`; `attachments`: per expected attachment, the items
    it must hold (() = none at all); `coordinates`: (latitude, longitude)."""
    channel: str | None = None
    text: str | None = None
    sender: str | None = None
    provider_id: str | None = None
    sender_name: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    attachments: tuple[dict[str, Any], ...] | None = None
    coordinates: tuple[float, float] | None = None


def check_message(label: str, message: Any, want: Expect) -> None:
    """`message`: an InboundMessage, or its stored form (raw_messages.message)."""
    if not isinstance(message, dict):
        from hub.intake import message_to_json

        message = message_to_json(message)
    for name in ("channel", "text", "sender", "provider_id", "sender_name"):
        expected = getattr(want, name)
        if expected is not None:
            assert message.get(name) == expected, f"[{label}] {name} = {message.get(name)!r}, expected {expected!r}"
    got_fields = message.get("fields") or {}
    for name, expected in want.fields.items():
        assert got_fields.get(name) == expected, (
            f"[{label}] fields[{name!r}] = {got_fields.get(name)!r}, expected {expected!r}")
    if want.attachments is not None:
        got_att = message.get("attachments") or []
        assert len(got_att) == len(want.attachments), (
            f"[{label}] {len(got_att)} attachments, expected {len(want.attachments)}")
        for i, (got_a, want_a) in enumerate(zip(got_att, want.attachments)):
            for name, expected in want_a.items():
                assert got_a.get(name) == expected, (
                    f"[{label}] attachment {i} {name} = {got_a.get(name)!r}, expected {expected!r}")
    if want.coordinates is not None:
        got_xy = (message.get("latitude"), message.get("longitude"))
        assert got_xy == want.coordinates, f"[{label}] coordinates {got_xy}, expected {want.coordinates}"


@dataclass(frozen=True)
class Case:
    label: str
    fixture: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200
    channel: str | None = None
    text: str | None = None
    sender: str | None = None
    provider_id: str | None = None
    reply: str | None = None
    stored: bool | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    raw_state: str | None = None  # expected raw_messages.state ("pending", "held", ...)
    path_suffix: str = ""  # appended to the route path (e.g. a query string)
    # per expected attachment, the items it must hold (e.g. {"kind": "photo"}); () = none at all
    attachments: tuple[dict[str, Any], ...] | None = None
    coordinates: tuple[float, float] | None = None  # (latitude, longitude) of the stored message

    @property
    def expect_stored(self) -> bool:
        return self.stored if self.stored is not None else self.channel is not None


def use_env(monkeypatch, env: dict[str, str]) -> None:
    """The line's settings for this test: environment variables, read afresh."""
    from hub.settings import reset_settings

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings()


def app_client():
    """A TestClient on a fresh app wired for the current settings, workers off."""
    from fastapi.testclient import TestClient

    from hub.app import create_app

    return TestClient(create_app(workers=False))


def load_fixture(fixture_dir: Path, name: str) -> Any:
    """A fixture as data: .json -> object, .txt -> list of (key, value) form pairs."""
    path = Path(fixture_dir) / name
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(raw)
    return parse_qsl(raw.strip(), keep_blank_values=True)


def _raw_count(engine) -> int:
    from hub.models import RawMessage

    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(RawMessage))


def _newest_raw(engine):
    from hub.models import RawMessage

    with Session(engine) as s:
        return s.scalars(select(RawMessage).order_by(RawMessage.id.desc()).limit(1)).first()


def run_case(client, path: str, fixture_dir: Path, case: Case, encoding: str = "json",
             prepare: Prepare | None = None, base_url: str = "http://testserver",
             reply_of: Callable[[Any], str] | None = None, engine=None):
    """Post the row's fixture to `path` and check the HTTP status, the stored message and the reply."""
    from hub.db import get_engine

    engine = engine or get_engine()
    data = load_fixture(fixture_dir, case.fixture)
    url = base_url + path + case.path_suffix
    headers: dict[str, str] = {}
    if encoding == "form":
        pairs = list(data.items()) if isinstance(data, dict) else list(data)
        body: Any = pairs
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    else:
        body = data
        headers["Content-Type"] = "application/json"
    if prepare is not None:
        headers = dict(prepare(url, body, dict(headers)))
    headers.update(case.headers)
    before = _raw_count(engine)
    content = urlencode(body) if encoding == "form" else json.dumps(body)
    response = client.post(path + case.path_suffix, content=content.encode("utf-8"), headers=headers)
    assert response.status_code == case.status, (
        f"[{case.label}] HTTP {response.status_code}, expected {case.status}: {response.text[:500]}")
    after = _raw_count(engine)
    stored = None
    if case.expect_stored:
        assert after == before + 1, f"[{case.label}] expected one stored message, raw count {before} -> {after}"
        stored = _newest_raw(engine)
        for name, want in {"channel": case.channel, "text": case.text, "sender": case.sender,
                           "provider_id": case.provider_id, "state": case.raw_state}.items():
            if want is not None:
                got = getattr(stored, name)
                assert got == want, f"[{case.label}] stored {name} = {got!r}, expected {want!r}"
        # the columns above; what only the stored message holds:
        check_message(case.label, stored.message or {}, Expect(fields=case.fields, attachments=case.attachments,
                                                                coordinates=case.coordinates))
    else:
        assert after == before, f"[{case.label}] expected nothing stored, raw count {before} -> {after}"
    if case.reply is not None:
        reply = reply_of(response) if reply_of is not None else response.text
        assert case.reply in reply, f"[{case.label}] reply {reply!r} lacks {case.reply!r}"
    return response, stored


# --- pulled from the provider -----------------------------------------------------------------

@dataclass(frozen=True)
class PullCase:
    """What the provider holds (`items`: rows of Gammu's inbox, a LAPOR! fixture file, ...) and
    the canonical messages one pull must make of it, in order."""
    label: str
    items: Any
    expect: tuple[Expect, ...]


def run_pull(case: PullCase, pull: Callable[[Any], Sequence[Any]]) -> list[Any]:
    """`pull(items)` puts the items where the provider keeps them, pulls once and returns the
    InboundMessages; each is checked against its row's expectation. Returns them."""
    got = list(pull(case.items))
    assert len(got) == len(case.expect), f"[{case.label}] {len(got)} messages pulled, expected {len(case.expect)}"
    for message, want in zip(got, case.expect):
        check_message(case.label, message, want)
    return got


# --- outgoing ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class OutCase:
    """One reply (`message`, an adapters.base.OutboundMessage) and what must come of it: exactly
    `request` at the provider, or `error` (RetryableError / PermanentError) with `retry_after`.
    `fail`: how the line's fake provider fails first (passed to the test's own setup).
    `retry_after` is compared with ==: a Retry-After given as an HTTP date is relative to when
    the row runs, so such a row gives `pytest.approx(seconds, abs=...)`.
    Used by the Twilio, Telegram, Gammu and LAPOR! tests (test_outgoing in each)."""
    label: str
    message: Any
    request: dict[str, Any] | None = None
    error: type[Exception] | None = None
    retry_after: float | None = None
    fail: dict[str, Any] = field(default_factory=dict)


def run_outgoing(case: OutCase, send: Callable[[Any], Awaitable[Any]], sent: Callable[[], list[Any]],
                 secrets: Sequence[str] = (), logs: Callable[[], str] | None = None) -> Any:
    """Send the row's message; check the provider request (`sent()` lists the requests the fake
    got, newest last) or the error; no secret in the error text or in `logs()`."""
    import asyncio

    import pytest

    before = len(sent())
    result = None
    if case.error is not None:
        with pytest.raises(case.error) as info:
            asyncio.run(send(case.message))
        assert getattr(info.value, "retry_after", None) == case.retry_after, (
            f"[{case.label}] retry_after {getattr(info.value, 'retry_after', None)!r}, expected {case.retry_after!r}")
        for secret in secrets:
            assert secret not in str(info.value), f"[{case.label}] a secret is in the error text"
    else:
        result = asyncio.run(send(case.message))
        requests = sent()[before:]
        assert requests, f"[{case.label}] nothing reached the provider"
        if case.request is not None:
            assert requests[-1] == case.request, f"[{case.label}] request {requests[-1]!r}, expected {case.request!r}"
    if logs is not None:
        text = logs()
        for secret in secrets:
            assert secret not in text, f"[{case.label}] a secret is in the logs"
    return result
