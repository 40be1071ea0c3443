"""Indonesian text as citizens write it: case, punctuation, SMS abbreviations, Javanese words
common in Trenggalek, and a light stemmer. Pure, precompiled, fast; never does I/O and never
guesses meaning (that is the router's and the gazetteer's job)."""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# SMS / chat abbreviations -> standard Indonesian (one token may become several).
ABBREVIATIONS: dict[str, str] = {
    "yg": "yang", "yng": "yang", "dgn": "dengan", "dg": "dengan", "dngn": "dengan",
    "tdk": "tidak", "tdak": "tidak", "tak": "tidak", "gak": "tidak", "ga": "tidak", "gk": "tidak",
    "nggak": "tidak", "ngga": "tidak", "enggak": "tidak", "engga": "tidak", "g": "tidak",
    "blm": "belum", "blum": "belum", "sdh": "sudah", "udh": "sudah", "udah": "sudah", "sdah": "sudah",
    "mhn": "mohon", "mohn": "mohon", "tlg": "tolong", "tlng": "tolong", "tolongin": "tolong",
    "jln": "jalan", "jl": "jalan", "jalanan": "jalan", "jlan": "jalan", "jaln": "jalan",
    "dr": "dari", "krn": "karena", "karna": "karena", "krna": "karena",
    "bpk": "bapak", "pak": "bapak", "bp": "bapak", "ibu": "ibu", "bu": "ibu",
    "sy": "saya", "sya": "saya", "aku": "saya", "kmi": "kami", "kami": "kami",
    "utk": "untuk", "u": "untuk", "untk": "untuk", "tuk": "untuk",
    "jg": "juga", "jga": "juga", "sj": "saja", "aja": "saja", "aj": "saja",
    "bgt": "sangat", "banget": "sangat", "bngt": "sangat", "sgt": "sangat",
    "skrg": "sekarang", "skrang": "sekarang", "skr": "sekarang", "sekrg": "sekarang",
    "kpn": "kapan", "gmn": "bagaimana", "gimana": "bagaimana", "bgmn": "bagaimana",
    "knp": "kenapa", "napa": "kenapa", "trs": "terus", "trus": "terus",
    "sm": "sama", "ama": "sama", "org": "orang", "orng": "orang", "ank": "anak",
    "rmh": "rumah", "rmah": "rumah", "sklh": "sekolah", "sekul": "sekolah", "sd": "sd",
    "pdhl": "padahal", "hrs": "harus", "msh": "masih", "masi": "masih", "lg": "lagi", "lgi": "lagi",
    "bnyk": "banyak", "byk": "banyak", "dpt": "dapat", "dapet": "dapat", "sbg": "sebagai",
    "tp": "tapi", "tpi": "tapi", "klo": "kalau", "kalo": "kalau", "kl": "kalau",
    "min": "admin", "mimin": "admin", "kak": "kakak", "mas": "mas", "mbak": "mbak",
    "trims": "terima kasih", "makasih": "terima kasih", "mksh": "terima kasih", "tks": "terima kasih",
    "ngurus": "mengurus", "urus": "mengurus", "kmrn": "kemarin", "kemaren": "kemarin",
    "hr": "hari", "hri": "hari", "bln": "bulan", "thn": "tahun", "th": "tahun", "mgg": "minggu",
    "kab": "kabupaten", "kec": "kecamatan", "kcmtn": "kecamatan", "ds": "desa", "dsa": "desa",
    "kel": "kelurahan", "dsn": "dusun", "dus": "dusun",
    "pemkab": "pemerintah kabupaten", "pemda": "pemerintah daerah",
    "puskes": "puskesmas", "pkm": "puskesmas", "rs": "rumah sakit", "rsud": "rsud",
    "ambulan": "ambulans", "ambulance": "ambulans", "ambulans": "ambulans",
    "lampu2": "lampu", "jalan2": "jalan", "anak2": "anak", "rumah2": "rumah",
    "hp": "hp", "wa": "whatsapp", "ktp": "ktp", "ektp": "ktp", "kk": "kk",
    "pju": "pju", "pdam": "pdam", "plg": "pulang", "brp": "berapa", "brapa": "berapa",
    # never "smp" -> "sampai": SMP is the junior high school (a DINDIK keyword); the regency
    # refuses a keyword that this table turns into stopwords
    "smpe": "sampai", "smpai": "sampai", "sampe": "sampai", "ampe": "sampai",
    "dket": "dekat", "dkt": "dekat", "deket": "dekat", "dpn": "depan", "dpan": "depan",
    "blkg": "belakang", "sblh": "sebelah", "smpng": "samping", "ttg": "tentang",
    "bsk": "besok", "td": "tadi", "tdi": "tadi", "lbh": "lebih", "krg": "kurang",
    "sktr": "sekitar", "kira2": "kira", "pdhal": "padahal", "sbnrnya": "sebenarnya",
    "rsk": "rusak", "rusakk": "rusak", "lobang": "lubang", "bolong": "lubang",
    "brlubang": "berlubang", "brlobang": "berlubang", "berlobang": "berlubang",
    # more chat spelling seen in complaint streams (issue #12)
    "bs": "bisa", "bsa": "bisa", "jd": "jadi", "jdi": "jadi", "dlm": "dalam", "pd": "pada", "spt": "seperti",
    "sprt": "seperti", "tlh": "telah", "sblm": "sebelum", "stlh": "setelah", "kpd": "kepada", "lgsg": "langsung",
    "lmp": "lampu", "lmpu": "lampu", "smph": "sampah", "sampa": "sampah", "slrn": "saluran", "salurn": "saluran",
    "phn": "pohon", "pohn": "pohon", "prbaikan": "perbaikan", "perbaikn": "perbaikan", "dibenerin": "diperbaiki",
    "benerin": "perbaiki", "dibersihin": "dibersihkan", "diangkut2": "diangkut", "blom": "belum", "blon": "belum",
    "gimana2": "bagaimana", "tlong": "tolong", "mhon": "mohon", "bantuanya": "bantuannya", "sekolahan2": "sekolah",
    "ktpnya": "ktp", "kknya": "kk", "pbbnya": "pbb", "pjunya": "pju", "tpsnya": "tps",
}

