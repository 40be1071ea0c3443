"""Writes tests/data/routing_dev_real_{train,test}.jsonl (and the union routing_dev_real.jsonl):
real-shaped complaints for the 2026 offices of Kabupaten Trenggalek (issue #12).

Each OPD has many hand-written core complaints (what a citizen actually asks for, in their own
words); a message wraps one core complaint in the things real messages carry: a greeting or a
polite letter, who writes ("warga RT 03"), a place or none, a follow-up of an earlier report, a
second matter, a closing, SMS spelling (dpn, rmh, sdh, blm, mhn, tlg ...), missing spaces after
punctuation, "!!!!" and "pohon2". No personal data: no names, phone numbers or NIKs.

The split is by core complaint, not by message: a core complaint is in train or in test, never
both, so the test split measures wording the learner has not seen. Run once; the files are
committed and fixed (seeded):  .venv/bin/python tests/data/make_routing_dev_real.py
"""
from __future__ import annotations

import csv
import hashlib
import json
import random
import re
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

# share of the real stream (issue #12); messages per OPD = share * N
SHARES = {"PUPR": 22, "DLH": 18, "PKPP": 16, "DINSOS": 16, "DUKCAPIL": 6, "DINDIK": 5, "DINKES": 4.5,
          "PDAM": 4, "SATPOLPP": 4, "DISNAKER": 2, "BPKPD": 0.6, "BKPSDM": 0.6, "DISPERINDAG": 0.8,
          "DPMPTSP": 0.6, "DISKOMINFO": 0.6, "BPBD": 0.5, "DISPERTA": 0.4, "RSUD": 0.4, "INSPEKTORAT": 0.3,
          "KECAMATAN": 0.4, "SETDA": 0.2}
N = 1000

