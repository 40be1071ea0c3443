"""The normalizer's knowledge of a regency (class Regency): everything it needs (gazetteer,
taxonomy, rules, learned model), built once from already-read config data and then only read. Never reads files itself; a bad
rule (unknown OPD or category) fails here, at start-up, not on a citizen's message."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from normalizer.gazetteer import COMMON_WORDS, Gazetteer, canon
from normalizer.router import NBModel, NearMatcher, PhraseMatcher, Rule, _phrase_words
from normalizer.text import STOPWORDS, norm_label

URGENCY_DARURAT, URGENCY_TINGGI, URGENCY_CALM = 0, 1, 2
STRONG_FACTOR = 1.5  # strong_keywords: one of them alone names its OPD


class RegencyConfigError(ValueError):
    """A routing/taxonomy configuration problem, with the offending item named."""


@dataclass(frozen=True)
class Regency:
    gazetteer: Gazetteer
    categories: dict[str, tuple[str, ...]]  # normalised top-level -> normalised subcategories
    rules: tuple[Rule, ...]
    matcher: PhraseMatcher
    urgency_matcher: PhraseMatcher
    opd_codes: tuple[str, ...]
    opd_names: dict[str, str]
    triage_opd: str
    min_confidence: float
    rule_weight: float
    channel_defaults: dict[str, dict[str, Any]]
    sms_keywords: dict[str, Any]
    incident_types: dict[str, dict[str, Any]]
    triage_colours: dict[str, str]
    opd_categories: dict[str, tuple[str | None, str | None]]
    place_keys: frozenset[str]
    marker_place_keys: frozenset[str]
    near_matcher: NearMatcher = field(default_factory=NearMatcher)
    model: Any = None  # LinearRouter (learned, normalizer.learn) or a legacy NBModel
    model_examples: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    opd_aliases: dict[str, str] = field(default_factory=dict)  # canon(alias or name) -> code
    opd_tasks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    auto_route_threshold: float | None = None  # learned model: below it, triage with suggestions

    def opd_for(self, name: Any) -> str | None:
        """An OPD code for a code, alias or name as written in data ("Dinas Perhubungan",
        "dishub", "PKPP"); None when unknown."""
        return resolve_opd(name, self.opd_codes, self.opd_aliases)


def alias_key(name: Any) -> str:
    return " ".join("".join(ch if ch.isalnum() else " " for ch in str(name or "").lower()).split())


def opd_alias_table(opds: list[dict]) -> dict[str, str]:
    """canon(code | name | alias) -> code for every OPD of opds.yaml; a real OPD's own code
    wins over another OPD's alias (a regency that adds its own DISHUB gets DISHUB)."""
    table: dict[str, str] = {}
    for o in opds:
        for a in o.get("aliases") or ():
            table.setdefault(alias_key(a), str(o["code"]))
    for o in opds:
        table[alias_key(o.get("name", ""))] = str(o["code"])
        table[alias_key(o["code"])] = str(o["code"])
    table.pop("", None)
    return table


def resolve_opd(name: Any, codes, aliases: dict[str, str]) -> str | None:
    if name is None:
        return None
    raw = str(name).strip()
    if raw.upper() in codes:
        return raw.upper()
    return aliases.get(alias_key(raw))


def _category(categories: dict[str, tuple[str, ...]], cat: Any, sub: Any, where: str) -> tuple[str | None, str | None]:
    if cat is None:
        return None, None
    c = norm_label(str(cat))
    if c not in categories:
        raise RegencyConfigError(f"{where}: category {cat!r} is not in lapor_categories.json")
    s = norm_label(str(sub)) if sub else None
    if s is not None and categories[c] and s not in categories[c]:
        raise RegencyConfigError(f"{where}: subcategory {sub!r} is not under {c!r}")
    return c, s


