"""Category, urgency and OPD routing on Indonesian as citizens write it (abbreviations,
Javanese, no punctuation), hotline fields, Dukcapil SMS keywords, triage, the learned model."""
import pytest

from normalizer import build_regency, normalize, train_router
from normalizer.types import InboundMessage, Urgency

from datetime import datetime, timezone

NOW = datetime(2025, 3, 4, 5, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("text,urgency", [
    ("kecelakaan motor di jalan raya Pogalan korban luka parah", Urgency.DARURAT),
    ("omah kobong nang ds Ngantru tlg damkar", Urgency.DARURAT),
    ("banjir masuk rumah setinggi lutut", Urgency.DARURAT),
    ("tanah longsor menimbun rumah warga", Urgency.DARURAT),
    ("ada bocah kelelep nang kali", Urgency.DARURAT),
    ("istri sy mau melahirkan ketuban pecah", Urgency.DARURAT),
    ("bapak saya serangan jantung tidak sadar", Urgency.DARURAT),
    ("wong semaput nang pinggir dalan", Urgency.DARURAT),
    ("warga keracunan makanan habis kondangan", Urgency.DARURAT),
    ("rawan longsor di tebing belakang rumah", Urgency.TINGGI),        # prevention, not now
    ("mohon sosialisasi pencegahan banjir", Urgency.TINGGI),
    ("pelatihan pemadam kebakaran untuk warga", Urgency.TINGGI),
    ("pohon tumbang menutup jalan", Urgency.TINGGI),
    ("jembatan hampir roboh mohon segera", Urgency.TINGGI),
    ("air pdam mati sdh 3 hari", Urgency.TINGGI),
    ("jln rusak mhn diperbaiki", Urgency.NORMAL),
    ("ktp sy blm jadi", Urgency.NORMAL),
    ("harga cabai mahal", Urgency.NORMAL),
    ("lampu PJU mati di dusun", Urgency.NORMAL),
])
def test_urgency(norm, text, urgency):
    assert norm(text).urgency is urgency


@pytest.mark.parametrize("text,opd", [
    ("Jln rusak parah dkt balai desa mhn diperbaiki", "PUPR"),
    ("dalan bodol kabeh aspale ilang", "PUPR"),
    ("gorong2 mampet tiap hujan meluber", "PUPR"),
    ("jembatan ambrol separo", "PUPR"),
    ("rumah tidak layak huni mohon bedah rumah", "PKPP"),
    ("uwuh numpuk nang TPS mambu", "DLH"),
    ("limbah pabrik tahu dibuang ke sungai", "DLH"),
    ("sy tdk dapat bansos PKH pdhl miskin", "DINSOS"),
    ("ada ODGJ ngamuk bawa parang", "DINSOS"),
    ("KTP sy blm jadi sdh 3 bln", "DUKCAPIL"),
    ("akta kelahiran anak salah nama", "DUKCAPIL"),
    ("puskesmas tutup jam 11 pasien antri", "DINKES"),
    ("banyak kasus DBD mohon fogging", "DINKES"),
    ("antrian poli RSUD dr Soedomo lama sekali", "RSUD"),
    ("PKL jualan di trotoar alun2", "SATPOLPP"),
    ("sarang tawon di atap rumah", "SATPOLPP"),
    ("rumah kebakaran api besar", "SATPOLPP"),
    ("banjir bandang kali meluap", "BPBD"),
    ("tanah longsor nutup dalan", "BPBD"),
    ("pungutan sekolah SDN mahal ijazah ditahan", "DINDIK"),
    ("website pemkab error tdk bisa dibuka", "DISKOMINFO"),
    ("sinyal hp tidak ada blank spot", "DISKOMINFO"),
    ("di PHK tanpa pesangon", "DISNAKER"),
    ("gas elpiji 3 kg langka harga naik", "DISPERINDAG"),
    ("lampu PJU mati jalan gelap", "PKPP"),
    ("parkir liar bikin macet", "PKPP"),
    ("banyu PDAM buthek", "PDAM"),
    ("air pdam mati sdh 3 hari", "PDAM"),
    ("SPPT PBB belum dibagikan", "BPKPD"),
    ("izin usaha OSS error NIB tidak terbit", "DPMPTSP"),
    ("honorer tidak diangkat PPPK", "BKPSDM"),
    ("pupuk subsidi langka kartu tani", "DISPERTA"),
    ("sapi kena PMK", "DISPERTA"),
    ("dana desa diselewengkan korupsi kades", "INSPEKTORAT"),
    ("pungli di kantor", "INSPEKTORAT"),
    ("mohon audiensi dengan bupati", "SETDA"),
    ("kepala desa jarang ngantor perangkat desa tidak ada", "KECAMATAN"),
])
def test_rules_route(norm, text, opd):
    d = norm(text)
    assert d.routing.opd == opd, d.routing.rule
    assert not d.routing.needs_triage
    assert opd in d.routing.rule and d.routing.rule.startswith("rule:")
    assert 0.0 < d.routing.confidence <= 1.0
    assert d.category is not None


@pytest.mark.parametrize("text,not_opd", [
    ("lampu jalan mati di dusun kami gelap", "INSPEKTORAT"),   # 'gelap' is not 'penggelapan'
    ("angkutan desa tidak beroperasi lagi", "RSUD"),            # 'beroperasi' is not surgery
    ("desa Sawahan jalan rusak", "DISPERTA"),                   # desa name is not rice fields
    ("jalan rusak di desa Manggis", "DISPERTA"),
])
def test_must_not_route_to(norm, text, not_opd):
    assert norm(text).routing.opd != not_opd


@pytest.mark.parametrize("channel,text,opd", [
    ("psc119", "pasien di rumah butuh bantuan", "DINKES"),
    ("bpbd", "warga butuh bantuan segera", "BPBD"),
    ("sms", "mohon info", "DISKOMINFO"),  # vague: triage (DISKOMINFO), not Dukcapil unread
    ("sms", "jalan rusak parah berlubang mohon diperbaiki", "PUPR"),   # text says otherwise
    ("sms", "air pdam mati sdh 3 hari", "PDAM"),
])
def test_channel_defaults(norm, channel, text, opd):
    assert norm(text, channel=channel).routing.opd == opd


@pytest.mark.parametrize("keyword,sub", [
    ("KTP", "KTP (KARTU TANDA PENDUDUK)"),
    ("KK", "KARTU KELUARGA"),
    ("AKTA", "AKTA KELAHIRAN"),
])
def test_sms_keyword_routes_to_dukcapil(norm, keyword, sub):
    d = norm(f"{keyword}#3503110507850099#SITI", channel="sms",
             fields={"keyword": keyword, "nik": "3503110507850099"})
    assert d.routing.opd == "DUKCAPIL" and d.routing.confidence >= 0.9
    assert d.category == "KEPENDUDUKAN" and d.subcategory == sub
    assert d.fields["nik"] == "3503**********99"


@pytest.mark.parametrize("itype,opd,urgency", [
    ("banjir", "BPBD", Urgency.DARURAT),
    ("tanah_longsor", "BPBD", Urgency.DARURAT),
    ("kebakaran", "SATPOLPP", Urgency.DARURAT),
    ("kecelakaan", "DINKES", Urgency.DARURAT),
    ("pohon tumbang", "BPBD", Urgency.TINGGI),
])
def test_hotline_incident_type(norm, itype, opd, urgency):
    d = norm("laporan dari operator", channel="bpbd", fields={"incident_type": itype})
    assert d.routing.opd == opd and d.urgency is urgency


@pytest.mark.parametrize("colour,urgency", [("merah", Urgency.DARURAT), ("hitam", Urgency.DARURAT),
                                            ("kuning", Urgency.TINGGI), ("hijau", Urgency.TINGGI)])
def test_triage_colour(norm, colour, urgency):
    # psc119 is at least tinggi; hijau does not lower it
    assert norm("pasien demam", channel="psc119", fields={"triage_colour": colour}).urgency is urgency


@pytest.mark.parametrize("text", ["halo", "selamat pagi min", "?", "tes tes"])
def test_no_evidence_goes_to_triage(norm, text):
    d = norm(text, channel="telegram")
    assert d.routing.opd == "DISKOMINFO" and d.routing.needs_triage


def test_empty_message(norm):
    d = norm("   ", channel="sms")
    assert d.is_empty and d.routing.needs_triage


def test_category_keys_normalise_nbsp(norm):
    d = norm("sampah menumpuk")
    assert d.category == "LINGKUNGAN HIDUP DAN KEHUTANAN" and "\xa0" not in d.category


def test_learned_model_changes_routing(parts):
    text = "kucing tetangga hilang di kebun"  # no rule knows this
    examples = [("kucing peliharaan hilang di kebun belakang", "SATPOLPP")] * 15 + \
               [("tikus di kebun sawah", "DISPERTA")] * 15
    model = train_router(examples)
    import json
    json.dumps(model)  # JSON-serialisable
    plain = normalize(InboundMessage(channel="telegram", text=text), build_regency(*parts), NOW)
    learned = normalize(InboundMessage(channel="telegram", text=text), build_regency(*parts, learned=model), NOW)
    assert plain.routing.needs_triage
    assert learned.routing.opd == "SATPOLPP" and "model:" in learned.routing.rule


def test_bad_rule_fails_at_build(parts):
    wil, cats, routing, opds, triage = parts
    bad = dict(routing, rules=[{"id": "x", "opd": "NOPE", "keywords": ["a"]}])
    with pytest.raises(ValueError, match="NOPE"):
        build_regency(wil, cats, bad, opds, triage)
