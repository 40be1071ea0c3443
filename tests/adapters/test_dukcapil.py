"""Dukcapil keyword SMS formats -> fields; free text stays free text."""
from __future__ import annotations

import pytest

from adapters.dukcapil import parse

NIK = "3503114506900002"

CASES = [
    ("ktp hash", f"KTP#{NIK}#Siti Aminah#belum jadi 3 bulan",
     {"keyword": "KTP", "nik": NIK, "nama": "Siti Aminah", "keterangan": "belum jadi 3 bulan"}),
    ("ktp star", f"ktp*{NIK}*Siti Aminah", {"keyword": "KTP", "nik": NIK, "nama": "Siti Aminah"}),
    ("ktp comma", f"KTP,{NIK},Siti Aminah,rusak", {"keyword": "KTP", "nik": NIK, "nama": "Siti Aminah",
                                                    "keterangan": "rusak"}),
    ("spaces around", f"  KK # {NIK} # Budi Santoso # pecah KK ", {"keyword": "KK", "nik": NIK,
                                                                     "nama": "Budi Santoso", "keterangan": "pecah KK"}),
    ("nik with dots", "AKTA#3503.11.450690.0002#Anak Budi", {"keyword": "AKTA", "nik": NIK, "nama": "Anak Budi"}),
    ("note keeps other separators", f"KTP#{NIK}#Budi#alamat: RT 1, RW 2 * dekat masjid",
     {"keyword": "KTP", "nik": NIK, "nama": "Budi", "keterangan": "alamat: RT 1, RW 2 * dekat masjid"}),
    ("note with more hashes", f"KK#{NIK}#Budi#a#b", {"keyword": "KK", "nik": NIK, "nama": "Budi",
                                                     "keterangan": "a#b"}),
    ("cek document", f"CEK#KTP#{NIK}", {"keyword": "CEK", "dokumen": "KTP", "nik": NIK}),
    ("cek star", f"cek*kk*{NIK}", {"keyword": "CEK", "dokumen": "KK", "nik": NIK}),
    ("cek comma", f"CEK,AKTA,{NIK}", {"keyword": "CEK", "dokumen": "AKTA", "nik": NIK}),
    ("cek nik only", f"CEK#{NIK}", {"keyword": "CEK", "nik": NIK}),
    ("keyword only nik", f"KTP#{NIK}", {"keyword": "KTP", "nik": NIK}),
]

FREE_TEXT = [
    ("free text", "Jalan di desa Ngadirenggo rusak parah"),
    ("starts with keyword word", "KTP saya hilang waktu banjir, mohon dibantu"),
    ("comma after keyword, no number", "KTP, saya belum jadi padahal sudah 3 bulan"),
    ("status query", "CEK K7X2M9P"),
    ("unknown keyword", f"SIM#{NIK}#Budi"),
    ("keyword without content", "KTP#"),
    ("cek without number", "CEK#KTP#"),
    ("empty", ""),
]


@pytest.mark.parametrize("label,text,expected", CASES, ids=[c[0] for c in CASES])
def test_keyword_formats(label, text, expected):
    got = parse(text)
    assert got is not None, label
    got.pop("separator")
    assert got == expected


@pytest.mark.parametrize("label,text", FREE_TEXT, ids=[c[0] for c in FREE_TEXT])
def test_free_text_is_not_a_keyword(label, text):
    assert parse(text) is None


def test_separator_is_reported():
    assert parse(f"KTP*{NIK}*Budi")["separator"] == "*"


@pytest.mark.parametrize("entry_point", ["twilio", "gammu"])
def test_sms_adapters_are_registered_by_name(entry_point):
    import asyncio

    from adapters.base import Adapter, OutboundMessage, PermanentError, load_adapter

    adapter = load_adapter(entry_point)()
    assert isinstance(adapter, Adapter) and adapter.name == "sms"
    with pytest.raises(PermanentError, match="configured"):  # unconfigured: a dead letter, not a crash
        asyncio.run(adapter.send(OutboundMessage("sms", "+6281234567890", "x")))