CORE: dict[str, list[str]] = {
    "PUPR": [
        "jalan {jl} rusak parah banyak lubang, kalau hujan tergenang air dan sering ada pengendara motor jatuh",
        "aspal di ruas jalan {jl} sudah mengelupas semua tinggal batu, mohon segera diaspal ulang",
        "jalan berlubang di tikungan {jl} dalamnya sampai sejengkal, malam hari tidak kelihatan",
        "mohon perbaikan jalan {jl} yang ambles di sisi kanan, takut longsor ke sawah",
        "saluran di tepi jalan {jl} tersumbat lumpur jadi air hujan meluber ke badan jalan",
        "paving di gang kampung kami sudah pada lepas dan ambles, anak-anak sering jatuh",
        "drainase di perumahan kami tidak berfungsi, tiap hujan deras air masuk rumah warga",
        "gorong-gorong di bawah jalan {jl} ambrol dan lubangnya makin besar",
        "saluran kampung di RT kami dangkal penuh sedimen, mohon dikeruk sebelum musim hujan",
        "sungai kecil belakang kampung sedimennya tinggi sekali, kalau hujan langsung meluap ke pemukiman",
        "genangan air di jalan {jl} tidak surut berhari-hari karena tidak ada saluran pembuangan",
        "plengsengan saluran di pinggir jalan {jl} jebol sepanjang kira-kira 10 meter",
        "jalan kampung masih makadam belum pernah dicor, kalau hujan becek sekali",
        "tambal sulam jalan {jl} baru sebulan sudah rusak lagi, kualitasnya jelek",
        "proyek saluran di jalan {jl} ditinggal begitu saja, galian terbuka membahayakan pengendara",
        "jembatan kecil penghubung antar dusun pagarnya patah dan lantainya berlubang",
        "mohon pengerukan saluran irigasi yang dangkal, air tidak sampai ke sawah bagian bawah",
        "jalan poros desa bergelombang dan retak-retak, truk pasir tiap hari lewat",
        "trotoar di jalan {jl} rusak, paving copot dan ada lubang menganga",
        "tutup saluran (u-ditch) di depan pertokoan {jl} pecah, sudah ada yang terperosok",
        "kapan jalan {jl} diperbaiki? sudah 3 tahun rusak tidak ada perbaikan sama sekali",
        "air hujan dari jalan masuk ke pekarangan karena saluran tepi jalan lebih tinggi dari jalan",
        "bahu jalan {jl} longsor tergerus air, tinggal separuh lebar jalan",
        "jalan lingkungan di RT kami berlubang-lubang, mohon dimasukkan program perbaikan jalan",
        "talud sungai di belakang rumah warga retak dan mulai ambrol",
        "saluran pembuangan di pasar tersumbat, airnya menggenang dan bau",
        "box culvert di jalan {jl} tersumbat material, air meluap ke jalan",
        "pelebaran jalan {jl} tidak selesai, bekas galian dibiarkan",
        "mohon normalisasi sungai karena pendangkalan sudah parah, tiap tahun banjir",
        "jalan cor di dusun kami retak dan pecah-pecah padahal baru dibangun tahun lalu",
        "aspal jalan {jl} berlubang di banyak titik, tolong ditambal sebelum lebaran",
        "saluran air di samping SD tertutup tanah, air hujan menggenangi halaman sekolah",
        "paving jalan gang ambles karena saluran di bawahnya bocor",
        "ada lubang besar di tengah jalan {jl} dekat jembatan, sudah ditandai warga pakai ban bekas",
        "jalan penghubung antar desa rusak berat, ambulans pun susah lewat",
        "mohon dibuatkan saluran di jalan {jl}, setiap hujan jalan jadi sungai",
    ],
    "DLH": [
        "mohon pemangkasan pohon di pinggir jalan {jl}, dahannya sudah menjuntai ke kabel listrik",
        "pohon besar di depan rumah warga sudah miring dan rawan tumbang, mohon dipangkas",
        "perantingan pohon di jalan {jl} mohon segera, rantingnya menutupi lampu jalan",
        "pohon angsana di trotoar rimbun sekali, daunnya menutupi rambu dan mengganggu pengendara",
        "tolong pohon di dekat sekolah dipangkas, kalau angin ranting-ranting berjatuhan",
        "pohon trembesi di tepi jalan {jl} batangnya sudah keropos, takut roboh menimpa rumah",
        "sampah menumpuk di TPS dekat pasar sudah 4 hari tidak diangkut, baunya sampai ke rumah",
        "TPS di lingkungan kami penuh, truk sampah jarang datang, sampah meluber ke jalan",
        "warga membuang sampah ke sungai, kalau hujan sampahnya menyumbat aliran",
        "sampah di saluran depan pertokoan menumpuk, mohon dibersihkan dan diangkut",
        "kami selesai kerja bakti bersih-bersih kampung, mohon bantuan angkutan sampahnya",
        "sampah hasil kerja bakti sudah dikumpulkan di pinggir jalan tapi belum diambil",
        "taman kota rumputnya tinggi dan lampu tamannya mati, mohon perawatan",
        "fasilitas taman banyak yang rusak, ayunan patah dan bangku hilang",
        "ada pembuangan sampah liar di lahan kosong pinggir jalan {jl}, baunya menyengat",
        "limbah pabrik tahu dibuang ke sungai, airnya jadi hitam dan bau busuk",
        "bau kotoran dari peternakan ayam sangat menyengat sampai ke pemukiman",
        "asap pembakaran sampah tetangga tiap sore masuk rumah, anak saya batuk",
        "jadwal pengambilan sampah tidak jelas, kadang seminggu tidak diambil padahal sudah bayar iuran",
        "sampah plastik menyangkut di pintu air, air jadi meluap",
        "pohon di taman makam pahlawan sudah tinggi sekali dan condong ke jalan",
        "mohon penebangan pohon mati di tepi jalan {jl} sebelum musim angin",
        "kontainer sampah di dekat perumahan rusak dan berkarat, sampah tercecer",
        "bantaran sungai penuh sampah rumah tangga, mohon dipasang papan larangan dan dibersihkan",
        "ranting pohon patah menggantung di atas jalan {jl}, membahayakan pengguna jalan",
        "pohon di depan balai desa akarnya merusak saluran, mohon dipangkas dan dirapikan",
        "suara mesin penggilingan sampai malam sangat bising, warga terganggu",
        "ruang terbuka hijau di dekat alun-alun tidak terawat, rumput liar setinggi lutut",
        "petugas kebersihan jarang menyapu jalan {jl}, daun-daun kering menumpuk",
        "pencemaran air sumur warga karena limbah usaha di dekat kampung",
        "pohon peneduh di depan kantor pos dahannya sudah menyentuh atap rumah warga",
        "mohon perantingan pohon mahoni di sepanjang jalan {jl}, cabangnya rendah sekali",
        "truk pengangkut sampah tidak ditutup, sampahnya berceceran di jalan",
        "TPS sementara di pinggir jalan bikin kumuh, mohon dipindah atau dijadwal rutin",
    ],
    "PKPP": [
        "lampu PJU di jalan {jl} mati sudah 2 minggu, malam gelap gulita rawan begal",
        "penerangan jalan umum di sepanjang jalan {jl} banyak yang mati, mohon diperbaiki",
        "lampu jalan di gang kami berkedip-kedip terus lalu padam",
        "tiang lampu PJU miring hampir roboh setelah tertabrak truk",
        "mohon pemasangan lampu penerangan jalan di tikungan {jl} karena sering kecelakaan malam hari",
        "ada jukir liar di depan minimarket yang minta uang parkir padahal parkirnya gratis",
        "tukang parkir di alun-alun menarik tarif parkir lebih dari ketentuan dan tidak memberi karcis",
        "parkir di pinggir jalan {jl} semrawut sampai makan separuh jalan, bikin macet",
        "retribusi parkir di pasar dipungut tanpa karcis resmi, uangnya ke mana?",
        "lampu lalu lintas di perempatan {jl} mati, kendaraan saling serobot",
        "traffic light di simpang empat nyala merah terus, antrean panjang sekali",
        "angkutan desa jurusan kota sudah tidak beroperasi, warga susah ke pasar",
        "terminal bus kotor dan banyak calo yang memaksa penumpang",
        "truk bermuatan berlebih lewat jalan desa tiap hari, mohon ditertibkan",
        "rambu lalu lintas di jalan {jl} roboh dan tidak diganti",
        "rusunawa kami airnya sering mati dan lift tidak berfungsi",
        "saya penghuni rusunawa, tagihan sewa naik tanpa pemberitahuan",
        "mohon info cara mendaftar tinggal di rusunawa untuk keluarga kurang mampu",
        "rumah kami tidak layak huni, atap bocor dinding retak, apakah bisa dapat bantuan RTLH?",
        "bantuan bedah rumah tahun lalu belum selesai dikerjakan, bahan bangunan kurang",
        "pengajuan PBG rumah tinggal sudah 3 bulan belum terbit",
        "PSU perumahan belum diserahkan pengembang ke pemkab, jalan dan lampunya rusak tidak ada yang merawat",
        "pengembang perumahan tidak membangun saluran dan jalan sesuai janji",
        "marka jalan dan zebra cross di depan sekolah sudah pudar, anak-anak susah menyeberang",
        "lampu penerangan di jembatan {jl} mati semua, sangat gelap",
        "lampu PJU menyala siang hari tapi malam malah mati",
        "parkir liar di depan rumah sakit menutup akses ambulans",
        "mohon penambahan lampu jalan di jalan {jl}, jarak antar lampu terlalu jauh",
        "juru parkir di depan bank galak dan memaksa bayar padahal cuma sebentar",
        "cermin cembung di tikungan tajam {jl} pecah, mohon diganti",
        "halte bus di depan SMA atapnya bocor dan bangkunya rusak",
        "kabel lampu PJU putus menjuntai ke jalan, berbahaya",
        "lahan makam umum di desa kami sudah penuh, mohon bantuan perluasan TPU",
        "permukiman kumuh di bantaran sungai perlu penataan, sanitasi buruk",
        "uji KIR kendaraan antre lama sekali dan petugasnya tidak jelas",
    ],
    "DINSOS": [
        "saya termasuk keluarga miskin tapi tidak masuk data MBR, mohon didata ulang",
        "bantuan PKH ibu saya tidak cair sudah 3 tahap, padahal masih memenuhi syarat",
        "BPNT bulan ini belum masuk ke kartu, di e-warong katanya saldo kosong",
        "BPJS PBI saya tiba-tiba nonaktif waktu mau berobat, bagaimana mengaktifkan lagi",
        "mohon cara mengurus SKM untuk keringanan biaya berobat anak saya",
        "tetangga saya lansia sebatang kara belum pernah dapat bantuan apapun",
        "penerima bansos di desa kami tidak tepat sasaran, yang mampu dapat yang miskin tidak",
        "data DTKS saya masih tercatat padahal sudah pindah, mohon diperbaiki",
        "program permakanan untuk lansia di RT kami berhenti sejak bulan lalu",
        "KIS saya dinonaktifkan dari PBI, sekarang harus bayar mandiri padahal tidak mampu",
        "bagaimana cara daftar DTKS supaya dapat bantuan sosial",
        "anak yatim di kampung kami butuh bantuan biaya hidup, mohon perhatian",
        "ada ODGJ berkeliaran di pasar dan tidak ada keluarganya, mohon ditangani",
        "keluarga saya desilnya salah, rumah papan kok masuk desil 6",
        "mohon surat rekomendasi dinsos untuk pengajuan bantuan pengobatan",
        "penyandang disabilitas di desa kami butuh kursi roda, bagaimana mengajukan",
        "bansos sembako tahun ini dipotong oleh oknum, per orang dimintai 20 ribu",
        "ada anak terlantar ditinggal orang tuanya, tinggal dengan nenek yang sudah sakit",
        "kapan pencairan BLT untuk keluarga penerima manfaat tahap berikutnya",
        "nama saya hilang dari daftar penerima PKH tanpa pemberitahuan",
        "mohon verifikasi ulang data MBR, banyak warga miskin yang tidak masuk",
        "iuran BPJS ditanggung pemerintah tapi kartu saya tidak bisa dipakai di puskesmas",
        "ada kekerasan dalam rumah tangga di tetangga kami, ibu dan anaknya sering dipukul",
        "pengemis dan anak jalanan makin banyak di perempatan kota",
        "bantuan untuk korban kebakaran rumah dari dinsos belum diterima",
        "pendamping PKH meminta uang saat pencairan",
        "saya janda tua tidak bekerja, mohon dimasukkan penerima bantuan",
        "data kemiskinan di desa kami tidak diperbarui bertahun-tahun",
        "keluarga penerima manfaat graduasi dipaksa mundur padahal belum mampu",
        "saya ingin mengusulkan tetangga yang sakit menahun untuk bantuan sosial",
    ],
    "DUKCAPIL": [
        "saya sudah rekam KTP-el 4 bulan lalu tapi sampai sekarang belum jadi, katanya blanko habis",
        "mohon info syarat membuat akta kelahiran untuk anak yang lahir di rumah",
        "KK saya masih nama kepala keluarga lama padahal sudah meninggal, bagaimana mengubahnya",
        "NIK saya ganda dengan orang lain sehingga tidak bisa daftar BPJS",
        "pengurusan akta kematian ayah saya sudah sebulan belum selesai",
        "mau pindah datang dari luar kota, syaratnya apa saja dan berapa lama",
        "KTP hilang, mau cetak ulang harus bawa surat kehilangan dari polisi atau tidak",
        "akta perkawinan belum tercatat di KK, status masih belum kawin",
        "NIK anak saya tidak terdaftar waktu daftar sekolah, katanya perlu konsolidasi data",
        "antrian di kantor dukcapil panjang sekali, nomor antrian habis jam 8 pagi",
        "salah penulisan tanggal lahir di KTP, perbaikannya bagaimana",
        "KIA untuk anak bisa diurus di kecamatan atau harus ke kabupaten",
        "aktivasi IKD gagal terus, aplikasinya minta verifikasi wajah",
        "surat pindah keluar sudah diurus tapi di daerah tujuan data belum muncul",
        "KTP-el saya rusak chipnya, mohon penggantian",
        "orang tua saya lansia tidak bisa datang untuk rekam KTP, apakah ada layanan jemput bola",
        "akta cerai sudah dari pengadilan agama, kapan status di KK berubah",
        "data kependudukan saya tidak sinkron, NIK saya dinonaktifkan",
    ],
    "DINDIK": [
        "anak saya tidak diterima PPDB zonasi padahal rumah dekat sekolah, malah yang jauh diterima",
        "ijazah anak saya ditahan sekolah karena masih ada tunggakan SPP",
        "dana PIP anak saya belum cair padahal sudah terdaftar di sekolah",
        "sekolah meminta sumbangan pembangunan dengan nominal ditentukan, apakah boleh",
        "atap ruang kelas SD di desa kami bocor dan plafonnya mau jatuh",
        "KIP anak saya tidak bisa dipakai, kata sekolah namanya tidak ada",
        "seragam sekolah wajib beli di sekolah dengan harga mahal",
        "toilet sekolah rusak dan tidak ada air, murid harus pulang ke rumah",
        "guru sering tidak masuk kelas, anak-anak dibiarkan belajar sendiri",
        "jalur afirmasi PPDB kuotanya tidak jelas, mohon transparansi",
        "study tour sekolah biayanya mahal dan terkesan wajib",
        "tunggakan SPP membuat anak saya tidak boleh ikut ujian",
        "ada perundungan di sekolah anak saya, pihak sekolah terkesan membiarkan",
        "pagar dan gerbang sekolah roboh, sekolah tidak aman",
        "mohon info jadwal pendaftaran SPMB SMP negeri tahun ini",
        "guru honorer di sekolah kami gajinya telat berbulan-bulan",
    ],
    "DINKES": [
        "pelayanan di puskesmas lambat, antre dari pagi baru dipanggil siang",
        "mohon fogging di lingkungan kami, sudah 3 warga kena DBD",
        "jadwal imunisasi anak di posyandu tidak jelas, bidannya jarang datang",
        "surat rujukan dari puskesmas ditolak, disuruh balik lagi",
        "obat di puskesmas sering kosong, disuruh beli sendiri di apotek",
        "banyak jentik nyamuk di genangan, mohon PSN dan pemeriksaan jentik",
        "vaksinasi untuk lansia di desa kami kapan dilaksanakan",
        "anak tetangga gizi buruk dan stunting, belum ada penanganan",
        "petugas puskesmas tidak ramah kepada pasien BPJS",
        "pustu di desa kami tutup terus, tidak ada perawat yang jaga",
        "ambulans desa sulit dihubungi waktu ada warga sakit malam hari",
        "klinik praktik bidan buka tanpa izin dan pasiennya banyak",
    ],
    "PDAM": [
        "air PDAM mati sudah 3 hari tanpa pemberitahuan",
        "air PDAM keruh dan berbau, tidak bisa dipakai masak",
        "meteran air saya rusak tapi tagihan tetap tinggi",
        "tagihan air bulan ini naik dua kali lipat padahal pemakaian biasa",
        "pipa PDAM bocor di pinggir jalan {jl}, air terbuang sia-sia",
        "air mengalir kecil sekali hanya malam hari, siang tidak keluar",
        "pengajuan sambungan baru PDAM sudah bayar tapi belum dipasang",
        "air ledeng tidak mengalir ke rumah di bagian atas kampung",
        "petugas pencatat meter tidak pernah datang, tagihan ditaksir saja",
        "sudah lunas bayar rekening air tapi masih ada tunggakan di tagihan",
    ],
    "SATPOLPP": [
        "PKL berjualan di trotoar sampai ke badan jalan, pejalan kaki harus lewat jalan",
        "bangunan liar didirikan di atas saluran dan trotoar",
        "karaoke dekat pemukiman buka sampai pagi dan ada peredaran miras",
        "warung remang-remang di pinggir jalan {jl} jadi tempat mabuk-mabukan",
        "ada gelandangan dan pengemis yang memaksa minta uang di lampu merah",
        "rumah warga kebakaran, damkar datang terlambat",
        "ada sarang tawon besar di atap rumah, mohon dievakuasi",
        "ular kobra masuk ke rumah warga, mohon bantuan evakuasi",
        "baliho dan spanduk liar dipasang di pohon dan tiang listrik",
        "balap liar tiap malam minggu di jalan {jl}, sangat meresahkan",
        "anjing liar berkeliaran dan mengejar anak-anak",
        "sound horeg tiap malam sangat bising, mohon penertiban",
    ],
    "DISNAKER": [
        "gaji karyawan di perusahaan tempat saya bekerja di bawah UMK",
        "THR belum dibayar padahal lebaran sudah lewat",
        "mohon info bursa kerja atau job fair di kabupaten tahun ini",
        "saya di-PHK sepihak tanpa pesangon",
        "cara membuat kartu kuning AK1 secara online bagaimana",
        "pelatihan kerja di BLK pendaftarannya kapan dibuka",
        "perusahaan tidak mendaftarkan pekerja ke BPJS Ketenagakerjaan",
    ],
    "BPKPD": [
        "SPPT PBB tahun ini belum dibagikan, padahal sudah mau jatuh tempo",
        "nilai PBB rumah saya naik drastis, mohon penjelasan",
        "pengurusan BPHTB lama sekali, validasi belum keluar",
        "tanah aset pemkab di desa kami dipakai pribadi oleh oknum",
    ],
    "BKPSDM": [
        "ada ASN yang sering bolos dan jam kerja malah di warung kopi",
        "pengumuman hasil seleksi PPPK tidak transparan",
        "tenaga honorer pemda yang sudah lama mengabdi tidak masuk pendataan PPPK",
        "SK kenaikan pangkat saya belum keluar padahal berkas sudah lengkap",
    ],
    "DISPERINDAG": [
        "bantuan UMKM dari pemkab tidak jelas kapan cairnya",
        "los pasar rusak dan bocor, pedagang kehujanan",
        "harga beras naik terus, mohon operasi pasar",
        "gas elpiji 3 kg langka di pengecer dan harganya mahal",
        "koperasi simpan pinjam tidak mengembalikan simpanan anggota",
    ],
    "DPMPTSP": [
        "pengurusan NIB lewat OSS gagal terus, sistemnya error",
        "izin usaha toko saya sudah diajukan lama belum ada kabar",
        "layanan di MPP antre lama dan petugas loket perizinan sering kosong",
        "syarat izin operasional usaha apa saja",
    ],
    "DISKOMINFO": [
        "website pemkab tidak bisa dibuka sejak kemarin",
        "wifi publik di taman tidak bisa konek",
        "aplikasi pengaduan pemkab error waktu upload foto",
        "desa kami blank spot tidak ada sinyal sama sekali",
    ],
    "BPBD": [
        "tanah longsor menutup jalan dusun setelah hujan deras semalam",
        "banjir setinggi lutut masuk rumah warga, mohon bantuan evakuasi",
        "kekeringan, sumur warga kering, mohon dropping air bersih",
        "angin kencang merobohkan atap rumah warga",
    ],
    "DISPERTA": [
        "pupuk subsidi langka di kios, petani tidak bisa memupuk",
        "hama tikus menyerang sawah, mohon bantuan penyuluh",
        "sapi warga terkena penyakit, mohon petugas kesehatan hewan",
    ],
    "RSUD": [
        "pelayanan IGD RSUD lambat, pasien menunggu berjam-jam",
        "antrian poli di rumah sakit sangat panjang dan tidak tertib",
        "tagihan rumah sakit tidak sesuai, padahal pakai BPJS",
    ],
    "INSPEKTORAT": [
        "ada pungli saat pengurusan surat di kantor desa",
        "dugaan penyelewengan dana desa, proyek tidak sesuai anggaran",
        "oknum pegawai meminta uang pelicin untuk mempercepat layanan",
    ],
    "KECAMATAN": [
        "perangkat desa jarang di kantor, pelayanan surat pengantar susah",
        "kepala desa tidak transparan soal penggunaan dana desa di musdes",
        "pelayanan di kantor kecamatan tutup sebelum jam kerja selesai",
    ],
    "SETDA": [
        "mohon bupati meninjau langsung kondisi desa kami yang tertinggal",
        "proses tender proyek di pemkab terkesan sudah diatur",
    ],
}

