"""OPD routing: keyword rules from routing.yaml plus a learned multinomial Naive Bayes model
(word unigrams/bigrams and word-prefix features on normalised text), JSON-serialisable and pure
Python. Never reads files, the database or the clock; every decision carries an explanation."""
from __future__ import annotations

import math
import re
from operator import itemgetter
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from normalizer.text import STOPWORDS, fold, map_token, raw_tokens, stem

MODEL_VERSION = 1
_MARKERS = frozenset({"kec", "kecamatan", "desa", "ds", "kel", "kelurahan", "dsn", "dusun", "dsa"})


def routing_tokens(folded: str, place_keys: frozenset[str] = frozenset()) -> list[str]:
    """Stemmed words of a message with place names dropped (a desa called "Sawahan" is not
    about rice fields), abbreviations expanded and Javanese mapped."""
    return [stem(w) for w in routing_words(folded, place_keys)]


def routing_words(folded: str, place_keys: frozenset[str] = frozenset(),
                  marker_place_keys: frozenset[str] = frozenset()) -> list[str]:
    """Like routing_tokens but unstemmed (surface words after mapping)."""
    return words_from_tokens(raw_tokens(folded), place_keys, marker_place_keys)


def words_from_tokens(toks: list[str], place_keys: frozenset[str] = frozenset(),
                      marker_place_keys: frozenset[str] = frozenset()) -> list[str]:
    """routing_words over already computed raw_tokens (normalize shares them with the gazetteer)."""
    out: list[str] = []
    after_marker = False
    for tok in toks:
        if after_marker:
            after_marker = False
            if tok in marker_place_keys:  # "ds. jati": a place, not teak wood
                continue
        if tok in _MARKERS:
            after_marker = True
        elif tok in place_keys:
            continue
        out.extend(map_token(tok))
    return out


def model_features(tokens: list[str]) -> list[str]:
    """Features for the learned model: content unigrams, adjacent bigrams, 5-letter prefixes."""
    content = [t for t in tokens if t not in STOPWORDS and not t.isdigit() and len(t) > 1]
    # ordered (first occurrence), never a set: the order breaks ties in the explanation, and a
    # set's order changes with the process's hash seed
    feats = dict.fromkeys(content)
    feats.update(dict.fromkeys(f"{a}_{b}" for a, b in zip(content, content[1:])))
    feats.update(dict.fromkeys("~" + t[:5] for t in content if len(t) >= 7))
    return list(feats)


# --------------------------------------------------------------------------- learning --
def train_router(examples: Iterable[tuple[str, str]], min_count: int = 1) -> dict:
    """Train the statistical router on (text, OPD code) pairs; returns a JSON-ready dict.

    Multinomial Naive Bayes over binary document features. Pure: the caller stores it."""
    class_docs: Counter[str] = Counter()
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for text, opd in examples:
        if not text or not opd:
            continue
        opd = str(opd).strip().upper()
        feats = model_features(routing_tokens(fold(text)))
        if not feats:
            continue
        class_docs[opd] += 1
        for f in feats:
            counts[f][opd] += 1
    features = {f: dict(c) for f, c in counts.items() if sum(c.values()) >= min_count}
    return {
        "version": MODEL_VERSION,
        "kind": "multinomial-nb",
        "examples": sum(class_docs.values()),
        "classes": sorted(class_docs),
        "class_docs": dict(class_docs),
        "features": features,
    }