def build_regency(wilayah_csv: str, categories: dict, routing: dict, opds: list[dict], triage_opd: str,
                  learned: dict | None = None) -> Regency:
    """Index the gazetteer, validate and compile the rules, and load the learned model."""
    gaz = Gazetteer.from_csv(wilayah_csv)
    if not gaz.areas:
        raise RegencyConfigError("wilayah.csv: no kecamatan/desa rows (expected columns kode,nama,level)")
    cats = {norm_label(k): tuple(norm_label(x) for x in (v or [])) for k, v in (categories or {}).items()}
    codes = tuple(str(o["code"]) for o in opds)
    names = {str(o["code"]): str(o.get("name", o["code"])) for o in opds}
    aliases = opd_alias_table(opds)
    if triage_opd not in codes:
        raise RegencyConfigError(f"triage_opd {triage_opd!r} is not a listed OPD")
    routing = routing or {}

    rules: list[Rule] = []
    phrases: list[tuple[str, int, float]] = []
    near_specs: list[tuple[int, float, list[str], list[str], int]] = []
    for i, r in enumerate(routing.get("rules") or []):
        where = f"routing.yaml rules[{i}] ({r.get('id', '?')})"
        opd = resolve_opd(r.get("opd"), codes, aliases) or r.get("opd")
        if opd not in codes:
            raise RegencyConfigError(f"{where}: OPD {opd!r} is not in opds.yaml")
        cat, sub = _category(cats, r.get("category"), r.get("subcategory"), where)
        weight = float(r.get("weight", 1.0))
        rules.append(Rule(str(r.get("id", f"rule{i}")), opd, cat, sub, weight))
        kws = r.get("keywords") or []
        strong = r.get("strong_keywords") or []
        if not isinstance(kws, list) or not kws or not isinstance(strong, list):
            raise RegencyConfigError(f"{where}: needs a non-empty keywords list")
        strong_keys = {" ".join(_phrase_words(str(k))) for k in strong}
        # strong first: the matcher keeps a rule's first weight for a phrase
        for kw, kw_weight in [(k, weight * STRONG_FACTOR) for k in strong] + [
                (k, weight) for k in kws if " ".join(_phrase_words(str(k))) not in strong_keys]:
            ws = _phrase_words(str(kw))
            if not ws or all(w in STOPWORDS for w in ws):
                # e.g. an abbreviation table entry "smp" -> "sampai" made a school keyword match
                # every "sampai" ("until") in every message
                raise RegencyConfigError(f"{where}: keyword {kw!r} reads as {' '.join(ws)!r} after abbreviation "
                                         "expansion: only stopwords, it would match ordinary messages")
            phrases.append((str(kw), len(rules) - 1, kw_weight))
        for j, nr in enumerate(r.get("near") or []):
            nwhere = f"{where} near[{j}]"
            if not isinstance(nr, dict) or not nr.get("a") or not nr.get("b"):
                raise RegencyConfigError(f"{nwhere}: expected {{a: [words], b: [words], window: n}}")
            for side in ("a", "b"):
                for w in nr[side]:
                    ws = _phrase_words(str(w))
                    if len(ws) != 1 or ws[0] in STOPWORDS:
                        raise RegencyConfigError(f"{nwhere}: {w!r} must be one non-stopword word")
            near_specs.append((len(rules) - 1, weight * float(nr.get("factor", 1.5)),
                               [str(w) for w in nr["a"]], [str(w) for w in nr["b"]], int(nr.get("window", 5))))

    urg = routing.get("urgency") or {}
    uphr = [(str(p), URGENCY_DARURAT, 1.0) for p in urg.get("darurat", [])]
    uphr += [(str(p), URGENCY_TINGGI, 1.0) for p in urg.get("tinggi", [])]
    uphr += [(str(p), URGENCY_CALM, 1.0) for p in urg.get("calm_context", [])]

    chan: dict[str, dict[str, Any]] = {}
    for name, d in (routing.get("channel_defaults") or {}).items():
        d = {**d, "opd": resolve_opd(d.get("opd"), codes, aliases) or d.get("opd")}
        if d.get("opd") not in codes:
            raise RegencyConfigError(f"routing.yaml channel_defaults.{name}: unknown OPD {d.get('opd')!r}")
        cat, sub = _category(cats, d.get("category"), d.get("subcategory"), f"channel_defaults.{name}")
        chan[name] = {"opd": d["opd"], "score": float(d.get("score", 1.5)), "category": cat, "subcategory": sub}

    sk = dict(routing.get("sms_keywords") or {})
    if sk:
        if sk.get("opd") not in codes:
            raise RegencyConfigError("routing.yaml sms_keywords: unknown OPD")
        sk["keywords"] = {str(k).upper(): (norm_label(v) if v else None) for k, v in (sk.get("keywords") or {}).items()}
        sk["category"] = _category(cats, sk.get("category"), None, "sms_keywords")[0]

    itypes: dict[str, dict[str, Any]] = {}
    for name, d in (routing.get("incident_types") or {}).items():
        where = f"routing.yaml incident_types.{name}"
        d = {**d, "opd": resolve_opd(d.get("opd"), codes, aliases) or d.get("opd")}
        if d.get("opd") not in codes:
            raise RegencyConfigError(f"{where}: unknown OPD {d.get('opd')!r}")
        cat, sub = _category(cats, d.get("category"), d.get("subcategory"), where)
        itypes[" ".join(str(name).lower().replace("_", " ").split())] = {
            "opd": d["opd"], "urgency": d.get("urgency", "tinggi"), "category": cat, "subcategory": sub}

    opd_cats: dict[str, tuple[str | None, str | None]] = {}
    for code, d in (routing.get("opd_categories") or {}).items():
        code = resolve_opd(code, codes, aliases) or code
        if code in opd_cats:
            continue  # an alias (DISHUB) of an OPD listed on its own
        opd_cats[code] = _category(cats, (d or {}).get("category"), (d or {}).get("subcategory"),
                                   f"opd_categories.{code}")

    task_w = float(routing.get("opd_task_weight", 0) or 0)
    if task_w > 0:  # each OPD's tasks (opds.yaml) as weak keywords of a rule of its own
        for o in opds:
            pieces = _task_phrases(o.get("tasks") or ())
            if not pieces:
                continue
            code = str(o["code"])
            cat, sub = opd_cats.get(code, (None, None))
            rules.append(Rule(f"tasks-{code}", code, cat, sub, task_w))
            phrases.extend((p, len(rules) - 1, task_w) for p in pieces)

    place_keys = {k for k in list(gaz.kec_by_key) + list(gaz.desa_by_key) if k not in COMMON_WORDS}
    place_keys |= {canon(gaz.kabupaten_name.replace("Kabupaten", ""))}
    model = load_model(learned) if learned else None
    thr = routing.get("auto_route_threshold")
    return Regency(
        gazetteer=gaz,
        categories=cats,
        rules=tuple(rules),
        matcher=PhraseMatcher.build(phrases),
        urgency_matcher=PhraseMatcher.build(uphr),
        opd_codes=codes,
        opd_names=names,
        triage_opd=triage_opd,
        min_confidence=float(routing.get("min_confidence", 0.45)),
        rule_weight=float(routing.get("rule_weight_in_model", 0.9)),
        channel_defaults=chan,
        sms_keywords=sk,
        incident_types=itypes,
        triage_colours={str(k).lower(): str(v) for k, v in (routing.get("triage_colours") or {}).items()},
        opd_categories=opd_cats,
        place_keys=frozenset(place_keys),
        marker_place_keys=frozenset(list(gaz.kec_by_key) + list(gaz.desa_by_key)),
        near_matcher=NearMatcher.build(near_specs),
        model=model,
        model_examples=model.examples if model else 0,
        opd_aliases=aliases,
        opd_tasks={str(o["code"]): tuple(str(t) for t in (o.get("tasks") or ())) for o in opds},
        auto_route_threshold=float(thr) if thr not in (None, "auto") else None,
    )


