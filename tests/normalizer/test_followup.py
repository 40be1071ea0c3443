"""A citizen's quick second message: a follow-up of their report, or a report of its own
(normalizer.followup, issue #13 item 3). Texts spelled as citizens send them (SMS, WhatsApp)."""
from __future__ import annotations

import pytest

from normalizer.followup import Earlier, continues_sentence, decide, follow_up_marker, is_confident

REPORT = "Lapor, jalan di Desa Ngadirenggo Kec. Pogalan berlubang besar depan SDN 2"
NO_PLACE = "Jalan berlubang besar, sudah ada motor jatuh"

# (label, earlier report, second message, seconds after, join?, reason starts with)
ROWS = [
    # follow-ups that join
    ("tambahan with -nya", REPORT, "tambahan: lubangnya sdh bikin 2 motor jatuh pak", 60, True, "marker:tambahan"),
    ("tmbhn SMS spelling", REPORT, "tmbhn pak lubang'y sdh bikin 2 motor jatuh", 45, True, "marker:tambahan"),
    ("oh iya lokasinya", NO_PLACE, "oh iya lokasinya dekat masjid al ikhlas", 90, True, "marker:oh iya"),
    ("lokasi'y dket", NO_PLACE, "lokasi'y dket masjid al ikhlas pak", 90, True, "marker:lokasi"),
    ("alamatnya", NO_PLACE, "alamatnya jl. raya Pogalan km 3 sebelah toko besi", 120, True, "marker:lokasi"),
    ("mohon segera ditindak", REPORT, "mohon segera ditindak", 30, True, "marker:mohon segera"),
    ("tolong segera pak", REPORT, "tlg segera diperbaiki pak, bahaya kalau malam", 70, True, "marker:mohon segera"),
    ("fotonya nyusul", REPORT, "fotonya nyusul", 20, True, "marker:menyusul"),
    ("foto'y", REPORT, "foto'y blm bisa kekirim pak sinyal jelek", 40, True, "marker:foto"),
    ("maaf lupa atas nama", REPORT, "maaf lupa, atas nama Siti RT 03 RW 01", 100, True, "marker:identitas"),
    ("identity only", REPORT, "sy Siti rt 3 rw 1 dusun krajan", 80, True, "marker:identitas"),
    ("itu reference", REPORT, "itu sudah dari bulan lalu rusaknya", 60, True, "marker:itu"),
    ("oiya one word", REPORT, "oiya pak, sdh ada yg jatuh td pagi", 50, True, "marker:oh iya"),
    ("pak/bu plea", REPORT, "ditunggu ya pak", 50, True, "marker:pak/bu"),
    ("thanks", REPORT, "terima kasih pak", 40, True, "marker:terima kasih"),
    ("no subject", REPORT, "sudah ada korban luka 2 orang", 60, True, "no_subject"),
    ("fills a missing place", NO_PLACE, "di desa Ngadirenggo kec Pogalan", 60, True, "no_subject"),
    ("same place named again", REPORT, "oh iya itu di Ngadirenggo Pogalan pak", 60, True, "marker:oh iya"),
    ("same matter, no place", REPORT, "jalannya juga amblas sebagian", 60, True, "marker:"),
    ("drainage of the same road", REPORT, "dan air menggenang kalau hujan", 60, True, "marker:sambung"),
    ("split mid-sentence",
     "Pak sy mau lapor jalan di Desa Ngadirenggo Kec Pogalan depan SDN 2 berlubang besar sekali dan sudah "
     "berbulan bulan tidak diperbaiki padahal itu jalan utama anak anak ke", "sekolah, mohon segera", 30, True,
     "continues_sentence"),
    ("split at 160 characters", "x" * 0 + ("Jalan di Desa Ngadirenggo Kecamatan Pogalan rusak parah, aspalnya "
     "mengelupas dan berlubang dimana mana sepanjang 500 meter dari balai desa sampai perempatan pas"), "ar, tolong",
     25, True, "continues_sentence"),
    ("(1/2) (2/2)", "(1/2) Jalan di desa Ngadirenggo rusak parah", "(2/2) Sudah 3 bulan", 20, True, "continues_sentence"),
    ("correction of the desa", REPORT, "ralat pak, desanya Wonocoyo bukan Ngadirenggo", 60, True, ""),
    # second reports that stay separate
    ("other matter with its own place", REPORT, "Lampu jalan mati di Pogalan", 60, False, "other_matter"),
    ("satu lagi", REPORT, "satu lagi pak, lampu PJU di desa Karangan mati sudah seminggu", 60, False,
     "other_matter_opener"),
    ("ada lagi, same kind", REPORT, "ada lagi pak jalan rusak di desa Sumberingin", 60, False, "other_matter_opener"),
    ("other desa, same kind", REPORT, "Jalan berlubang juga di desa Karangan kec Karangan", 60, False, "other_place"),
    ("other matter, no place", REPORT, "Sampah menumpuk di pasar", 60, False, "other_matter"),
    ("a KTP question", REPORT, "Saya mau tanya syarat bikin KTP", 60, False, "other_matter"),
    ("new report opener", NO_PLACE, "Laporan nomor 2 jalan rusak", 60, False, "opens_report"),
    ("its own report, same place", "Jalan rusak nomor 0 di Desa Ngantru kecamatan Trenggalek",
     "Jalan rusak nomor 1 di Desa Ngantru kecamatan Trenggalek", 5, False, "own_report"),
    ("keyword SMS", REPORT, "KTP#3503114506900002#SITI#ktp hilang", 60, False, "structured"),
    ("too late", REPORT, "tambahan: lubangnya sdh bikin 2 motor jatuh pak", 3600, False, "window"),
    ("sent before the report", REPORT, "mohon segera ditindak", -120, False, "window"),
]