# Javanese (ngoko/krama as written in Trenggalek) -> Indonesian.
JAVANESE: dict[str, str] = {
    "banyu": "air", "toya": "air", "dalan": "jalan", "ratan": "jalan", "margi": "jalan",
    "bodol": "rusak", "bodhol": "rusak", "rusak": "rusak", "remuk": "rusak", "jugrug": "longsor",
    "kobong": "kebakaran", "kobongan": "kebakaran", "obong": "bakar", "geni": "api",
    "kelelep": "tenggelam", "klelep": "tenggelam", "kentir": "hanyut", "keli": "hanyut",
    "ambrol": "ambruk", "ambrug": "ambruk", "rubuh": "roboh", "rubuhe": "roboh", "ambles": "amblas",
    "mampet": "mampet", "buntu": "mampet", "sampah": "sampah", "uwuh": "sampah", "rereged": "sampah",
    "mati": "mati", "pejah": "mati", "sedo": "meninggal", "seda": "meninggal", "tilar": "meninggal",
    "lara": "sakit", "loro": "sakit", "gerah": "sakit", "mumet": "pusing", "ngelu": "pusing",
    "mbabar": "melahirkan", "lairan": "melahirkan", "babaran": "melahirkan", "meteng": "hamil",
    "ngandut": "hamil", "bayen": "melahirkan", "semaput": "pingsan", "klenger": "pingsan",
    "tibo": "jatuh", "ceblok": "jatuh", "nyemplung": "tercebur",
    "wit": "pohon", "uwit": "pohon", "wite": "pohon", "tumbang": "tumbang", "rebah": "tumbang",
    "omah": "rumah", "griya": "rumah", "omahe": "rumah",
    "kalen": "selokan", "got": "selokan", "wangan": "saluran",
    "sawah": "sawah", "tegal": "ladang", "pari": "padi", "gabah": "gabah",
    "pupuke": "pupuk", "rabuk": "pupuk", "larang": "mahal", "murah": "murah",
    "ora": "tidak", "gak": "tidak", "ndak": "tidak", "mboten": "tidak", "boten": "tidak", "dudu": "bukan",
    "wis": "sudah", "uwis": "sudah", "sampun": "sudah", "durung": "belum", "dereng": "belum",
    "ono": "ada", "enten": "ada", "wonten": "ada", "akeh": "banyak", "kathah": "banyak",
    "cilik": "kecil", "alit": "kecil", "gede": "besar", "ageng": "besar",
    "suwe": "lama", "dangu": "lama", "saiki": "sekarang", "sakniki": "sekarang",
    "wingi": "kemarin", "dino": "hari", "dinten": "hari", "bengi": "malam", "dalu": "malam", "esuk": "pagi",
    "bocah": "anak", "lare": "anak", "wong": "orang", "tiyang": "orang", "simbah": "kakek",
    "mbah": "kakek", "bapake": "bapak", "ibuke": "ibu", "anake": "anak",
    "tulung": "tolong", "tulungi": "tolong", "nyuwun": "mohon", "tulungono": "tolong",
    "sekolahan": "sekolah", "pasare": "pasar", "dalane": "jalan", "banyune": "air", "kaline": "sungai",
    "lampune": "lampu", "onok": "ada", "ndek": "di", "sampek": "sampai", "arek": "anak", "iku": "itu",
    "kreteg": "jembatan", "kretek": "jembatan", "wot": "jembatan",
    "udan": "hujan", "jawah": "hujan", "angin": "angin", "lindu": "gempa", "banjire": "banjir",
    "kebanjiran": "banjir", "longsore": "longsor", "tanahe": "tanah", "mbanjiri": "banjir",
    "butek": "keruh", "buthek": "keruh", "mambu": "bau", "ambune": "bau", "bacin": "busuk",
    "duwit": "uang", "dhuwit": "uang", "arto": "uang", "bayar": "bayar", "mbayar": "bayar",
    "nggawe": "membuat", "gawe": "membuat", "garap": "kerja", "nyambut": "kerja",
    "dibenakke": "diperbaiki", "didandani": "diperbaiki", "dandani": "perbaiki", "ndandani": "perbaiki",
    "dibenahi": "diperbaiki", "mbenakke": "perbaiki", "bubrah": "rusak", "pecah": "pecah",
    "wedi": "takut", "ajur": "hancur", "kleleb": "tenggelam", "kintir": "hanyut",
    "ngamuk": "mengamuk", "mlebu": "masuk", "mlebet": "masuk", "macet": "macet", "nang": "di", "ning": "di", "neng": "di", "teng": "di",
    "karo": "dengan", "kaliyan": "dengan", "sing": "yang", "ingkang": "yang", "iki": "ini",
    "niki": "ini", "kuwi": "itu", "niku": "itu", "lan": "dan", "opo": "apa", "nopo": "apa",
    "piye": "bagaimana", "pripun": "bagaimana", "kapan": "kapan", "kok": "kok",
    "ketok": "terlihat", "kethok": "terlihat", "sirah": "kepala", "getih": "darah", 
    "ulo": "ular", "ula": "ular", "tawon": "tawon", "kemladeyan": "tawon",
    "kewan": "hewan", "sapi": "sapi", "wedus": "kambing", "pitik": "ayam",
    "listrik": "listrik", "lampu": "lampu", "peteng": "gelap", "petheng": "gelap",
}

