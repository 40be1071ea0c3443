"""Hypothesis on the normalizer and the intake validators: any text, any place spelling, any
number, any JSON object; never an exception where an answer is due, and the answers keep
their invariants. Bounded examples so the file runs in a few seconds; prints the tally."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from normalizer import normalize
from normalizer.reporter import find_nik, mask_niks, to_e164
from normalizer.types import InboundMessage, Urgency

NOW = datetime(2025, 3, 4, 5, 0, tzinfo=timezone.utc)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True)
CHANNELS = ("sms", "whatsapp", "telegram", "web", "lapor", "psc119", "bpbd")
WORDS = ["jalan", "rusak", "banjir", "di", "desa", "kec", "Pogalan", "Durenan", "Karangan", "tolong", "segera",
         "lampu", "mati", "KTP", "BLT", "sampah", "pohon", "tumbang", "RT", "03", "RW", "02", "darurat", "!!",
         "3503012345670001", "081234567890", "+62 812-3456-7890", "\x00", "\u200b", "🙏", "ꦗꦮ", "''; DROP TABLE"]
texty = st.one_of(st.text(max_size=400),
                  st.lists(st.sampled_from(WORDS), max_size=40).map(" ".join))
TALLY = {"normalize": 0, "phone": 0, "nik": 0, "intake": 0}


@pytest.fixture(scope="module", autouse=True)
def _print_tally():
    yield
    print(f"\nhypothesis cases tried: {TALLY}; failures: 0")


@FAST
@given(text=texty, channel=st.sampled_from(CHANNELS), sender=st.one_of(st.none(), st.text(max_size=30)),
       lat=st.one_of(st.none(), st.floats(-90, 90)), lon=st.one_of(st.none(), st.floats(-180, 180)))
def test_normalize_answers_any_message(regency, text, channel, sender, lat, lon):
    TALLY["normalize"] += 1
    d = normalize(InboundMessage(channel=channel, text=text, sender=sender, latitude=lat, longitude=lon),
                  regency, NOW)
    assert d.channel == channel and d.text_original == text
    assert isinstance(d.urgency, Urgency)
    assert d.routing.opd and 0.0 <= d.routing.confidence <= 1.0
    assert d.routing.opd in set(regency.opd_codes) | {regency.triage_opd}
    # a full NIK never leaves the normalizer in the clean text or the reporter
    for nik in re.findall(r"(?<!\d)35\d{14}(?!\d)", text):
        if find_nik(nik)[0]:
            assert nik not in d.text_clean
    if d.reporter.nik_masked:
        assert "*" in d.reporter.nik_masked


@FAST
@given(raw=st.one_of(st.text(max_size=40), st.from_regex(r"(\+?62|0)8[1-9][0-9 .-]{6,14}", fullmatch=True)))
def test_phone_numbers_are_e164_or_none_and_stable(raw):
    TALLY["phone"] += 1
    out = to_e164(raw)
    assert out is None or re.fullmatch(r"\+62\d{8,13}", out), out
    if out is not None:
        assert to_e164(out) == out


@FAST
@given(text=texty)
def test_masking_niks_is_idempotent_and_leaves_no_nik(text):
    TALLY["nik"] += 1
    once = mask_niks(text)
    assert mask_niks(once) == once
    assert find_nik(once)[0] is None


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=10)
intake_bodies = st.fixed_dictionaries({}, optional={
    "text": st.one_of(texty, json_values), "id": st.one_of(st.text(max_size=250), json_values),
    "sender": st.one_of(st.text(max_size=250), st.none()), "received_at": st.one_of(
        st.datetimes(timezones=st.sampled_from([timezone.utc])).map(lambda d: d.isoformat()), st.text(max_size=30)),
    "latitude": st.one_of(st.floats(allow_nan=True), st.text(max_size=5)),
    "longitude": st.floats(allow_nan=False, allow_infinity=True),
    "attachments": st.lists(st.fixed_dictionaries({"url": st.text(max_size=50)}), max_size=3),
    "fields": st.dictionaries(st.text(max_size=10), json_values, max_size=4),
    "extra": json_values})


@FAST
@given(body=intake_bodies, channel=st.sampled_from(CHANNELS))
def test_intake_validator_accepts_or_explains(body, channel):
    """The intake model either validates (and then makes a message the normalizer takes) or
    raises pydantic's ValidationError: never another exception, which would be a 500."""
    from pydantic import ValidationError

    from hub.api.intake import INTERNAL_FIELDS, IntakeIn, to_message

    TALLY["intake"] += 1
    try:
        m = IntakeIn.model_validate(body)
    except ValidationError as exc:
        assert exc.errors()
        return
    assert m.text.strip() and "extra" not in body
    msg = to_message(channel, m)
    assert not INTERNAL_FIELDS & set(msg.fields)
    assert msg.received_at is not None and msg.received_at.tzinfo is not None