JALAN = ["raya Trenggalek-Ponorogo", "Soekarno Hatta", "Panglima Sudirman", "Ahmad Yani", "Brigjen Sutran",
         "Kanjeng Jimat", "Mayjen Sungkono", "Supriyadi", "Ki Hajar Dewantara", "Pahlawan", "Imam Bonjol",
         "Gajah Mada", "Veteran", "Dr Sutomo", "Jaksa Agung Suprapto", "Diponegoro", "arah pantai Prigi",
         "poros desa", "menuju pasar", "masuk dusun", "depan balai desa", "arah Kampak", "Karangan-Watulimo"]

OPENERS = ["", "", "", "", "", "Selamat pagi. ", "Selamat siang admin, ", "Assalamualaikum wr wb. ", "Permisi min, ",
           "Yth. Bapak/Ibu petugas, ", "Mohon maaf mengganggu. ", "Halo admin. ", "Selamat malam. ",
           "Dengan hormat, ", "Pagi min. ", "Lapor! ", "Tolong ditindaklanjuti. ", "Mau lapor min, ",
           "Salam, ", "Sore admin, ", "Maaf mau tanya, ", "Izin menyampaikan keluhan. "]
WHO = ["", "", "", "", "saya warga RT {rt} RW {rw} ", "kami warga dusun {dsn} ", "saya warga desa {desa} ",
       "saya warga kecamatan {kec} ", "kami warga perumahan ", "saya pengguna jalan yang setiap hari lewat situ, ",
       "saya sebagai ketua RT, ", "saya orang tua murid, ", "saya pedagang di sekitar situ, "]