_TASK_SPLIT = re.compile(r"[,;/()]|\s+dan\s+|\s+atau\s+|:")
_TASK_GENERIC = frozenset({"pelayanan", "layanan", "data", "bantuan", "program", "kegiatan", "lainnya", "umum",
                           "negeri", "rusak", "mati", "penghuni", "sewa", "fasilitas", "harga", "kecil", "air",
                           "desa", "kecamatan", "kelurahan", "dusun", "kabupaten", "pemkab", "warga", "rumah",
                           "kota", "daerah", "pegawai", "tempat", "jalan", "lampu", "surat", "kerja", "anak"})


def _task_phrases(tasks) -> list[str]:
    """Keyword phrases of 1 to 3 words out of an OPD's task descriptions: "PJU / lampu penerangan
    jalan mati" -> "pju", "lampu penerangan jalan" is too long... only short pieces count."""
    out: list[str] = []
    for t in tasks:
        for piece in _TASK_SPLIT.split(str(t)):
            ws = _phrase_words(piece)
            if not ws or len(ws) > 3 or all(w in STOPWORDS or w in _TASK_GENERIC for w in ws):
                continue
            if len(ws) == 1 and (len(ws[0]) < 3 or ws[0].isdigit()):
                continue
            if piece.strip() and piece.strip().lower() not in out:
                out.append(piece.strip().lower())
    return out


def load_model(learned: dict):
    """A learned model from its stored JSON: the linear router (kind "linear-tfidf"), or the
    older Naive Bayes counts (kind "multinomial-nb")."""
    kind = learned.get("kind")
    if kind == "linear-tfidf":
        from normalizer.learn import LinearRouter
        return LinearRouter.from_dict(learned)
    if kind == "multinomial-nb" and isinstance(learned.get("features"), dict):
        try:
            return NBModel.from_dict(learned)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
    return None  # an unknown kind: rules alone
