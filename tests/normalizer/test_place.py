"""Place recognition against the Trenggalek gazetteer: markers, typos, repeated desa names,
the kabupaten's own name, common words that must not match, structured hotline fields."""
import pytest


@pytest.mark.parametrize("text,kec,desa", [
    ("jalan rusak di ds. Sawahan kec. Watulimo", "Watulimo", "Sawahan"),
    ("jalan rusak di Desa Sawahan Kecamatan Panggul", "Panggul", "Sawahan"),
    ("DESA BESUKI KEC MUNJUNGAN banjir", "Munjungan", "Besuki"),
    ("banjir di ds karanganyar kec gandusari", "Gandusari", "Karanganyar"),
    ("banjir di ds karanganyar kec pule", "Pule", "Karanganyar"),
    ("longsor di dsn krajan desa sumberbening kec dongko rt 02/rw 05", "Dongko", "Sumberbening"),
    ("sampah numpuk di kel. Surodakan", "Trenggalek", "Surodakan"),
    ("air mati di kelurahan sumbergedong", "Trenggalek", "Sumbergedong"),
    ("jalan di Ngulung Kulon rusak", "Munjungan", "Ngulungkulon"),     # split name
    ("jembatan ds Sumber Bening retak", "Dongko", "Sumberbening"),
    ("jalan rusak ds. Watulimoo", "Watulimo", "Watulimo"),            # desa typo (double letter)
    ("jalan rusak di Kecamatan Watulmo", "Watulimo", None),           # kecamatan typo
    ("jalan rusak di kec. pogalan ds. ngetal", "Pogalan", "Ngetal"),
    ("banjir nang Kamulan Durenan", "Durenan", "Kamulan"),
    ("PJU mati di prigi", "Watulimo", "Prigi"),
    ("lampu mati di desa Tasikmadu", "Watulimo", "Tasikmadu"),
    ("jalan di Bendorejo Pogalan rusak", "Pogalan", "Bendorejo"),
    ("air keruh di kec trenggalek", "Trenggalek", None),
    ("air keruh di kecamatan Trenggalek", "Trenggalek", None),
    ("jalan rusak Ds Djati kec Karangan", "Karangan", "Jati"),        # old spelling
])
def test_place_found(norm, text, kec, desa):
    p = norm(text).place
    assert p.kecamatan_name == kec
    assert p.desa_name == desa
    if desa:
        assert p.desa_code and p.desa_code.startswith(p.kecamatan_code + ".")


@pytest.mark.parametrize("text,n_candidates", [
    ("jalan rusak di desa Besuki", 2),       # Panggul and Munjungan
    ("banjir di desa sawahan", 2),           # Panggul and Watulimo
    ("air mati di ds karanganyar", 2),       # Pule and Gandusari
    ("jembatan ds Pakel putus", 2),          # Pule and Watulimo
    ("sampah di desa Masaran", 2),           # Munjungan and Bendungan
])
def test_repeated_desa_left_ambiguous(norm, text, n_candidates):
    p = norm(text).place
    assert p.desa_code is None and p.kecamatan_code is None
    assert len(p.ambiguous_desa) == n_candidates


@pytest.mark.parametrize("text", [
    "Pemerintah Kabupaten Trenggalek mohon perhatian",
    "warga Trenggalek mengeluh harga beras",
    "kab. trenggalek jalan rusak",
    "pelayanan RSUD Trenggalek lambat",
])
def test_kabupaten_name_is_not_the_kecamatan(norm, text):
    assert norm(text).place.kecamatan_code is None


@pytest.mark.parametrize("text", [
    "harga barang di pasar mahal",              # Barang (Panggul)
    "pembangunan gedung sekolah mangkrak",      # Bangun (Munjungan)
    "pohon jati tumbang",                       # Jati (Karangan)
    "sumber air warga kering",                  # Sumber (Karangan)
    "sakit panggul setelah jatuh",              # Panggul used as body part
    "tugu di perempatan kotor",                 # Tugu as monument
    "bendungan jebol di sungai",                # Bendungan as dam
    "saya disuruh bayar 50 ribu",               # Suruh
    "buah manggis dan durian murah",            # Manggis (Panggul)
    "nyamuk banyak di sawah",                   # Sawahan must not match sawah
])
def test_common_words_do_not_match(norm, text):
    p = norm(text).place
    assert p.kecamatan_code is None and p.desa_code is None and not p.ambiguous_desa


@pytest.mark.parametrize("text,kec", [
    ("jalan rusak di panggul", "Panggul"),          # locative makes it a place
    ("banjir daerah bendungan", "Bendungan"),
    ("Kecamatan Tugu banjir", "Tugu"),
    ("kec suruh jalan rusak", "Suruh"),
])
def test_common_kecamatan_names_with_context(norm, text, kec):
    assert norm(text).place.kecamatan_name == kec


def test_structured_fields_beat_text(norm):
    d = norm("banjir di desa Besuki", channel="bpbd",
             fields={"kecamatan": "Munjungan", "desa": "Besuki", "dusun": "Krajan", "rt_rw": "01/02"})
    assert d.place.desa_code == "35.03.02.2009"
    assert d.place.address.startswith("Dsn. Krajan")
    d2 = norm("banjir", channel="bpbd", fields={"kecamatan": "Durenan", "desa": "Ngadisuko"})
    assert (d2.place.kecamatan_name, d2.place.desa_name) == ("Durenan", "Ngadisuko")


def test_coordinates_kept(norm):
    d = norm("pohon tumbang", latitude=-8.05, longitude=111.71)
    assert (d.place.latitude, d.place.longitude) == (-8.05, 111.71)
    d2 = norm("pohon tumbang lokasi -8.0512, 111.7123")
    assert (d2.place.latitude, d2.place.longitude) == (-8.0512, 111.7123)