PLACES = ["", "", "", " di desa {desa} kecamatan {kec}", " di ds. {desa} kec. {kec}", " di {desa}",
          " lokasinya di dusun {dsn} desa {desa}", " (kec. {kec})", " di wilayah {kec}", " dekat balai desa {desa}",
          " di RT {rt}/RW {rw} desa {desa}"]
FOLLOW = ["Sudah pernah saya laporkan {when} tapi belum ada tindak lanjut.",
          "Ini laporan kedua, yang pertama {when} belum ditanggapi.",
          "Menindaklanjuti laporan saya {when}, sampai sekarang belum ada perubahan.",
          "Sudah lapor ke desa juga {when} katanya sudah diteruskan tapi belum ada kabar.",
          "Mohon update laporan saya sebelumnya.", "Kemarin sudah ada petugas survei tapi belum dikerjakan.",
          "Sudah berkali-kali warga mengeluh, tapi belum ada respon."]
WHEN = ["bulan lalu", "2 minggu yang lalu", "tanggal 3 kemarin", "awal tahun", "minggu kemarin", "3 bulan lalu"]
CONTEXT = ["Kondisi ini sudah berlangsung lama dan sangat mengganggu aktivitas warga.",
           "Setiap hari banyak anak sekolah yang lewat, kami khawatir terjadi apa-apa.",
           "Warga sudah mencoba gotong royong sendiri tapi tidak mampu karena butuh biaya besar.",
           "Kami sudah menyampaikan di musyawarah desa, katanya kewenangannya bukan di desa.",
           "Kalau malam hari kondisinya lebih parah dan membahayakan.",
           "Kami berharap pemerintah bisa segera turun tangan karena ini menyangkut kepentingan banyak orang.",
           "Kami sebagai warga kecil hanya bisa berharap keluhan ini didengar.",
           "Terlampir foto kondisi terkini.", "Foto sudah saya kirim lewat WA juga.",
           "Mohon petugas bisa cek langsung ke lokasi supaya tahu kondisinya.",
           "Terakhir ada yang celaka minggu lalu, untung tidak parah.",
           "Kami tidak tahu harus melapor ke mana lagi, semoga lewat sini bisa ditangani.",
           "Sebelumnya kami sudah menunggu cukup lama dan bersabar, tapi keadaannya justru makin memburuk dari hari ke hari.",
           "Kami mohon maaf kalau laporan ini kurang lengkap, kami hanya warga biasa yang ingin lingkungan kami lebih baik.",
           "Beberapa tetangga juga mengalami hal yang sama dan sepakat agar saya yang mewakili melapor.",
           "Kami siap membantu petugas kalau dibutuhkan informasi tambahan di lapangan.",
           "Mohon laporan ini tidak diabaikan seperti laporan-laporan sebelumnya yang tidak jelas kelanjutannya.",
           "Semoga pemerintah kabupaten bisa memberi solusi yang terbaik untuk warga."]
