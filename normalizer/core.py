"""normalize(): one InboundMessage -> one TicketDraft (reporter, place, category, urgency,
routing, incident key). Pure and deterministic given (message, regency, now): no database,
network or clock, and never lets a full NIK out of the raw message."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from normalizer.incidents import category_family
from normalizer.reporter import find_name, find_nik, ktp_name, find_phone, is_valid_nik, mask_nik, mask_niks, to_e164
from normalizer.knowledge import URGENCY_CALM, URGENCY_DARURAT, URGENCY_TINGGI, Regency
from normalizer.learn import LinearRouter, route_linear
from normalizer.router import discount_landmarks, route, words_from_tokens
from normalizer.text import clean_text, fold, raw_tokens, stem
from normalizer.types import InboundMessage, Place, Reporter, Routing, TicketDraft, Urgency

_SENDER_PHONE_CHANNELS = frozenset({"sms", "whatsapp", "twilio", "gammu", "api", "web"})
_TRUE = frozenset({"1", "true", "ya", "yes", "y", "on"})
_URG = {"darurat": Urgency.DARURAT, "tinggi": Urgency.TINGGI, "normal": Urgency.NORMAL}
_RANK = {Urgency.NORMAL: 0, Urgency.TINGGI: 1, Urgency.DARURAT: 2}


def _f(fields: dict[str, Any], *names: str) -> str | None:
    if not fields:
        return None
    for n in names:
        v = fields.get(n)
        if v not in (None, ""):
            return str(v).strip()
    return None


def _max_urgency(a: Urgency, b: Urgency) -> Urgency:
    return a if _RANK[a] >= _RANK[b] else b


def _reporter(msg: InboundMessage, fields: dict[str, Any]) -> Reporter:
    phone = to_e164(_f(fields, "caller_phone", "phone", "no_hp", "telepon"))
    if not phone and msg.channel in _SENDER_PHONE_CHANNELS:
        # a phone line's sender, or a system's `sender` that is a phone number (the intake API's
        # "sender": "081234567890", the web form); to_e164 says None to e-mail addresses and ids.
        # Hotline calls name the caller's number in caller_phone, Telegram/LAPOR! senders are ids.
        phone = to_e164(msg.sender)
    if not phone:
        phone = find_phone(msg.text)
    nik_masked = None
    nik_field = _f(fields, "nik", "NIK")
    if nik_field:
        digits = "".join(ch for ch in nik_field if ch.isdigit())
        if is_valid_nik(digits):
            nik_masked = mask_nik(digits)
    if not nik_masked:
        nik_masked, _ = find_nik(msg.text)
    name = _f(fields, "caller_name", "nama", "name", "reporter_name") or ktp_name(msg.text) or msg.sender_name \
        or find_name(msg.text)
    return Reporter(
        name=name,
        phone=phone,
        telegram_chat_id=str(msg.sender) if msg.channel == "telegram" and msg.sender else None,
        lapor_id=(_f(fields, "tracking_id", "lapor_id") or msg.provider_id) if msg.channel == "lapor" else None,
        nik_masked=nik_masked,
        anonymous=str(fields.get("anonymous", fields.get("anonim", ""))).lower() in _TRUE,
        confidential=str(fields.get("rahasia", fields.get("confidential", ""))).lower() in _TRUE,
    )


def _place(msg: InboundMessage, fields: dict[str, Any], regency: Regency,
           folded_tokens: tuple[str, list[str]] | None = None) -> Place:
    """`folded_tokens`: fold(msg.text) and its raw tokens when the caller has them already."""
    kec_hint = _f(fields, "kecamatan", "kec")
    desa_hint = _f(fields, "desa", "kelurahan", "desa_kelurahan")
    text = msg.text or ""
    landmark = _f(fields, "landmark", "alamat", "address", "lokasi")
    if landmark or folded_tokens is None:
        pm = regency.gazetteer.scan(f"{text} {landmark}" if landmark else text,
                                    kec_hint=kec_hint, desa_hint=desa_hint)
    else:
        pm = regency.gazetteer.scan_tokens(*folded_tokens, kec_hint=kec_hint, desa_hint=desa_hint)
    parts: list[str] = []
    dusun = _f(fields, "dusun")
    if dusun:
        parts.append(f"Dsn. {dusun}")
    rt_rw = _f(fields, "rt_rw", "rtrw")
    if rt_rw:
        parts.append(f"RT/RW {rt_rw}")
    if landmark:
        parts.append(landmark)
    if not parts and pm.address:
        parts.append(pm.address)
    lat = msg.latitude if msg.latitude is not None else pm.latitude
    lon = msg.longitude if msg.longitude is not None else pm.longitude
    return Place(
        kecamatan_code=pm.kecamatan.code if pm.kecamatan else None,
        desa_code=pm.desa.code if pm.desa else None,
        kecamatan_name=pm.kecamatan.name if pm.kecamatan else None,
        desa_name=pm.desa.name if pm.desa else None,
        address=", ".join(parts) or None,
        latitude=lat,
        longitude=lon,
        ambiguous_desa=pm.ambiguous,
    )


def _urgency(words: list[str], stems: list[str], regency: Regency) -> tuple[Urgency, str | None]:
    hits = regency.urgency_matcher.find_tokens(words, stems)
    if not hits:
        return Urgency.NORMAL, None
    calm_pos = {pos for idx, _w, _p, pos in hits if idx == URGENCY_CALM}
    darurat = [(p, pos) for idx, _w, p, pos in hits if idx == URGENCY_DARURAT]
    for phrase, pos in darurat:
        if not any(pos - 3 <= c < pos for c in calm_pos):
            return Urgency.DARURAT, phrase
    tinggi = [p for idx, _w, p, _pos in hits if idx == URGENCY_TINGGI]
    if tinggi:
        return Urgency.TINGGI, tinggi[0]
    if darurat:  # a disaster word in a calm context ("rawan longsor") is still worth attention
        return Urgency.TINGGI, darurat[0][0]
    return Urgency.NORMAL, None


def _route_learned(regency: Regency, words: list[str], stems: list[str], hits, prior):
    """The learned linear router decides; the rule hits and the channel default are among its
    features (normalizer.learn), not a second opinion."""
    score: dict[str, float] = {}
    why: dict[str, list[str]] = {}
    per_rule: dict[int, float] = {}
    seen: set[tuple[int, str]] = set()
    for idx, w, phrase, _pos in hits:
        if (idx, phrase) in seen:
            continue
        seen.add((idx, phrase))
        r = regency.rules[idx]
        score[r.opd] = score.get(r.opd, 0.0) + w
        per_rule[idx] = per_rule.get(idx, 0.0) + w
        why.setdefault(r.opd, []).append(phrase)
    for opd, (sc, label) in prior.items():
        score[opd] = score.get(opd, 0.0) + sc
        why.setdefault(opd, []).append(label)
    model = regency.model
    thr = regency.auto_route_threshold if regency.auto_route_threshold is not None else model.threshold
    res = route_linear(model, words, stems, score, why, thr, regency.triage_opd, regency.opd_codes)
    guess = res.candidates[0][0] if res.candidates else None
    best = max(((s, i) for i, s in per_rule.items() if regency.rules[i].opd == guess), default=None)
    if best is not None:
        res.best_rule = regency.rules[best[1]]
    return res


def normalize(msg: InboundMessage, regency: Regency, now: datetime) -> TicketDraft:
    """Turn one inbound message into a ticket draft. `now` is only a reference time."""
    fields = dict(msg.fields or {})
    text = msg.text or ""
    text_clean = mask_niks(clean_text(text))
    for key in ("nik", "NIK"):
        if key in fields and fields[key]:
            digits = "".join(ch for ch in str(fields[key]) if ch.isdigit())
            fields[key] = mask_nik(digits) if len(digits) == 16 else "*" * len(digits)
    keyword = str(fields.get("keyword") or "").strip().upper()
    itype = " ".join(str(fields.get("incident_type") or "").lower().replace("_", " ").split())
    is_empty = not any(ch.isalnum() for ch in text) and not msg.attachments and not keyword and not itype

    reporter = _reporter(msg, fields)
    folded = fold(text)
    toks = raw_tokens(folded)  # one tokenisation shared by place recognition and routing
    place = _place(msg, fields, regency, (folded, toks))

    if itype:
        toks = raw_tokens(fold(f"{text} {itype}"))
    words = words_from_tokens(toks, regency.place_keys, regency.marker_place_keys)
    tokens = [stem(w) for w in words]

    urgency, urg_phrase = _urgency(words, tokens, regency)
    colour = str(fields.get("triage_colour") or fields.get("triage_color") or "").strip().lower()
    if colour in regency.triage_colours:
        urgency = _max_urgency(urgency, _URG.get(regency.triage_colours[colour], Urgency.NORMAL)) \
            if regency.triage_colours[colour] != "normal" else urgency
    it = regency.incident_types.get(itype) if itype else None
    if it:
        urgency = _max_urgency(urgency, _URG.get(it["urgency"], Urgency.NORMAL))
    if msg.channel == "psc119":
        urgency = _max_urgency(urgency, Urgency.TINGGI)

    category: str | None = None
    subcategory: str | None = None
    sk = regency.sms_keywords
    if keyword and sk and keyword in sk.get("keywords", {}):
        routing = Routing(sk["opd"], float(sk.get("confidence", 0.97)),
                          f"rule:sms keyword '{keyword}' -> {sk['opd']}", False, ((sk["opd"], 1.0),))
        category, subcategory = sk.get("category"), sk["keywords"][keyword]
    elif it:
        # the call taker chose the incident type on the hotline console: it decides, whatever a
        # keyword or a learned model reads into the caller's words ("ODGJ" is a PSC 119 case)
        routing = Routing(it["opd"], 0.97, f"field incident_type '{itype}' -> {it['opd']}", False, ((it["opd"], 1.0),))
        category, subcategory = it["category"], it["subcategory"]
    else:
        prior: dict[str, tuple[float, str]] = {}
        chan = regency.channel_defaults.get(msg.channel)
        if chan:
            prior[chan["opd"]] = (chan["score"], f"channel {msg.channel} default")
        hits = regency.matcher.find_tokens(words, tokens)
        near = regency.near_matcher.find(words, tokens, hits)
        hits = discount_landmarks(hits + near if near else hits, words)
        if isinstance(regency.model, LinearRouter):
            res = _route_learned(regency, words, tokens, hits, prior)
        else:
            res = route(tokens, hits, regency.rules, regency.opd_codes, regency.model, prior,
                        regency.triage_opd, regency.min_confidence, regency.rule_weight)
        routing = Routing(res.opd, round(res.confidence, 3), res.rule, res.needs_triage, res.candidates)
        guess = res.candidates[0][0] if res.candidates else res.opd
        if res.best_rule is not None and res.best_rule.opd == guess:
            category, subcategory = res.best_rule.category, res.best_rule.subcategory
        elif chan and guess == chan["opd"]:
            category, subcategory = chan["category"], chan["subcategory"]
        elif guess in regency.opd_categories:
            category, subcategory = regency.opd_categories[guess]
    if is_empty:
        routing = Routing(regency.triage_opd, 0.0, "empty message", True, ())
        category = subcategory = None

    fam = category_family(category)
    where = place.desa_code or place.kecamatan_code
    incident_key = f"{fam}:{where}" if fam and where else (f"{fam}:-" if fam else None)
    return TicketDraft(
        channel=msg.channel,
        text_original=text,
        text_clean=text_clean,
        reporter=reporter,
        place=place,
        category=category,
        subcategory=subcategory,
        urgency=urgency,
        routing=routing,
        incident_key=incident_key,
        attachments=tuple(msg.attachments),
        fields=fields,
        is_empty=is_empty,
    )
