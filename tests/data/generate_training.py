"""Generate the SYNTHETIC router training set (tests/data/routing_train.jsonl).

Honest note: no real 5,000-line history of Trenggalek complaints with correct OPDs exists in this
repository, so this script makes one from templates: per-OPD complaint phrases, the gazetteer's
real desa/kecamatan names, greetings and pleas, and noise as citizens type (SMS abbreviations,
Javanese words, dropped punctuation, letter typos). It is meant for training and benchmarking
the learner only; it is NOT evaluation data. The hand-written evaluation set
(tests/data/routing_eval.jsonl) is kept separate: any generated line whose normalised text equals
an eval line is dropped, and the phrases here were written independently of the eval sentences.

    python tests/data/generate_training.py [--n 5000] [--seed 7] [--out tests/data/routing_train.jsonl]
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WILAYAH = ROOT / "config" / "trenggalek" / "wilayah.csv"
EVAL = HERE / "routing_eval.jsonl"

# Per OPD: short problem statements (the subject of a complaint).
PROBLEMS: dict[str, list[str]] = {
    "PUPR": ["jalan rusak parah", "jalan berlubang besar", "aspal jalan mengelupas", "jembatan retak", "jembatan putus",
             "jembatan kayu lapuk", "gorong-gorong tersumbat", "saluran drainase mampet", "talud ambrol",
             "plengsengan jebol", "saluran irigasi rusak", "tanggul sungai bocor", "jalan cor retak",
             "jalan belum diaspal", "jalan kabupaten hancur", "selokan meluap ke jalan", "proyek jalan mangkrak",
             "tambal sulam jalan asal-asalan", "jalan ambles", "bahu jalan longsor", "dalan bodol",
             "kreteg ambrol", "trotoar rusak", "rabat beton hancur", "jalan makadam licin"],
    "PKPP": ["rumah tidak layak huni", "bantuan bedah rumah belum turun", "program RTLH tidak tepat sasaran",
             "rehab rumah warga miskin", "rumah reyot hampir roboh minta bantuan rumah", "perumahan developer belum serah PSU",
             "sertifikat tanah PTSL belum jadi", "sengketa batas tanah pekarangan", "lahan makam umum penuh",
             "makam desa tidak terawat", "kawasan permukiman kumuh", "warga belum punya jamban sehat",
             "bantuan stimulan perumahan swadaya", "rumah subsidi bermasalah", "pengembang perumahan ingkar janji",
             "omah reyot njaluk bantuan rehab"],
    "DLH": ["sampah menumpuk tidak diangkut", "TPS penuh dan bau", "truk sampah tidak datang", "limbah pabrik dibuang ke sungai",
            "sungai tercemar limbah", "bau busuk kandang ayam", "asap pembakaran sampah", "tambang galian C merusak lingkungan",
            "penebangan pohon liar", "pencemaran udara debu pabrik", "ikan mati di sungai tercemar", "uwuh numpuk mambu",
            "buang sampah sembarangan", "limbah ternak mencemari", "pohon perindang ditebang", "taman kota kotor",
            "penambangan pasir liar", "kebisingan mesin pabrik", "bank sampah butuh pendampingan", "TPA overload"],
    "DINSOS": ["tidak dapat bansos", "PKH dicoret tanpa alasan", "BPNT belum cair", "data DTKS tidak valid",
               "bantuan sosial salah sasaran", "lansia terlantar butuh bantuan", "ODGJ berkeliaran", "orang gangguan jiwa dipasung",
               "anak terlantar", "pengemis dan gelandangan", "penyandang disabilitas butuh kursi roda", "KDRT tetangga",
               "kekerasan terhadap anak", "pernikahan anak di bawah umur", "KIS PBI dinonaktifkan", "bantuan beras tidak merata",
               "keluarga miskin belum terdata", "BLT belum diterima", "janda miskin tidak dapat bantuan", "wong edan ngamuk"],
    "DUKCAPIL": ["KTP belum jadi", "blangko KTP habis", "akta kelahiran salah nama", "kartu keluarga belum dicetak",
                 "urus KK baru", "akta kematian", "NIK tidak terdaftar", "NIK ganda", "surat pindah domisili",
                 "KIA anak", "rekam KTP elektronik", "cetak ulang KTP hilang", "data kependudukan tidak sinkron",
                 "aktivasi IKD", "perbaikan biodata KK", "akta perkawinan", "pelayanan dukcapil lama", "calo KTP",
                 "status kawin di KK salah", "KTP rusak chip"],
    "DINKES": ["puskesmas tutup lebih awal", "obat di puskesmas kosong", "bidan desa jarang ada", "posyandu tidak aktif",
               "balita stunting", "kasus DBD minta fogging", "banyak nyamuk demam berdarah", "warga keracunan makanan",
               "ibu mau melahirkan butuh ambulans", "orang pingsan di jalan", "korban kecelakaan butuh ambulans",
               "pasien sesak napas", "serangan jantung minta ambulans", "anak kejang demam tinggi", "petugas puskesmas tidak ramah",
               "imunisasi bayi", "praktik dokter ilegal", "alat kontrasepsi KB habis", "diare massal", "warga diduga TBC",
               "tersengat listrik butuh pertolongan", "patah tulang jatuh dari pohon", "bojo arep mbabar"],
    "RSUD": ["antrian poli RSUD lama", "perawat RSUD tidak ramah", "IGD rumah sakit penuh", "kamar rawat inap RSUD penuh",
             "tagihan rumah sakit tidak sesuai", "jadwal operasi diundur", "pasien BPJS beli obat sendiri di rumah sakit",
             "dokter spesialis RSUD jarang ada", "toilet bangsal RSUD kotor", "parkir rumah sakit mahal",
             "pelayanan kasir RSUD lambat", "ICU RSUD penuh", "hasil lab RSUD lama", "farmasi RSUD antre lama",
             "RSUD dr Soedomo menolak pasien", "makanan pasien RSUD"],
    "SATPOLPP": ["PKL berjualan di trotoar", "warung remang-remang jual miras", "karaoke buka sampai pagi",
                 "rumah kebakaran butuh damkar", "sarang tawon di rumah", "ular masuk rumah", "balap liar tiap malam",
                 "bangunan liar di atas saluran", "reklame liar dipaku di pohon", "sabung ayam", "anak punk mabuk",
                 "omah kobong", "kebakaran gudang", "knalpot brong", "judi di pos ronda", "pasangan mesum di kos",
                 "biawak masuk kandang", "kebakaran lahan", "korsleting listrik api", "sound horeg mengganggu"],
    "BPBD": ["banjir merendam rumah", "tanah longsor menimbun rumah", "longsor menutup jalan", "pohon tumbang menutup jalan",
             "angin puting beliung merusak rumah", "orang tenggelam di sungai", "warga hanyut terseret arus",
             "sungai meluap", "banjir bandang", "tanah gerak rumah retak", "gempa dinding retak", "abrasi pantai",
             "krisis air bersih minta dropping air", "kekeringan", "warga mengungsi butuh logistik", "tebing rawan longsor",
             "gelombang tinggi", "kebanjiran air setinggi lutut", "wit gede rebah", "jalur evakuasi"],
    "DINDIK": ["pungutan sekolah mahal", "ijazah ditahan sekolah", "PPDB zonasi tidak adil", "guru sering tidak masuk",
               "atap kelas SD bocor", "gedung sekolah rusak", "dana PIP dipotong", "seragam sekolah wajib beli",
               "buku LKS mahal", "anak dibully di sekolah", "guru honorer belum digaji", "study tour wajib bayar",
               "dana BOS tidak transparan", "beasiswa siswa belum cair", "PAUD tidak layak", "kekurangan guru SD",
               "toilet sekolah rusak", "lapangan GOR tidak terawat", "kesenian jaranan butuh pembinaan",
               "tunjangan sertifikasi guru telat"],
    "DISKOMINFO": ["website pemkab tidak bisa dibuka", "tidak ada sinyal hp", "desa blank spot", "wifi gratis mati",
                   "akun medsos palsu atas nama pejabat", "hoaks beredar di grup WA", "kabel fiber optik menjuntai",
                   "aplikasi pemkab error", "tower BTS belum aktif", "internet balai desa lemot", "permohonan informasi publik PPID",
                   "CCTV kota mati", "situs desa diretas", "penipuan online", "judi online", "data pribadi bocor",
                   "tiang provider miring", "server aplikasi lambat", "siaran radio pemda tidak terdengar"],
    "DISNAKER": ["PHK sepihak tanpa pesangon", "upah di bawah UMK", "gaji belum dibayar", "THR tidak dibayar",
                 "tidak didaftarkan BPJS Ketenagakerjaan", "kartu kuning AK1", "calo TKI ilegal", "lowongan kerja",
                 "pelatihan kerja BLK", "pekerja migran hilang kontak", "lembur tidak dibayar", "kontrak kerja diputus",
                 "transmigrasi", "buruh pabrik tidak dapat cuti", "magang ke luar negeri dipungut biaya",
                 "ijazah karyawan ditahan perusahaan", "bursa kerja", "pesangon belum dibayar"],
    "DISPERINDAG": ["gas elpiji 3 kg langka", "harga minyak goreng naik", "timbangan pedagang curang", "los pasar bocor",
                    "makanan kadaluarsa dijual", "retribusi pasar naik", "harga beras mahal", "harga cabai mahal",
                    "pangkalan gas jual di atas HET", "pasar rakyat mangkrak", "pelatihan UMKM", "SPBU kehabisan BBM",
                    "tera ulang timbangan", "daging ayam tiren di pasar", "rentenir bank plecit", "toko modern dekat pasar",
                    "koperasi tidak kembalikan simpanan", "harga gula naik", "penimbunan LPG", "kios pasar dijual"],
    "DISHUB": ["lampu PJU mati", "lampu jalan padam", "traffic light mati", "parkir liar", "juru parkir tarif mahal",
               "truk overload lewat jalan desa", "rambu lalu lintas hilang", "angkutan desa tidak beroperasi",
               "marka jalan pudar", "terminal kotor", "uji KIR dipersulit", "minta cermin cembung di tikungan",
               "polisi tidur terlalu tinggi", "halte rusak", "kemacetan depan sekolah", "travel gelap",
               "zebra cross pudar", "lampu dalan mati peteng", "minta pasang PJU"],
    "PDAM": ["air PDAM mati", "air PDAM keruh", "pipa PDAM bocor", "tagihan air naik", "meteran air rusak",
             "air PDAM kecil", "sambungan baru PDAM belum dipasang", "air ledeng bau kaporit", "air tidak mengalir",
             "pipa pecah kena galian", "tarif air naik", "air PDAM ada cacing", "denda bayar air", "rekening air diblokir",
             "banyu PDAM buthek", "distribusi air bergilir", "tekanan air PDAM lemah"],
    "BPKPD": ["SPPT PBB belum dibagikan", "PBB naik tidak wajar", "PBB sudah lunas tercatat tunggakan",
              "bayar pajak bumi di mana", "BPHTB lama", "pajak restoran", "pemutihan denda pajak", "SPPT ganda",
              "cek tagihan PBB online", "pajak reklame mahal", "nama wajib pajak salah", "keringanan PBB lansia",
              "dana hibah belum ditransfer kas daerah", "pajak air tanah", "luas tanah di SPPT salah",
              "transparansi APBD", "pajak hotel homestay", "mutasi objek pajak"],
    "DPMPTSP": ["izin usaha OSS error", "NIB tidak terbit", "PBG belum selesai", "izin mendirikan bangunan",
                "pabrik beroperasi tanpa izin", "izin operasional klinik ditolak", "pungutan di loket perizinan",
                "sertifikat laik fungsi", "izin reklame", "investor tanpa izin lengkap", "izin tower provider",
                "pelayanan MPP tutup awal", "izin usaha mikro", "izin keramaian", "izin praktik bidan",
                "izin lokasi usaha", "aplikasi perizinan online error", "perpanjangan izin usaha", "KKPR ditolak"],
    "BKPSDM": ["kenaikan pangkat PNS tertunda", "ASN bolos tetap terima TPP", "honorer tidak diangkat PPPK",
               "SK pensiun belum keluar", "seleksi PPPK tidak transparan", "pegawai main HP saat jam kerja",
               "ASN tidak netral kampanye", "TPP pegawai belum cair", "mutasi pegawai tidak sesuai", "formasi CPNS",
               "disiplin PNS", "pegawai pulang sebelum jam kerja", "data kepegawaian salah", "karpeg hilang",
               "absen pegawai dititipkan", "honorer diberhentikan sepihak", "gaji pensiun janda PNS", "diklat pegawai"],
    "DISPERTA": ["pupuk subsidi langka", "kartu tani tidak bisa dipakai", "hama wereng menyerang padi", "hama tikus sawah",
                 "harga gabah anjlok", "bantuan traktor dikuasai ketua poktan", "PPL tidak pernah datang",
                 "sapi terkena PMK", "ternak kambing mati mendadak", "bibit bantuan tidak tumbuh", "gagal panen",
                 "kios pupuk jual di atas HET", "inseminasi sapi", "lumpy skin sapi", "pompa air sawah rusak",
                 "ayam mati mendadak flu burung", "bantuan jaring nelayan", "harga porang jatuh", "gapoktan tidak transparan",
                 "rabuk urea ilang"],
    "INSPEKTORAT": ["dana desa diselewengkan", "pungli pelayanan surat", "proyek mark up anggaran", "pungutan liar oknum petugas",
                    "dugaan korupsi pengadaan", "pejabat minta setoran kontraktor", "SPJ fiktif", "gratifikasi seleksi perangkat desa",
                    "mobil dinas dipakai pribadi", "penyalahgunaan wewenang", "penggelapan dana BUMDes", "jual beli jabatan",
                    "kegiatan fiktif", "bantuan dipotong oknum", "audit dana desa", "suap seleksi", "nepotisme proyek",
                    "pemerasan pedagang oleh oknum", "perjalanan dinas dimanipulasi", "pemotongan dana hibah oleh oknum"],
    "SETDA": ["mohon perhatian pak bupati", "kebijakan bupati perlu dikaji", "lelang pengadaan di LPSE gagal",
              "ingin audiensi dengan bupati", "surat ke bupati belum dijawab", "bantuan hibah masjid bagian kesra",
              "proposal bantuan tempat ibadah", "perbup belum disosialisasikan", "acara hari jadi kabupaten",
              "tender proyek diatur", "humas pemkab tidak merespon", "aspirasi untuk wakil bupati", "rumah dinas bupati",
              "kebijakan pemkab soal toko modern", "kerja sama daerah", "pelantikan pejabat oleh bupati",
              "bantuan hukum dari bagian hukum pemkab", "usulan program untuk bupati"],
    "KECAMATAN": ["kepala desa jarang ngantor", "perangkat desa tidak di tempat", "pelayanan surat pengantar lambat",
                  "musdes tidak melibatkan warga", "pemilihan kepala dusun tidak transparan", "kantor kecamatan tutup awal",
                  "konflik batas desa", "surat keterangan dipersulit", "ketua RT tidak peduli siskamling",
                  "balai desa dipakai pribadi", "BPD tidak menampung aspirasi", "sekdes minta uang tanda tangan",
                  "camat tegur kades", "bumdes mati suri", "tanah bengkok disewakan", "kasun tidak mengurus warga",
                  "pilkades curang", "APBDes tidak dipasang", "pelayanan kecamatan lambat"],
}

GREETINGS = ["", "", "", "min ", "selamat pagi, ", "assalamualaikum, ", "permisi pak, ", "lapor, ", "mohon maaf, ",
             "pak/bu admin ", "sugeng enjing, ", "halo min, "]
FRAMES = [
    "{g}{p} di {place}{plea}",
    "{g}{p}{plea}",
    "{g}mau melaporkan {p} di {place}{time}",
    "{g}{place}: {p}{time}{plea}",
    "{g}kami warga {place} mengeluhkan {p}{plea}",
    "{g}{p} {time} belum ada tindakan{plea}",
    "{g}tolong {p} di {place} segera ditangani",
    "{g}ada {p} {time} di {place}",
    "{g}{p} nang {place}{plea}",
    "{g}keluhan: {p}. lokasi {place}{plea}",
]
PLEAS = ["", "", ", mohon ditindaklanjuti", ", mohon segera", " tolong dibantu", ", mohon perhatian", " mhn solusi",
         ", terima kasih", " nyuwun tulung", ", sudah lapor desa tidak ada respon"]
TIMES = ["", "", " sudah seminggu", " sejak kemarin", " sudah 3 hari", " sudah berbulan-bulan", " sejak tahun lalu",
         " tiap hari", " wis suwe"]
ABBREV = {"yang": "yg", "tidak": "tdk", "sudah": "sdh", "mohon": "mhn", "jalan": "jln", "dari": "dr", "karena": "krn",
          "bapak": "bpk", "belum": "blm", "untuk": "utk", "dengan": "dgn", "rumah": "rmh", "segera": "sgr"}
JAVA = {"jalan": "dalan", "air": "banyu", "rusak": "bodol", "tidak": "ora", "sudah": "wis", "rumah": "omah",
        "banyak": "akeh", "belum": "durung", "sampah": "uwuh", "sakit": "lara", "mati": "mati", "sungai": "kali"}


def _places() -> tuple[list[str], list[str]]:
    kec, desa = [], []
    with WILAYAH.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            n = row["kode"].count(".")
            if n == 2:
                kec.append(row["nama"])
            elif n == 3:
                desa.append(row["nama"])
    return kec, desa


def _place(rng: random.Random, kec: list[str], desa: list[str]) -> str:
    k, d = rng.choice(kec), rng.choice(desa)
    return rng.choice([f"desa {d}", f"ds. {d}", f"ds {d} kec {k}", f"kec. {k}", f"{d}", f"dusun Krajan desa {d}",
                       f"desa {d} kecamatan {k}", f"RT 02 RW 03 {d}", f"kecamatan {k}", f"{d} {k}"])


def _noise(rng: random.Random, text: str) -> str:
    words = text.split()
    out = []
    for w in words:
        lw = w.lower()
        r = rng.random()
        if lw in ABBREV and r < 0.35:
            w = ABBREV[lw]
        elif lw in JAVA and r < 0.15:
            w = JAVA[lw]
        elif len(w) > 5 and r < 0.04:  # one letter typo
            i = rng.randrange(1, len(w) - 1)
            w = w[:i] + w[i + 1:] if rng.random() < 0.5 else w[:i] + w[i] + w[i:]
        out.append(w)
    text = " ".join(out)
    r = rng.random()
    if r < 0.3:
        text = text.lower()
    elif r < 0.4:
        text = re.sub(r"[,.:]", "", text)
    elif r < 0.45:
        text = text.upper()
    return text


def _norm(t: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", t.lower()).split())


def generate(n: int = 5000, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    kec, desa = _places()
    eval_norm = set()
    if EVAL.exists():
        for line in EVAL.read_text(encoding="utf-8").splitlines():
            if line.strip():
                eval_norm.add(_norm(json.loads(line)["text"]))
    opds = sorted(PROBLEMS)
    out, seen = [], set()
    tries = 0
    while len(out) < n and tries < n * 20:
        tries += 1
        opd = opds[len(out) % len(opds)]
        p = rng.choice(PROBLEMS[opd])
        if rng.random() < 0.3:  # two problems of the same OPD in one message
            p = f"{p} dan {rng.choice(PROBLEMS[opd])}"
        text = rng.choice(FRAMES).format(g=rng.choice(GREETINGS), p=p, place=_place(rng, kec, desa),
                                         plea=rng.choice(PLEAS), time=rng.choice(TIMES))
        text = _noise(rng, text)
        key = _norm(text)
        if key in seen or key in eval_norm:
            continue
        seen.add(key)
        channel = rng.choice(["telegram", "whatsapp", "sms", "lapor", "web"])
        out.append({"text": text, "opd": opd, "channel": channel})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=HERE / "routing_train.jsonl")
    args = ap.parse_args()
    rows = generate(args.n, args.seed)
    with args.out.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} synthetic lines to {args.out}")


if __name__ == "__main__":
    main()
