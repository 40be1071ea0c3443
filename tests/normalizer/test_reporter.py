"""Reporter extraction: phone forms to E.164, NIK validation and masking, stated names."""
import pytest

from normalizer.reporter import find_name, find_nik, find_phone, is_valid_nik, mask_niks, to_e164


@pytest.mark.parametrize("raw,expected", [
    ("081234567890", "+6281234567890"),
    ("0812-3456-7890", "+6281234567890"),
    ("0812 3456 7890", "+6281234567890"),
    ("6281234567890", "+6281234567890"),
    ("+62 812-3456-7890", "+6281234567890"),
    ("+62 (812) 3456 7890", "+6281234567890"),
    ("whatsapp:+6285755123456", "+6285755123456"),
    ("85755123456", "+6285755123456"),
    ("0355-791234", "+62355791234"),  # Trenggalek landline
    ("12345", None),
    ("", None),
    (None, None),
    ("0000000000", None),
])
def test_to_e164(raw, expected):
    assert to_e164(raw) == expected


@pytest.mark.parametrize("text,expected", [
    ("hubungi sy di 0812-3456-7890 ya", "+6281234567890"),
    ("no hp 0857 5512 3456, trims", "+6285755123456"),
    ("wa +62 813 3000 1122 kalau perlu", "+6281330001122"),
    ("telp 6281330001122", "+6281330001122"),
    ("jalan rusak sepanjang 200 m sejak 2023", None),
    ("NIK 3503114507850012 KTP blm jadi", None),  # a NIK is not a phone number
    ("rt 02 rw 05 no 12", None),
])
def test_find_phone(text, expected):
    assert find_phone(text) == expected


@pytest.mark.parametrize("nik,ok", [
    ("3503114507850012", True),   # woman: day 45
    ("3503110507850012", True),   # man: day 05
    ("3503117107850012", True),   # day 71 (woman, 31st)
    ("3503113207850012", False),  # day 32
    ("3503117207850012", False),  # day 72
    ("3503110013850012", False),  # day 00
    ("3503110513850012", False),  # month 13
    ("3503110500850012", False),  # month 00
    ("0003110507850012", False),  # no province 00
    ("3500110507850012", False),  # kabupaten 00
    ("350311050785001", False),   # 15 digits
    ("3503110507850000", False),  # serial 0000
])
def test_is_valid_nik(nik, ok):
    assert is_valid_nik(nik) is ok


@pytest.mark.parametrize("text,masked", [
    ("NIK saya 3503114507850012 mohon dicek", "3503**********12"),
    ("nik: 3503 1145 0785 0012", "3503**********12"),
    ("KTP#3503110507850099#SITI", "3503**********99"),
    ("nomor 3503119907850012 salah", None),  # invalid date part
    ("nomor rekening 1234567890123456", None),
])
def test_find_nik_masks(text, masked):
    assert find_nik(text)[0] == masked


def test_mask_niks_never_leaves_full_nik():
    out = mask_niks("NIK 3503114507850012 dan 3503110507850099")
    assert "3503114507850012" not in out and "3503110507850099" not in out
    assert "3503**********12" in out and "3503**********99" in out


@pytest.mark.parametrize("text,name", [
    ("Nama saya Siti Aminah, warga desa Ngares", "Siti Aminah"),
    ("nama: Bpk. Suroto dari dusun Krajan", "Suroto"),
    ("atas nama Joko Susilo mohon dibantu", "Joko Susilo"),
    ("saya bernama Dwi Lestari ingin melapor", "Dwi Lestari"),
    ("jalan rusak parah tolong", None),
])
def test_find_name(text, name):
    assert find_name(text) == name


def test_reporter_in_draft(norm):
    d = norm("Nama saya Siti Aminah NIK 3503114507850012 KTP blm jadi", channel="sms", sender="0812-3456-7890")
    assert d.reporter.phone == "+6281234567890"
    assert d.reporter.nik_masked == "3503**********12"
    assert d.reporter.name == "Siti Aminah"
    assert "3503114507850012" not in d.text_clean


def test_hotline_fields_give_reporter(norm):
    d = norm("warga pingsan", channel="psc119", fields={"caller_name": "Pak Sarno", "caller_phone": "085755123456"})
    assert d.reporter.name == "Pak Sarno" and d.reporter.phone == "+6285755123456"


def test_telegram_chat_id_is_not_a_phone(norm):
    d = norm("sampah numpuk", channel="telegram", sender="123456789")
    assert d.reporter.telegram_chat_id == "123456789" and d.reporter.phone is None