@dataclass
class NBModel:
    classes: list[str]
    prior: list[float]
    loglik: dict[str, list[float]]
    default: list[float]  # log prob of an unseen feature per class (not used in scoring)
    examples: int = 0
    # derived once, read per message: class -> index, the first words of known bigrams, and
    # memoised explanation lifts (class index -> feature -> lift)
    index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _bigram_left: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    _lifts: dict[int, dict[str, float]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.index = {c: i for i, c in enumerate(self.classes)}
        # unigrams are [a-z0-9] words, so a feature with "_" is a bigram "a_b"
        self._bigram_left = frozenset(f.split("_", 1)[0] for f in self.loglik if "_" in f)

    def known_features(self, tokens: list[str]) -> list[str]:
        """[f for f in model_features(tokens) if the model knows f], same order, without building
        the bigrams that cannot be known."""
        ll = self.loglik
        content = [t for t in tokens if t not in STOPWORDS and not t.isdigit() and len(t) > 1]
        known = [f for f in dict.fromkeys(content) if f in ll]
        left = self._bigram_left
        known += [f for f in dict.fromkeys(f"{a}_{b}" for a, b in zip(content, content[1:]) if a in left)
                  if f in ll]
        known += [f for f in dict.fromkeys("~" + t[:5] for t in content if len(t) >= 7) if f in ll]
        return known

    @classmethod
    def from_dict(cls, model: dict, alpha: float = 0.3) -> "NBModel | None":
        if not model or len(model.get("classes") or []) < 2 or int(model.get("examples", 0)) < 20:
            return None  # too little history to say anything beyond the rules
        classes = list(model["classes"])
        docs = model.get("class_docs", {})
        feats: dict[str, dict[str, int]] = model.get("features", {})
        total = {c: 0 for c in classes}
        for per in feats.values():
            for c, n in per.items():
                if c in total:
                    total[c] += n
        vocab = max(1, len(feats))
        denom = [math.log(total[c] + alpha * vocab) for c in classes]
        loglik = {}
        for f, per in feats.items():
            loglik[f] = [math.log(per.get(c, 0) + alpha) - denom[i] for i, c in enumerate(classes)]
        n = sum(docs.get(c, 0) for c in classes) or 1
        # flattened prior: history volume should not drown the text
        prior = [0.3 * math.log((docs.get(c, 0) + 1) / (n + len(classes))) for c in classes]
        return cls(classes, prior, loglik, [math.log(alpha) - d for d in denom], int(model.get("examples", n)))

    def scores(self, feats: list[str]) -> tuple[list[float], list[str]]:
        """Log-posterior-like scores (tempered) and the features the model knew."""
        ll = self.loglik
        return self.known_scores([f for f in feats if f in ll])

    def known_scores(self, known: list[str]) -> tuple[list[float], list[str]]:
        """scores() over features already known to the model."""
        ll = self.loglik
        if not known:
            return [0.0] * len(self.prior), []
        # sparse: only the message's features, summed per class in feature order
        s = list(map(sum, zip(self.prior, *[ll[f] for f in known])))
        # temper: NB double-counts correlated features (bigrams repeat unigrams)
        temp = 1.0 + len(known) / 6.0
        return [x / temp for x in s], known

    def lift(self, f: str, cls_idx: int) -> float:
        """How much more feature f says cls than the other classes on average (memoised)."""
        memo = self._lifts.get(cls_idx)
        if memo is None:
            memo = self._lifts.setdefault(cls_idx, {})
        v = memo.get(f)
        if v is None:
            if len(memo) >= 20_000:  # bounded: start again rather than grow
                memo.clear()
            row = self.loglik[f]
            others = [x for i, x in enumerate(row) if i != cls_idx]
            v = memo[f] = row[cls_idx] - (sum(others) / len(others) if others else 0.0)
        return v

    def top_features(self, known: list[str], cls_idx: int, k: int = 3) -> list[str]:
        memo = self._lifts.get(cls_idx) or {}
        lifts = [memo.get(f) for f in known]
        if None in lifts:
            lifts = [self.lift(f, cls_idx) for f in known]
        order = sorted(range(len(known)), key=lifts.__getitem__, reverse=True)  # stable on ties
        return [known[i] for i in order[:k]]


# ------------------------------------------------------------------------------ rules --
@dataclass(frozen=True)
class Rule:
    id: str
    opd: str
    category: str | None
    subcategory: str | None
    weight: float


@dataclass
class PhraseMatcher:
    """Longest-first matching of stemmed keyword phrases over stemmed token text."""

    surface: re.Pattern | None
    rooted: re.Pattern | None
    targets: dict[str, list[tuple[int, float, str]]] = field(default_factory=dict)
    root_targets: dict[str, list[tuple[int, float, str]]] = field(default_factory=dict)
    # word tries of the same keys (a node maps the next word to a node; "" marks a phrase's
    # end and holds its key): the token form of the two regexes
    trie: dict = field(default_factory=dict, repr=False)
    root_trie: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for table, trie in ((self.targets, self.trie), (self.root_targets, self.root_trie)):
            for key in table:
                node = trie
                for w in key.split(" "):
                    node = node.setdefault(w, {})
                node[""] = key  # words are never empty, so "" cannot clash with one

    @staticmethod
    def _compile(keys) -> re.Pattern | None:
        alts = sorted(keys, key=lambda k: (-len(k), k))
        if not alts:
            return None
        return re.compile(r"(?<!\S)(?:" + "|".join(re.escape(a) for a in alts) + r")(?!\S)")

    @classmethod
    def build(cls, phrases: list[tuple[str, int, float]]) -> "PhraseMatcher":
        """Keywords match the mapped surface words; keywords made only of root words also match
        affixed forms through the stems ("banjir" ~ "kebanjiran"), but an affixed keyword
        never matches its bare root ("penggelapan" is not "gelap")."""
        targets: dict[str, list[tuple[int, float, str]]] = {}
        roots: dict[str, list[tuple[int, float, str]]] = {}
        for phrase, idx, weight in phrases:
            ws = _phrase_words(phrase)
            if not ws:
                continue
            w = weight * (1 + 0.5 * (len(ws) - 1))
            for key, table in ((" ".join(ws), targets),
                               (" ".join(ws), roots) if all(stem(x) == x for x in ws) else (None, None)):
                if key is None:
                    continue
                lst = table.setdefault(key, [])
                if all(i != idx for i, _w, _p in lst):  # "ektp" and "ktp" are one keyword
                    lst.append((idx, w, phrase))
        return cls(cls._compile(targets), cls._compile(roots), targets, roots)

    def find(self, words_text: str, stemmed_text: str | None = None) -> list[tuple[int, float, str, int]]:
        """-> (target index, weight, original phrase, token position) for each match."""
        out = []
        seen: set[tuple[int, int, str]] = set()
        covered: set[int] = set()  # words inside a longer surface keyword: no root match there
        for regex, text, table in ((self.surface, words_text, self.targets),
                                   (self.rooted, stemmed_text, self.root_targets)):
            if regex is None or text is None:
                continue
            for m in regex.finditer(text):
                pos = text.count(" ", 0, m.start())
                n_words = m.group(0).count(" ") + 1
                if table is self.targets and n_words > 1:
                    covered.update(range(pos, pos + n_words))
                elif table is self.root_targets and pos in covered:
                    continue
                for idx, w, phrase in table[m.group(0)]:
                    if (idx, pos, phrase) not in seen:
                        seen.add((idx, pos, phrase))
                        out.append((idx, w, phrase, pos))
        return out


    def find_tokens(self, words: list[str], stems: list[str] | None = None) -> list[tuple[int, float, str, int]]:
        """find() over word lists instead of space-joined text: the same matches in the same
        order (leftmost, longest, non-overlapping, whole words), without the big regex."""
        out = []
        seen: set[tuple[int, int, str]] = set()
        covered: set[int] = set()  # words inside a longer surface keyword ("izin lingkungan")
        for toks, trie, table in ((words, self.trie, self.targets),
                                  (stems, self.root_trie, self.root_targets)):
            if toks is None or not trie:
                continue
            rooted = trie is self.root_trie
            n = len(toks)
            end = 0  # matches never overlap: the next one starts after the previous one ends
            for i in [i for i, t in enumerate(toks) if t in trie]:
                if i < end:
                    continue
                node, j, key = trie[toks[i]], i + 1, None
                while True:  # walk as far as the words go; the deepest phrase end wins
                    k = node.get("")
                    if k is not None:
                        key, end = k, j
                    if j >= n:
                        break
                    node = node.get(toks[j])
                    if node is None:
                        break
                    j += 1
                if key is not None:
                    if not rooted and end - i > 1:
                        covered.update(range(i, end))
                    elif rooted and i in covered:  # found (the walk goes on as before), not counted
                        continue
                    for idx, w, phrase in table[key]:
                        if (idx, i, phrase) not in seen:
                            seen.add((idx, i, phrase))
                            out.append((idx, w, phrase, i))
        return out


# Words that make the next keyword a landmark ("depan pasar", "dekat SDN 2"): where the problem
# is, not what it is about.
LANDMARK_PREPS = frozenset({"depan", "dekat", "samping", "belakang", "sebelah", "seberang", "sekitar",
                            "arah", "menuju", "sebelahnya", "pinggir"})
LANDMARK_FACTOR = 0.25


def discount_landmarks(hits: list[tuple[int, float, str, int]], words: list[str]) -> list[tuple[int, float, str, int]]:
    """A keyword right after a landmark preposition weighs LANDMARK_FACTOR of its weight."""
    if not hits or LANDMARK_PREPS.isdisjoint(words):
        return hits
    return [(idx, w * LANDMARK_FACTOR, p, pos) if pos > 0 and words[pos - 1] in LANDMARK_PREPS else (idx, w, p, pos)
            for idx, w, p, pos in hits]


_NEAR_FILLER = STOPWORDS | _MARKERS | {"rt", "rw", "dusun", "kecamatan", "kabupaten", "no", "nomor"}


@dataclass
class NearMatcher:
    """Pairs of word sets of one rule a few content words apart: an object and its state with a
    place or a filler in between ("jalan di desa X kec Y rusak parah" is "jalan ... rusak").
    Words match by stem, so "berlubang" is "lubang" and "kerusakan" is "rusak"."""

    # pair no -> (rule index, weight, label of the spec, window in content words); a match is
    # labelled by the words it found ("jalan ... berlubang")
    pairs: list[tuple[int, float, str, int]] = field(default_factory=list)
    index: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # stem -> [(pair no, side)]

    @classmethod
    def build(cls, specs: list[tuple[int, float, list[str], list[str], int]]) -> "NearMatcher":
        """specs: (rule index, weight, words of side a, words of side b, window)."""
        m = cls()
        for idx, weight, side_a, side_b, window in specs:
            no = len(m.pairs)
            label = f"{side_a[0]} ... {side_b[0]}"
            m.pairs.append((idx, weight, label, window))
            for side, ws in ((0, side_a), (1, side_b)):
                for w in ws:
                    key = "".join(stem(x) for x in _phrase_words(w))
                    lst = m.index.setdefault(key, [])
                    if (no, side) not in lst:
                        lst.append((no, side))
        return m

    def find(self, words: list[str], stems: list[str],
             hits: list[tuple[int, float, str, int]]) -> list[tuple[int, float, str, int]]:
        """Near-pair matches as (rule index, weight, label, position of the later word), except
        where a multi-word keyword of the same rule already matched inside the pair's stretch."""
        index = self.index
        if not index:
            return []
        found: dict[int, tuple[list[tuple[int, int]], list[tuple[int, int]]]] = {}
        c = 0  # content-word position: stopwords, place markers and numbers do not count
        for i, st in enumerate(stems):
            if words[i] in _NEAR_FILLER or words[i].isdigit():
                continue
            for no, side in index.get(st, ()):
                found.setdefault(no, ([], []))[side].append((c, i))
            c += 1
        out = []
        for no, (side_a, side_b) in found.items():
            if not side_a or not side_b:
                continue
            idx, w, _label, window = self.pairs[no]
            close = [(abs(ca - cb), min(ia, ib), max(ia, ib), ib) for ca, ia in side_a for cb, ib in side_b
                     if ia != ib and abs(ca - cb) <= window]
            if not close:
                continue
            _d, lo, hi, _b = min(close)
            label = f"{words[lo]} ... {words[hi]}"
            if any(h_idx == idx and lo <= pos <= hi and " " in p.strip() for h_idx, _w, p, pos in hits):
                continue
            # a second state word ("makadam dan becek") is more evidence, a third no more
            states = len({stems[ib] for *_x, ib in close})
            out.append((idx, w * (1.25 if states > 1 else 1.0), label, hi))
        return out


def _phrase_words(phrase: str) -> list[str]:
    out: list[str] = []
    for tok in raw_tokens(fold(phrase)):
        out.extend(map_token(tok))
    return out


@dataclass
class RouteResult:
    opd: str
    confidence: float
    rule: str
    needs_triage: bool
    candidates: tuple[tuple[str, float], ...]
    best_rule: Rule | None


def softmax(xs: list[float]) -> list[float]:
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    s = sum(e)
    return [x / s for x in e]


def route(
    tokens: list[str],
    rule_hits: list[tuple[int, float, str, int]],
    rules: Sequence[Rule],
    opd_codes: Sequence[str],
    model: NBModel | None,
    prior: dict[str, tuple[float, str]],
    triage_opd: str,
    min_confidence: float,
    rule_weight: float,
) -> RouteResult:
    """Combine rule evidence, channel priors and the learned model into one decision."""
    score: dict[str, float] = defaultdict(float)
    why: dict[str, list[str]] = defaultdict(list)
    best_rule_score: dict[str, tuple[float, Rule]] = {}
    per_rule: dict[int, float] = defaultdict(float)
    seen_phrase: set[tuple[int, str]] = set()
    for idx, w, phrase, _pos in rule_hits:
        if (idx, phrase) in seen_phrase:
            continue
        seen_phrase.add((idx, phrase))
        r = rules[idx]
        score[r.opd] += w
        per_rule[idx] += w
        why[r.opd].append(phrase)
    for idx, s in per_rule.items():
        r = rules[idx]
        if r.opd not in best_rule_score or s > best_rule_score[r.opd][0]:
            best_rule_score[r.opd] = (s, r)
    for opd, (s, label) in prior.items():
        score[opd] += s
        why[opd].append(label)

    def rule_text(opd: str) -> str:
        parts = [p for p in why.get(opd, []) if not p.startswith("channel ") and not p.startswith("field ")]
        extra = [p for p in why.get(opd, []) if p.startswith(("channel ", "field "))]
        bits = []
        if parts:
            bits.append("rule:keyword " + ", ".join(f"'{p}'" for p in dict.fromkeys(parts[:3])) + f" -> {opd}")
        bits.extend(f"{p} -> {opd}" for p in extra)
        return "; ".join(bits)

    nb_scores, known = model.known_scores(model.known_features(tokens)) if model else ([], [])

    if model and known:
        idx_of = model.index
        labels = model.classes
        logits = list(nb_scores)  # + rule_weight * 0.0 for an OPD without rule evidence: the same
        extra = [c for c in score if c not in idx_of]
        if extra:
            labels = labels + extra
            unknown = sum(nb_scores) / len(nb_scores)  # the model never saw this OPD: neutral
            logits += [unknown] * len(extra)
        for c, sc in score.items():
            i = idx_of.get(c)
            logits[i if i is not None else labels.index(c)] += rule_weight * sc
        probs = softmax(logits)
        ranked = sorted(zip(labels, probs), key=itemgetter(1), reverse=True)  # stable, like key=-p
        best, conf = ranked[0]
        explain = []
        if score.get(best):
            explain.append(rule_text(best))
        if best in idx_of:
            tops = model.top_features(known, idx_of[best])
            explain.append("model: top features " + ",".join(f"'{t}'" for t in tops) + f" (p={conf:.2f})")
        text = "; ".join(e for e in explain if e)
    elif score:
        ranked_s = sorted(score.items(), key=lambda x: -x[1])
        best, s1 = ranked_s[0]
        s2 = ranked_s[1][1] if len(ranked_s) > 1 else 0.0
        conf = s1 / (s1 + s2 + 1.0)
        total = sum(score.values()) + 1.0
        ranked = [(o, s / total) for o, s in ranked_s]
        text = rule_text(best)
    else:
        return RouteResult(triage_opd, 0.0, f"no rule or model evidence -> triage {triage_opd}", True, (), None)

    conf = max(0.0, min(1.0, conf))
    candidates = tuple([(o, round(p, 3)) for o, p in ranked[:3]])
    best_rule = best_rule_score.get(best, (0.0, None))[1]
    if conf < min_confidence or best not in opd_codes:
        return RouteResult(
            triage_opd, conf,
            f"low confidence {conf:.2f} < {min_confidence:.2f}: best guess {best} ({text}) -> triage {triage_opd}",
            True, candidates, best_rule)
    return RouteResult(best, conf, text, False, candidates, best_rule)


def add_example(model: dict, text: str, opd: str) -> dict:
    """A copy of a trained model with one more example counted (NB counts are additive)."""
    opd = str(opd).strip().upper()
    feats = model_features(routing_tokens(fold(text)))
    new = dict(model)
    if not feats:
        return new
    features = {f: dict(v) for f, v in model.get("features", {}).items()}
    for f in feats:
        per = features.setdefault(f, {})
        per[opd] = per.get(opd, 0) + 1
    docs = dict(model.get("class_docs", {}))
    docs[opd] = docs.get(opd, 0) + 1
    new.update(features=features, class_docs=docs, classes=sorted(docs),
               examples=int(model.get("examples", 0)) + 1, version=MODEL_VERSION, kind="multinomial-nb")
    return new
