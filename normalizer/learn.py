"""The learned router: TF-IDF over word stems (unigrams, bigrams) and character n-grams of the
normalised words, plus the keyword rules' per-OPD scores as features, into a linear model
(scikit-learn LinearSVC, balanced classes) whose scores are calibrated into probabilities by a
temperature fitted on cross-validated predictions.

Pure: training takes (text, OPD) pairs and the Regency (for the rules and the place names) and
returns a JSON-ready dict; prediction reads that dict. Stored safely: vocabulary, idf and
coefficients as plain JSON / base64 float arrays with a version field, never a pickle, so a model
file or database row can come from anyone without running their code.
"""
from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from normalizer.text import STOPWORDS, fold, raw_tokens, stem

KIND = "linear-tfidf"
VERSION = 2
MIN_EXAMPLES = 20
TARGET_PRECISION = 0.93  # auto-route only above the confidence where CV precision reaches this
CHAR_RANGE = (3, 5)
MAX_WORDS = 300  # a 5-page letter says what it is about early; bounds the cost per message
RULE_SCALE = 0.35  # rule features: RULE_SCALE * log1p(rule score of that OPD)


# ---------------------------------------------------------------------------- features --
def text_words(text: str, regency: Any = None) -> tuple[list[str], list[str]]:
    """(mapped words, stems) of a message as normalize() sees them (place names dropped)."""
    from normalizer.router import words_from_tokens

    toks = raw_tokens(fold(text))
    if regency is not None:
        words = words_from_tokens(toks, regency.place_keys, regency.marker_place_keys)
    else:
        words = words_from_tokens(toks)
    return words, [stem(w) for w in words]