# Words too common to be evidence for anything.
STOPWORDS: frozenset[str] = frozenset("""
yang dan di ke dari ini itu dengan untuk pada ada tidak sudah belum saya kami kita kamu anda
mohon tolong bapak ibu admin kakak mas mbak terima kasih selamat pagi siang sore malam
assalamualaikum wr wb salam hormat min sangat sekali juga saja lagi masih sekarang kapan
bagaimana kenapa apa apakah atau tapi kalau karena jadi agar supaya bisa dapat akan oleh
sebagai nya lah kok ya iya yaa ok oke the of a mau minta hal tersebut sama terus sampai pun
dong deh sih kah toh adalah ialah telah baru hanya lebih kurang semua setiap para tsb
""".split())

_SPACE_RE = re.compile(r"\s+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
_TOKEN_RE = re.compile(r"[a-z0-9]+")
_REPEAT_RE = re.compile(r"([a-z])\1{2,}")
_REDUP_RE = re.compile(r"\b([a-z]{2,})2\b")  # "jalan2" -> "jalan"
_HYPHEN_REDUP_RE = re.compile(r"\b([a-z]{2,})-\1\b")  # "anak-anak" -> "anak"
_TRANS = str.maketrans({"\xa0": " ", "\u200b": "", "\u2019": "'", "\u2018": "'", "`": "'"})


def fold(text: str) -> str:
    """Unicode-normalise, lower-case, replace non-breaking spaces and collapse whitespace."""
    text = text or ""
    if text.isascii():  # NFKC leaves ASCII as it is, and "`" is _TRANS's only ASCII key
        text = text.replace("`", "'")
    else:
        text = unicodedata.normalize("NFKC", text).translate(_TRANS)
    return " ".join(text.lower().split())  # str.split() and re's \s agree on what is a space


def norm_label(text: str) -> str:
    """Normalise a taxonomy label: NBSP -> space, collapsed spaces, upper case."""
    return _SPACE_RE.sub(" ", unicodedata.normalize("NFKC", text).replace("\xa0", " ")).strip().upper()


def clean_text(text: str) -> str:
    """The human-readable cleaned text: whitespace collapsed, control characters removed."""
    text = text or ""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).replace("\xa0", " ")
    text = _CONTROL_RE.sub("", text)
    return " ".join(text.split())