@pytest.mark.parametrize("label,earlier,text,gap,join,reason", ROWS, ids=[r[0] for r in ROWS])
def test_follow_up_or_new_report(norm, label, earlier, text, gap, join, reason):
    first = norm(earlier, channel="sms", sender="+6281234567890")
    fields = {"keyword": "KTP"} if text.startswith("KTP#") else {}
    second = norm(text, channel="sms", sender="+6281234567890", fields=fields)
    before = Earlier(text=earlier, category=first.category if is_confident(first.routing.confidence,
                                                                            first.routing.needs_triage) else None,
                     kecamatan_code=first.place.kecamatan_code, desa_code=first.place.desa_code)
    v = decide(before, second, gap, window_s=300)
    assert (v.join, v.reason.startswith(reason)) == (join, True), f"[{label}] {v}"


def test_whatsapp_and_telegram_decide_alike(norm):
    for channel in ("whatsapp", "telegram"):
        first = norm(NO_PLACE, channel=channel, sender="+6281234567890")
        before = Earlier(NO_PLACE, first.category, first.place.kecamatan_code, first.place.desa_code)
        assert decide(before, norm("oh iya lokasinya dekat masjid al ikhlas", channel=channel), 60).join
        assert not decide(before, norm("Lampu jalan mati di Pogalan", channel=channel), 60).join


@pytest.mark.parametrize("text,marker", [
    ("Tmbhn: sdh 2 motor jatuh", "tambahan"), ("Pak, tambahan", "tambahan"), ("O iya pak", "oh iya"),
    ("a.n. Sumini", "identitas"), ("mhn dibantu", "mohon segera"), ("videonya nyusul ya", "menyusul"),
    ("Jalan rusak di desa Karangan", None), ("Tanya syarat KTP", None), ("Hanya itu", None),
])
def test_markers(text, marker):
    assert follow_up_marker(text) == marker


@pytest.mark.parametrize("prev,new,cut", [
    ("jalan di depan", "rumah pak RT rusak", True),
    ("Jalan rusak.", "dan berlubang", False),
    ("Jalan rusak terima kasih", "dan berlubang", False),
    ("jalan rusak di desa Karangan", "Lampu mati", False),
])
def test_continues_sentence(prev, new, cut):
    assert continues_sentence(prev, new) == cut