def analyze(words: Sequence[str], stems: Sequence[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Term counts of the two blocks: word block (stem unigrams "w" and content bigrams "a_b")
    and character block (3-5-grams of each word with word boundaries, like char_wb)."""
    wc: dict[str, int] = {}
    cc: dict[str, int] = {}
    content = [s for w, s in zip(words[:MAX_WORDS], stems[:MAX_WORDS])
               if w not in STOPWORDS and not w.isdigit() and len(w) > 1]
    for s in content:
        wc[s] = wc.get(s, 0) + 1
    for a, b in zip(content, content[1:]):
        k = f"{a}_{b}"
        wc[k] = wc.get(k, 0) + 1
    lo, hi = CHAR_RANGE
    for w in words[:MAX_WORDS]:
        if w in STOPWORDS or w.isdigit():
            continue
        p = f" {w} "
        n = len(p)
        for size in range(lo, hi + 1):
            if size > n:
                break
            for i in range(n - size + 1):
                g = p[i:i + size]
                cc[g] = cc.get(g, 0) + 1
    return wc, cc


def rule_scores(words: list[str], stems: list[str], regency: Any, channel: str | None = None) -> dict[str, float]:
    """The keyword rules' score per OPD for a message (plus its channel default)."""
    from normalizer.router import discount_landmarks

    hits = regency.matcher.find_tokens(words, stems)
    near = regency.near_matcher.find(words, stems, hits)
    hits = discount_landmarks(hits + near if near else hits, words)
    score: dict[str, float] = {}
    seen: set[tuple[int, str]] = set()
    for idx, w, phrase, _pos in hits:
        if (idx, phrase) in seen:
            continue
        seen.add((idx, phrase))
        opd = regency.rules[idx].opd
        score[opd] = score.get(opd, 0.0) + w
    chan = regency.channel_defaults.get(channel) if channel else None
    if chan:
        score[chan["opd"]] = score.get(chan["opd"], 0.0) + chan["score"]
    return score


def _tfidf_block(counts: dict[str, int], vocab: dict[str, int], idf: np.ndarray, offset: int,
                 idx: list[int], val: list[float]) -> None:
    ii, vv = [], []
    for t, c in counts.items():
        j = vocab.get(t)
        if j is not None:
            ii.append(j)
            vv.append((1.0 + math.log(c)) * idf[j])
    if not ii:
        return
    norm = math.sqrt(sum(v * v for v in vv))
    idx.extend(offset + j for j in ii)
    val.extend(v / norm for v in vv)


# --------------------------------------------------------------------------- the model --
@dataclass
class LinearRouter:
    classes: list[str]
    word_vocab: dict[str, int]
    word_idf: np.ndarray
    char_vocab: dict[str, int]
    char_idf: np.ndarray
    coef: np.ndarray  # (n_classes, n_features): words, chars, then one rule feature per class
    intercept: np.ndarray
    temperature: float
    threshold: float  # calibrated confidence from which auto-routing is right >= TARGET_PRECISION (CV)
    examples: int = 0
    cv_accuracy: float | None = None
    class_examples: dict[str, int] = field(default_factory=dict)
    trained_at: str | None = None
    index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.index = {c: i for i, c in enumerate(self.classes)}
        self._n_word = len(self.word_vocab)
        self._n_char = len(self.char_vocab)

    # -- prediction
    def features(self, words: list[str], stems: list[str], rules: dict[str, float]) -> tuple[list[int], list[float]]:
        wc, cc = analyze(words, stems)
        idx: list[int] = []
        val: list[float] = []
        _tfidf_block(wc, self.word_vocab, self.word_idf, 0, idx, val)
        _tfidf_block(cc, self.char_vocab, self.char_idf, self._n_word, idx, val)
        base = self._n_word + self._n_char
        for opd, s in rules.items():
            i = self.index.get(opd)
            if i is not None and s > 0:
                idx.append(base + i)
                val.append(RULE_SCALE * math.log1p(s))
        return idx, val

    def decision(self, idx: list[int], val: list[float]) -> np.ndarray:
        if not idx:
            return self.intercept.astype(np.float64).copy()
        return self.coef[:, idx].astype(np.float64) @ np.asarray(val, dtype=np.float64) + self.intercept

    def proba(self, words: list[str], stems: list[str], rules: dict[str, float]) -> tuple[np.ndarray, bool]:
        """Calibrated probabilities over self.classes, and whether the message had any known
        feature at all (nothing known: the model has nothing to say)."""
        idx, val = self.features(words, stems, rules)
        d = self.decision(idx, val) / self.temperature
        d -= d.max()
        e = np.exp(d)
        return e / e.sum(), bool(idx)

    def top_terms(self, words: list[str], stems: list[str], cls: int, k: int = 3) -> list[str]:
        """The message's words that pushed most towards class cls (for the explanation)."""
        wc, _cc = analyze(words, stems)
        scored = []
        for t in wc:
            j = self.word_vocab.get(t)
            if j is not None:
                scored.append((float(self.coef[cls, j]) * float(self.word_idf[j]), t))
        scored.sort(key=lambda x: (-x[0], x[1]))
        return [t for s, t in scored[:k] if s > 0]

    # -- storage
    def to_dict(self) -> dict:
        return {
            "version": VERSION, "kind": KIND, "examples": self.examples, "classes": list(self.classes),
            "class_examples": dict(self.class_examples), "cv_accuracy": self.cv_accuracy,
            "trained_at": self.trained_at, "temperature": self.temperature, "threshold": self.threshold,
            "char_range": list(CHAR_RANGE), "rule_scale": RULE_SCALE,
            "word_vocab": sorted(self.word_vocab, key=self.word_vocab.__getitem__),
            "char_vocab": sorted(self.char_vocab, key=self.char_vocab.__getitem__),
            "word_idf": _b64(self.word_idf), "char_idf": _b64(self.char_idf),
            "coef": _b64(self.coef), "coef_shape": list(self.coef.shape), "intercept": [float(x) for x in self.intercept],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "LinearRouter | None":
        """Load a stored model; None for an unknown version or a malformed / inconsistent one
        (the caller then routes by the rules alone)."""
        try:
            if d.get("kind") != KIND or int(d.get("version", 0)) != VERSION:
                return None
            classes = [str(c) for c in d["classes"]]
            wv = {str(t): i for i, t in enumerate(d["word_vocab"])}
            cv = {str(t): i for i, t in enumerate(d["char_vocab"])}
            shape = tuple(int(x) for x in d["coef_shape"])
            n_feat = len(wv) + len(cv) + len(classes)
            if len(classes) < 2 or shape != (len(classes), n_feat):
                return None
            coef = _unb64(d["coef"], shape)
            widf = _unb64(d["word_idf"], (len(wv),))
            cidf = _unb64(d["char_idf"], (len(cv),))
            intercept = np.asarray([float(x) for x in d["intercept"]], dtype=np.float64)
            if intercept.shape != (len(classes),):
                return None
            temp = float(d.get("temperature") or 1.0)
            return cls(classes, wv, widf, cv, cidf, coef, intercept, temp if temp > 0 else 1.0,
                       float(d.get("threshold", 0.5)), int(d.get("examples", 0)), d.get("cv_accuracy"),
                       {str(k): int(v) for k, v in (d.get("class_examples") or {}).items()}, d.get("trained_at"))
        except (KeyError, TypeError, ValueError):
            return None


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


def _unb64(s: str, shape: tuple[int, ...]) -> np.ndarray:
    raw = base64.b64decode(s.encode("ascii"), validate=True)
    n = int(np.prod(shape)) if shape else 0
    if len(raw) != 4 * n:
        raise ValueError("array size does not match its shape")
    return np.frombuffer(raw, dtype="<f4").reshape(shape)  # plain floats: nothing is executed


# ---------------------------------------------------------------------------- training --
def _matrix(docs: list[tuple[dict, dict, dict]], wv: dict, widf, cv: dict, cidf, classes: list[str]):
    from scipy.sparse import csr_matrix

    n_w, n_c = len(wv), len(cv)
    index = {c: i for i, c in enumerate(classes)}
    rows, cols, vals = [], [], []
    for r, (wc, cc, rules) in enumerate(docs):
        idx: list[int] = []
        val: list[float] = []
        _tfidf_block(wc, wv, widf, 0, idx, val)
        _tfidf_block(cc, cv, cidf, n_w, idx, val)
        for opd, s in rules.items():
            i = index.get(opd)
            if i is not None and s > 0:
                idx.append(n_w + n_c + i)
                val.append(RULE_SCALE * math.log1p(s))
        rows.extend([r] * len(idx))
        cols.extend(idx)
        vals.extend(val)
    return csr_matrix((vals, (rows, cols)), shape=(len(docs), n_w + n_c + len(classes)), dtype=np.float64)


def _vocab(counts: list[dict], min_df: int, max_features: int) -> tuple[dict[str, int], np.ndarray]:
    df: dict[str, int] = {}
    for c in counts:
        for t in c:
            df[t] = df.get(t, 0) + 1
    keep = sorted((t for t, n in df.items() if n >= min_df), key=lambda t: (-df[t], t))[:max_features]
    keep.sort()
    n = len(counts)
    idf = np.asarray([math.log((1 + n) / (1 + df[t])) + 1.0 for t in keep], dtype=np.float64)
    return {t: i for i, t in enumerate(keep)}, idf


def _fit(docs, y, classes, C: float):
    from sklearn.svm import LinearSVC

    wv, widf = _vocab([d[0] for d in docs], 2 if len(docs) >= 200 else 1, 20000)
    cv, cidf = _vocab([d[1] for d in docs], 2 if len(docs) >= 200 else 1, 40000)
    x = _matrix(docs, wv, widf, cv, cidf, classes)
    clf = LinearSVC(C=C, class_weight="balanced", max_iter=5000)
    clf.fit(x, y)
    coef, intercept = clf.coef_, clf.intercept_
    if len(classes) == 2:  # binary LinearSVC has one row: class 1 vs class 0
        coef = np.vstack([-coef[0], coef[0]])
        intercept = np.asarray([-intercept[0], intercept[0]])
    # the order of clf.classes_ is sorted, as is `classes`
    return wv, widf, cv, cidf, coef, intercept


def _calibrate(dec: np.ndarray, y_idx: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood of softmax(dec / T)."""
    best_t, best_nll = 1.0, float("inf")
    for t in np.exp(np.linspace(math.log(0.02), math.log(5.0), 60)):
        z = dec / t
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nll = -float(logp[np.arange(len(y_idx)), y_idx].mean())
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def choose_threshold(conf: Sequence[float], correct: Sequence[bool], target: float = TARGET_PRECISION,
                     floor: float = 0.3, min_support: int = 20, fallback_coverage: float = 0.5) -> float:
    """The lowest confidence t such that the predictions with confidence >= t are right at least
    `target` of the time (over at least `min_support` predictions: the most coverage at the
    promised precision). When no cut-off reaches `target`, the most precise cut-off that still
    covers `fallback_coverage` of the predictions: triage everything would help nobody."""
    pairs = sorted(zip(conf, correct), key=lambda p: -p[0])
    total = len(pairs)
    if not total:
        return max(floor, 0.5)
    cutoffs: list[tuple[float, float, int]] = []  # (cut-off, precision at or above it, count)
    ok = 0
    for n, (c, r) in enumerate(pairs, 1):
        ok += bool(r)
        if n < total and pairs[n][0] == c:
            continue  # a cut-off takes every tie of c: judge it after the last one
        cutoffs.append((c, ok / n, n))
    meeting = [c for c, p, n in cutoffs if p >= target and n >= min(min_support, total)]
    if meeting:
        best = min(meeting)
    else:
        wide = [(p, c) for c, p, n in cutoffs if n >= fallback_coverage * total] or [(0.0, cutoffs[-1][0])]
        best = max(wide)[1]
    return max(floor, min(0.95, float(best)))


PRIOR_CHUNK = 4  # keywords per prior document


def prior_documents(regency: Any) -> list[tuple[str, str]]:
    """(text, OPD) documents made of each rule's keywords, PRIOR_CHUNK at a time, and each
    OPD's tasks (opds.yaml)."""
    kws: dict[str, list[str]] = {}
    for phrase_key, targets in regency.matcher.targets.items():
        for idx, _w, phrase in targets:
            kws.setdefault(regency.rules[idx].opd, []).append(phrase)
    out = []
    for opd, phrases in sorted(kws.items()):
        phrases = sorted(set(phrases))
        for i in range(0, len(phrases), PRIOR_CHUNK):
            out.append((" ".join(phrases[i:i + PRIOR_CHUNK]), opd))
    for opd, tasks in sorted((getattr(regency, "opd_tasks", None) or {}).items()):
        out.extend((t, opd) for t in tasks)
    return out


def train_linear(examples: Iterable[tuple[str, str] | tuple[str, str, str | None]], regency: Any,
                 C: float = 0.5, folds: int = 4, trained_at: str | None = None,
                 seed: int = 0) -> dict | None:
    """Train on (text, OPD[, channel]) pairs; a JSON-ready dict, or None when there is too little
    (fewer than MIN_EXAMPLES usable examples or fewer than two OPDs). Cross-validation (stratified,
    `folds` folds) fits the temperature, the auto-route threshold and reports the accuracy."""
    docs, y = [], []
    for ex in examples:
        text, opd = ex[0], ex[1]
        channel = ex[2] if len(ex) > 2 else None
        if not text or not opd:
            continue
        words, stems = text_words(str(text), regency)
        wc, cc = analyze(words, stems)
        if not wc and not cc:
            continue
        docs.append((wc, cc, rule_scores(words, stems, regency, channel)))
        y.append(str(opd).strip().upper())
    n_real = len(docs)
    if n_real < MIN_EXAMPLES or len(set(y)) < 2:
        return None
    # the rules' own keywords as a prior: a few short documents per rule, so that an OPD the
    # history has (almost) never seen can still be chosen when its keywords are plain
    for text, opd in prior_documents(regency):
        words, stems = text_words(text, regency)
        wc, cc = analyze(words, stems)
        docs.append((wc, cc, rule_scores(words, stems, regency)))
        y.append(opd)
    classes = sorted(set(y))
    index = {c: i for i, c in enumerate(classes)}
    y_idx = np.asarray([index[c] for c in y])

    # cross-validated decisions (classes too rare for a fold are predicted by the others' folds)
    rng = np.random.default_rng(seed)
    fold_of = np.full(len(docs), -1, dtype=int)  # prior documents (index >= n_real): never tested
    for c in range(len(classes)):
        members = np.flatnonzero(y_idx[:n_real] == c)
        rng.shuffle(members)
        fold_of[members] = np.arange(len(members)) % folds
    oof = np.zeros((len(docs), len(classes)))
    have = np.zeros(len(docs), dtype=bool)
    seen_cls = np.zeros(len(docs), dtype=bool)
    for f in range(folds):
        tr, te = np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)
        tr_classes = sorted(set(y_idx[tr].tolist()))
        if len(te) == 0 or len(tr_classes) < 2:
            continue
        sub_classes = [classes[i] for i in tr_classes]
        wv, widf, cv, cidf, coef, icpt = _fit([docs[i] for i in tr], [y[i] for i in tr], sub_classes, C)
        x = _matrix([docs[i] for i in te], wv, widf, cv, cidf, sub_classes)
        d = np.full((len(te), len(classes)), -1e3)
        d[:, tr_classes] = x @ coef.T + icpt
        oof[te] = d
        have[te] = True
        seen_cls[te] = np.isin(y_idx[te], tr_classes)
    if have.sum() >= 10:
        # the temperature from rows whose OPD the fold's model knew (an unseen class says nothing
        # about how sharp the scores are); accuracy and threshold from all rows
        cal = have & seen_cls
        temp = _calibrate(oof[cal], y_idx[cal]) if cal.sum() >= 10 else 1.0
        z = oof[have] / temp
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        pred = p.argmax(axis=1)
        correct = pred == y_idx[have]
        cv_acc = float(correct.mean())
        threshold = choose_threshold(p.max(axis=1).tolist(), correct.tolist())
    else:
        temp, cv_acc, threshold = 1.0, None, 0.5

    wv, widf, cv, cidf, coef, icpt = _fit(docs, y, classes, C)
    counts = {c: int((y_idx[:n_real] == i).sum()) for i, c in enumerate(classes)}
    model = LinearRouter(classes, wv, widf, cv, cidf, coef.astype(np.float32), icpt.astype(np.float64), temp,
                         threshold, n_real, round(cv_acc, 4) if cv_acc is not None else None, counts, trained_at)
    return model.to_dict()


# ------------------------------------------------------------------------------ routing --
def route_linear(model: LinearRouter, words: list[str], stems: list[str], score: dict[str, float],
                 why: dict[str, list[str]], threshold: float, triage_opd: str, opd_codes: Sequence[str]):
    """Decide with the learned model (rules are among its features): the best OPD if its
    calibrated probability reaches `threshold`, else triage with the top three suggestions."""
    from normalizer.router import RouteResult

    probs, known = model.proba(words, stems, score)
    if not known and not score:
        return RouteResult(triage_opd, 0.0, f"no rule or model evidence -> triage {triage_opd}", True, (), None)
    order = np.argsort(-probs, kind="stable")
    ranked = [(model.classes[i], float(probs[i])) for i in order]
    best, conf = ranked[0]
    bits = []
    kw = [p for p in why.get(best, []) if not p.startswith(("channel ", "field "))]
    if kw:
        bits.append("rule:keyword " + ", ".join(f"'{p}'" for p in dict.fromkeys(kw[:3])) + f" -> {best}")
    tops = model.top_terms(words, stems, model.index[best])
    bits.append("model:linear" + (" top features " + ",".join(f"'{t}'" for t in tops) if tops else "")
                + f" (p={conf:.2f})")
    text = "; ".join(bits)
    candidates = tuple((o, round(p, 3)) for o, p in ranked[:3])
    if conf < threshold or best not in opd_codes:
        return RouteResult(triage_opd, conf,
                           f"low confidence {conf:.2f} < {threshold:.2f}: best guess {best} ({text}) -> triage {triage_opd}",
                           True, candidates, None)
    return RouteResult(best, conf, text, False, candidates, None)
