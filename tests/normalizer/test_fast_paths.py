"""The shortcuts taken for speed give what the slow path gives: the name pre-check before the
case-insensitive regex, ASCII text skipping NFKC, the gazetteer's memoised lookups."""
from __future__ import annotations

import unicodedata

import pytest

from normalizer.reporter import find_name, to_e164
from normalizer.text import clean_text, fold


@pytest.mark.parametrize("text, name", [
    ("ſaya bernama Budi Santoso dari desa Ngares", "Budi Santoso"),  # long s: re folds it to "s"
    ("NAMA SAYA SITI AMINAH", "Siti Aminah"),
    ("A.N. Bpk Suroto", "Suroto"),
    ("dengan Ibu Sri Wahyuni", "Sri Wahyuni"),
    ("atas nama Joko Widodo", "Joko Widodo"),
    ("an. Slamet", "Slamet"),
    ("Assalamualaikum, sy warga kec. Pule", None),
    ("Dengan hormat, kami warga", None),
    ("", None),
])
def test_find_name_precheck_keeps_matches(text, name):
    assert find_name(text) == name


@pytest.mark.parametrize("text", [
    "Jalan  RUSAK\tparah", "ＪＡＬＡＮ rusak", "jalan\u00a0rusak", "ﬁlter air", "kali\u200bmati", "desa Ngadirejo`s",
])
def test_fold_and_clean_text_equal_the_nfkc_path(text):
    nfkc = unicodedata.normalize("NFKC", text)
    assert fold(text) == fold(nfkc + " ").strip() == " ".join(
        nfkc.translate(str.maketrans({"\xa0": " ", "\u200b": "", "\u2019": "'", "\u2018": "'", "`": "'"}))
        .lower().split())
    assert clean_text(text) == clean_text(nfkc)


@pytest.mark.parametrize("raw, e164", [
    ("081234567890", "+6281234567890"), (" 0812-3456-7890 ", "+6281234567890"),
    ("whatsapp:+6281234567890", "+6281234567890"), ("12345", None), ("", None), (None, None),
])
def test_to_e164_cached_twice_same(raw, e164):
    assert to_e164(raw) == e164
    assert to_e164(raw) == e164


def test_gazetteer_memo_gives_the_same_place_twice(regency):
    text = "banjir di Ngadirejo kec Pogalan, jalan ke Karangan putus; Sumbergedong dan Trenggalek"
    first = regency.gazetteer.scan(text)
    assert first.kecamatan is not None
    assert regency.gazetteer.scan(text) == first


def test_str_split_and_re_whitespace_agree():
    """fold/clean_text collapse spaces with str.split(); it must split exactly where \\s+ would."""
    import re
    import sys

    ws = re.compile(r"\s")
    assert [c for c in map(chr, range(sys.maxunicode + 1)) if bool(ws.match(c)) != c.isspace()] == []


@pytest.mark.parametrize("text", [
    "RT 03/RW 02 ds. jati", "anak-anak/ibu-ibu", "jalan2/gang2 rusak", "a//b /c/ tolonggg/", "kec.Tugu/Pule",
])
def test_tokens_same_without_spacing_slashes(text):
    """scan() used to tokenise text.replace('/', ' / '); normalize now shares the plain tokens."""
    from normalizer.text import raw_tokens

    folded = fold(text)
    assert raw_tokens(folded.replace("/", " / ")) == raw_tokens(folded)
