"""Incident linking (one flood over SMS, Telegram and the BPBD hotline is one incident) and
repeat detection."""
from datetime import timedelta

import pytest

from normalizer import IncidentCandidate, category_family, is_repeat, match_incident

from .conftest import NOW


def _cand(id, text, category="LINGKUNGAN HIDUP DAN KEHUTANAN", kec="35.03.13", desa="35.03.13.2001",
          hours_ago=1.0, lat=None, lon=None):
    return IncidentCandidate(id=id, category=category, kecamatan_code=kec, desa_code=desa, latitude=lat,
                             longitude=lon, last_at=NOW - timedelta(hours=hours_ago), text=text)


def test_one_flood_over_three_channels_is_one_incident(norm):
    first = norm("Banjir setinggi 50 cm merendam rumah", channel="bpbd",
                 fields={"kecamatan": "Durenan", "desa": "Ngadisuko", "incident_type": "banjir"})
    inc = _cand(7, first.text_clean, category=first.category, kec=first.place.kecamatan_code,
                desa=first.place.desa_code)
    sms = norm("banjir di ds Ngadisuko kec Durenan air masuk rmh", channel="sms")
    tg = norm("kebanjiran nang Ngadisuko Durenan, banyu mlebu omah", channel="telegram")
    assert match_incident(sms, NOW, [inc]) == 7
    assert match_incident(tg, NOW, [inc]) == 7
    assert sms.incident_key == first.incident_key == tg.incident_key


@pytest.mark.parametrize("text,cand_kwargs", [
    ("banjir di ds Ngadisuko kec Durenan", {"hours_ago": 30}),                       # too old
    ("banjir di ds Gador kec Durenan", {}),                                           # other desa
    ("KTP saya belum jadi di ds Ngadisuko kec Durenan", {}),                          # other family
    ("sampah menumpuk di ds Ngadisuko kec Durenan", {}),                              # same family, other words
])
def test_not_linked(norm, text, cand_kwargs):
    d = norm(text)
    assert match_incident(d, NOW, [_cand(1, "banjir merendam rumah warga", **cand_kwargs)]) is None


def test_linked_by_distance(norm):
    d = norm("pohon tumbang menutup jalan", latitude=-8.1000, longitude=111.7000)
    c = _cand(3, "pohon besar tumbang di jalan", kec=None, desa=None, lat=-8.1050, lon=111.7040)
    assert match_incident(d, NOW, [c]) == 3
    far = _cand(4, "pohon besar tumbang di jalan", kec=None, desa=None, lat=-8.3, lon=111.9)
    assert match_incident(d, NOW, [far]) is None


@pytest.mark.parametrize("a,b,same", [
    ("Jalan rusak di desa Ngares!", "jalan rusak di desa ngares", True),
    ("jalan  rusak\n di desa Ngares", "Jalan rusak di desa Ngares.", True),
    ("KTP saya belum jadi", "KTP saya belum jadi??", True),
    ("KTP saya belum jadi", "KK saya belum jadi", False),
    ("banjir di Ngadisuko", "banjir di Gador", False),
    ("", "", False),
])
def test_is_repeat(a, b, same):
    assert is_repeat(a, b) is same


@pytest.mark.parametrize("category,family", [
    ("LINGKUNGAN\xa0HIDUP\xa0DAN\xa0KEHUTANAN", "lingkungan"),
    ("LINGKUNGAN HIDUP DAN KEHUTANAN", "lingkungan"),
    ("KESEHATAN", "kesehatan"),
    ("CORONA VIRUS", "kesehatan"),
    ("PERHUBUNGAN", "perhubungan"),
    (None, None),
])
def test_category_family(category, family):
    assert category_family(category) == family