CLOSERS = ["", "", "Terima kasih.", "Mohon segera ditindaklanjuti.", "Atas perhatiannya kami ucapkan terima kasih.",
           "Mohon bantuannya.", "Matur nuwun.", "Tolong segera!!", "Terima kasih atas perhatiannya.",
           "Mohon respon cepat.", "Trims.", "Wassalamualaikum.", "Mohon dicek.", "Kapan ditangani?"]

ABBR = {"yang": ["yg"], "dengan": ["dgn", "dg"], "sudah": ["sdh", "udh", "udah"], "belum": ["blm"], "mohon": ["mhn"],
        "tolong": ["tlg"], "karena": ["krn", "karna"], "banyak": ["bnyk", "byk"], "juga": ["jg"], "saya": ["sy", "sya"],
        "sangat": ["sgt", "bgt"], "untuk": ["utk"], "tidak": ["tdk", "gk", "ga", "gak", "nggak"], "kapan": ["kpn"],
        "depan": ["dpn"], "rumah": ["rmh"], "bulan": ["bln"], "tanggal": ["tgl"], "sekarang": ["skrg"],
        "jalan": ["jln", "jl"], "sekolah": ["sklh"], "kecamatan": ["kec"], "desa": ["ds"], "dusun": ["dsn"],
        "terima kasih": ["trims", "makasih", "tks"], "bagaimana": ["gmn", "gimana"], "kemarin": ["kmrn", "kemaren"],
        "padahal": ["pdhl"], "harus": ["hrs"], "masih": ["msh"], "lagi": ["lg"], "tapi": ["tp"], "kalau": ["klo", "kalo"],
        "orang": ["org"], "dari": ["dr"], "hari": ["hr"], "tahun": ["thn"]}
