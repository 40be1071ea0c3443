"""Shared table runner for adapter webhook tests: one row = one provider payload and what the
hub must make of it. Used by every line (Twilio, Telegram, ...); it never fakes the hub.

How to use it (see tests/adapters/test_twilio.py for a full example):

    from tests.adapters.runner import Case, run_case

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

- Fixture files live in tests/adapters/fixtures/<line>/<event__variant>.json (a JSON object:
  posted as JSON, or as a form when encoding="form") or .txt (a raw urlencoded form body).
- `prepare(url, body, headers) -> headers` adds per-line proof (signature, secret token);
  a row's own `headers` win over what `prepare` set, so a bad proof is just one more row.
- Expectations left as None are not checked. `stored` defaults to "a message is expected
  when `channel` is given"; stored=False asserts that nothing new reached raw_messages.
- `reply` is a substring expected in the reply: by default the HTTP response body (TwiML);
  pass `reply_of=lambda response: ...` to read it elsewhere (e.g. the fake Bot API's
  recorded sendMessage calls).
- `fields` is a dict of items expected inside the stored message's `fields`.
- run_case returns (response, stored RawMessage or None) for extra row-specific assertions.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import func, select
from sqlmodel import Session

Prepare = Callable[[str, Any, dict[str, str]], dict[str, str]]


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

    @property
    def expect_stored(self) -> bool:
        return self.stored if self.stored is not None else self.channel is not None


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
        expected = {"channel": case.channel, "text": case.text, "sender": case.sender,
                    "provider_id": case.provider_id, "state": case.raw_state}
        for name, want in expected.items():
            if want is not None:
                got = getattr(stored, name)
                assert got == want, f"[{case.label}] stored {name} = {got!r}, expected {want!r}"
        got_fields = (stored.message or {}).get("fields") or {}
        for name, want in case.fields.items():
            assert got_fields.get(name) == want, (
                f"[{case.label}] stored fields[{name!r}] = {got_fields.get(name)!r}, expected {want!r}")
    else:
        assert after == before, f"[{case.label}] expected nothing stored, raw count {before} -> {after}"
    if case.reply is not None:
        reply = reply_of(response) if reply_of is not None else response.text
        assert case.reply in reply, f"[{case.label}] reply {reply!r} lacks {case.reply!r}"
    return response, stored