def raw_tokens(folded: str) -> list[str]:
    """Tokens of folded text with letter-runs squeezed ("tolonggg" -> "tolong"); no mapping."""
    if "-" in folded:  # the substitutions only run where they can apply (same result, faster)
        folded = _HYPHEN_REDUP_RE.sub(r"\1", folded)
    if "2" in folded:
        folded = _REDUP_RE.sub(r"\1", folded)
    folded = _REPEAT_RE.sub(r"\1", folded)
    return _TOKEN_RE.findall(folded)


@lru_cache(maxsize=65536)
def map_token(tok: str) -> tuple[str, ...]:
    """Abbreviation and Javanese expansion of one token (cached: the vocabulary is small)."""
    if tok in ABBREVIATIONS:
        return tuple(ABBREVIATIONS[tok].split())
    if tok in JAVANESE:
        return tuple(JAVANESE[tok].split())
    # Javanese possessive/definite suffix -e / -ne on a known word: "dalane", "omahe".
    for suf in ("ne", "e"):
        if tok.endswith(suf) and len(tok) > len(suf) + 3:
            base = tok[: -len(suf)]
            if base in JAVANESE:
                return tuple(JAVANESE[base].split())
    return (tok,)


def words(folded: str) -> list[str]:
    """Folded text -> standard Indonesian words (abbreviations expanded, Javanese mapped)."""
    out: list[str] = []
    for tok in raw_tokens(folded):
        out.extend(map_token(tok))
    return out


_PREFIXES = ("memper", "member", "menge", "penge", "meng", "meny", "peng", "peny", "mem", "men",
             "pem", "pen", "per", "ber", "ter", "me", "pe", "di", "ke")
_NO_STEM = frozenset("""
jalan taman teman makan minum pasar jembatan bantuan dusun desa kelurahan kecamatan kabupaten
pemerintah perumahan pertanian peternakan pendidikan kesehatan kebakaran kecelakaan kemarin
sekolah selokan saluran sungai selatan utara timur barat perbaikan pembangunan pelayanan
pelatihan persawahan lapangan bendungan jaringan tegangan ladang karangan tengah tinggi
perempuan meninggal mengurus kerja bekerja pekerja dinas badan kantor perusahaan penduduk
penerangan pengaduan pemadam pemakaman perangkat keluarga ketenagakerjaan kependudukan
""".split())


@lru_cache(maxsize=131072)
def stem(word: str) -> str:
    """Light Indonesian stemmer (affix stripping with a minimum stem length of 4).

    Deliberately conservative: better "pelayanan" -> "layan" and "kebanjiran" -> "banjir" than
    collapsing unrelated words. Digits and short words pass through."""
    if len(word) <= 4 or word in _NO_STEM or not word.isalpha():
        return word
    w = word
    for suf in ("nya", "lah", "kah"):
        if w.endswith(suf) and len(w) - len(suf) >= 4:
            w = w[: -len(suf)]
            break
    for suf in ("kan", "an"):
        if w.endswith(suf) and len(w) - len(suf) >= 4:
            w = w[: -len(suf)]
            break
    for pre in _PREFIXES:
        if w.startswith(pre) and len(w) - len(pre) >= 4:
            w = w[len(pre):]
            break
    if w.startswith(("ke", "ber", "ter", "per")) and w != word:
        for pre in ("ber", "ter", "per", "ke"):
            if w.startswith(pre) and len(w) - len(pre) >= 4:
                w = w[len(pre):]
                break
    return w


def stems(folded: str) -> list[str]:
    return [stem(w) for w in words(folded)]


def content_stems(folded: str) -> list[str]:
    """Stems without stopwords and bare numbers: what similarity and the model look at."""
    return [stem(w) for w in words(folded) if w not in STOPWORDS and not w.isdigit()]