REDUP = {"anak-anak": "anak2", "ranting-ranting": "ranting2", "warga-warga": "warga2", "berhari-hari": "berhari2",
         "pohon-pohon": "pohon2", "lubang-lubang": "lubang2", "berlubang-lubang": "berlubang2", "retak-retak": "retak2",
         "pecah-pecah": "pecah2", "mabuk-mabukan": "mabuk2an", "remang-remang": "remang2", "berbulan-bulan": "berbulan2",
         "gorong-gorong": "gorong2", "bersih-bersih": "bersih2", "kira-kira": "kira2", "berkali-kali": "berkali2"}


def _wilayah() -> tuple[list[str], list[str]]:
    kec, desa = [], []
    with (ROOT / "config" / "trenggalek" / "wilayah.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            (kec if row["level"] == "kecamatan" else desa if row["level"] == "desa_kelurahan" else []).append(row["nama"])
    return kec, desa


def noisy(text: str, rng: random.Random, level: float) -> str:
    """SMS spelling: abbreviations, reduplication with 2, missing spaces, lower case, '!!!!'."""
    if level <= 0:
        return text
    for full, short in REDUP.items():
        if full in text and rng.random() < level:
            text = text.replace(full, short)

    def sub(m: re.Match) -> str:
        w = m.group(0)
        opts = ABBR.get(w.lower())
        return rng.choice(opts) if opts and rng.random() < level else w
    text = re.sub(r"terima kasih|[A-Za-z]+", sub, text)
    if rng.random() < level:
        text = re.sub(r"([.,!?]) ", lambda m: m.group(1) if rng.random() < 0.7 else m.group(0), text)
    if rng.random() < level * 0.6:
        text = text.lower()
    if rng.random() < level * 0.4:
        text = text.rstrip(".") + rng.choice(["!!!", "!!!!", "!!", "..", " ??", "...!!!"])
    if rng.random() < level * 0.2:
        text = re.sub(r"\b(tolong|mohon|segera|cepat)\b", lambda m: m.group(1) + m.group(1)[-1] * rng.randint(2, 4), text)
    return text


def _h(opd: str, core: str) -> int:
    return int(hashlib.sha1(f"{opd}|{core}".encode()).hexdigest(), 16)


def split_of(opd: str, core: str) -> str:
    """30% of each office's core complaints (at least one) are test-only, chosen by a hash of the
    text: fixed, and never by looking at how a rule does on them."""
    ranked = sorted(CORE[opd], key=lambda c: _h(opd, c))
    n_test = max(1, round(0.3 * len(ranked)))
    return "test" if core in ranked[:n_test] else "train"


def compose(opd: str, core: str, rng: random.Random, kec: list[str], desa: list[str]) -> str:
    slots = {"jl": rng.choice(JALAN), "rt": f"{rng.randint(1, 12):02d}", "rw": f"{rng.randint(1, 6):02d}",
             "desa": rng.choice(desa), "kec": rng.choice(kec), "dsn": rng.choice(["Krajan", "Ngrayun", "Sumberejo",
             "Tegalrejo", "Kedungsari", "Jati", "Sidomulyo", "Gading", "Ngemplak", "Bendo"]), "when": rng.choice(WHEN)}
    body = core.format(**slots)
    place = rng.choice(PLACES).format(**slots) if "{jl}" not in core or rng.random() < 0.3 else ""
    who = rng.choice(WHO).format(**slots) if rng.random() < 0.6 else ""
    parts = []
    op = rng.choice(OPENERS)
    if who:
        first = f"{op}{who}ingin menyampaikan bahwa {body}{place}." if rng.random() < 0.5 else f"{op}{who}mau lapor, {body}{place}."
    else:
        first = f"{op}{body[0].upper()}{body[1:]}{place}."
    parts.append(first)
    r = rng.random()
    if r < 0.25:
        parts.append(rng.choice(FOLLOW).format(**slots))
    if rng.random() < 0.3:  # a second matter of the same office
        same = [c for c in CORE[opd] if c != core and split_of(opd, c) == split_of(opd, core)] or [core]
        other = rng.choice(same).format(**slots)
        parts.append(rng.choice(["Selain itu ", "Satu lagi, ", "Sekalian, ", "Oh iya, ", "Juga "]) + other + ".")
    elif rng.random() < 0.12:  # a short aside about another office's matter
        o2 = rng.choice([o for o in ("PUPR", "DLH", "PKPP", "DINSOS", "PDAM") if o != opd])
        aside = rng.choice([c for c in CORE[o2] if split_of(o2, c) == split_of(opd, core)] or CORE[o2]).format(**slots)
        words = aside.split(",")[0].split()[:7]
        while words and words[-1] in ("di", "ke", "dan", "yang", "sudah", "tidak", "dari"):
            words.pop()
        parts.append(rng.choice(["Nb: ", "Sekalian info, ", "Oh ya "]) + " ".join(words) + " juga.")
    n_ctx = rng.choices([0, 1, 2, 7, 10], weights=[62, 19, 8, 4, 7])[0]
    parts += rng.sample(CONTEXT, min(n_ctx, len(CONTEXT)))
    parts.append(rng.choice(CLOSERS))
    text = " ".join(p for p in parts if p)
    return noisy(text, rng, rng.choice([0, 0.15, 0.35, 0.6, 0.8]))


def main() -> None:
    rng = random.Random(20260412)
    kec, desa = _wilayah()
    total = sum(SHARES.values())
    rows = []
    for opd, share in SHARES.items():
        n = max(3, round(N * share / total))
        cores = CORE[opd]
        for i in range(n):
            ci = i % len(cores) if i < len(cores) else rng.randrange(len(cores))
            core = cores[ci]
            # split by core complaint (30% of each office's cores are test-only)
            split = split_of(opd, core)
            rows.append({"text": compose(opd, core, rng, kec, desa), "opd": opd, "split": split})
    rng.shuffle(rows)
    seen, out = set(), {"train": [], "test": []}
    for r in rows:
        if r["text"] in seen:
            continue
        seen.add(r["text"])
        out[r["split"]].append({"text": r["text"], "opd": r["opd"]})
    for name, rs in out.items():
        (HERE / f"routing_dev_real_{name}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rs), encoding="utf-8")
    allr = out["train"] + out["test"]
    (HERE / "routing_dev_real.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in allr), encoding="utf-8")
    lens = [len(r["text"]) for r in allr]
    print(f"{len(allr)} messages ({len(out['train'])} train, {len(out['test'])} test); median length "
          f"{statistics.median(lens):.0f}, > 600 chars: {sum(x > 600 for x in lens) / len(lens):.0%}")


if __name__ == "__main__":
    main()
