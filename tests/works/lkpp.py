"""Generated LKPP-shaped data (SiRUP plan, SPSE tender result, e-kontrak / BAP-BAST rows) with
the column names, Indonesian number formats and date styles of the real exports, including the
officials' personal columns (NIP, bank account) that must never be stored. Used by the tests,
bench/works.py and nothing else."""
from __future__ import annotations

import csv
import random
from datetime import date, timedelta
from pathlib import Path

BULAN = ["Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
         "November", "Desember"]
KECAMATAN = ["Panggul", "Munjungan", "Watulimo", "Kampak", "Dongko", "Pule", "Karangan", "Suruh", "Gandusari",
             "Durenan", "Pogalan", "Trenggalek", "Tugu", "Bendungan"]
SATKER = ["Dinas Pekerjaan Umum dan Penataan Ruang", "Dinas Perumahan, Kawasan Permukiman dan Pertanahan",
          "Dinas Pendidikan, Pemuda dan Olahraga", "Dinas Kesehatan, Pengendalian Penduduk dan Keluarga Berencana"]
OPD = {SATKER[0]: "PUPR", SATKER[1]: "PKPP", SATKER[2]: "DINDIK", SATKER[3]: "DINKES"}
KINDS = ["Rehabilitasi Jalan Ruas", "Pembangunan Jembatan", "Peningkatan Jalan", "Pembangunan Saluran Drainase",
         "Rehabilitasi Gedung SD Negeri", "Pembangunan Talud"]
PLACES = ["Ngadirejo", "Sumberingin", "Karanganyar", "Prambon", "Kedungsigit", "Sukorejo", "Widoro", "Ngulungkulon",
          "Tasikmadu", "Prigi", "Salamwates", "Jombok", "Gador", "Sawahan", "Ngentrong", "Pandean", "Surenlor"]
WINNERS = [("CV Maju Jaya Trenggalek", "01.234.567.8-654.000"), ("CV Karya Bakti", "02.345.678.9-654.000"),
           ("PT Prigi Konstruksi", "03.456.789.0-654.000"), ("CV Sumber Rejeki", "04.567.890.1-654.000"),
           ("CV Wilis Mandiri", "05.678.901.2-654.000")]


def rupiah_id(sen: int) -> str:
    whole, cents = divmod(sen, 100)
    return f"{whole:,}".replace(",", ".") + f",{cents:02d}"


def tanggal(d: date, style: int) -> str:
    return [d.strftime("%d/%m/%Y"), f"{d.day} {BULAN[d.month - 1]} {d.year}", d.isoformat()][style % 3]


def generate(plans: int = 150, seed: int = 16, year: int = 2026):
    """(rup, tender, kontrak) rows as dicts keyed by LKPP column names. Every tender names the
    kd_rup of a plan, every contract the kd_tender of a tender; BAP/BAST rows repeat contracts."""
    rnd = random.Random(seed)
    rup, tender, kontrak = [], [], []
    for i in range(plans):
        kd_rup = str(41_000_000 + i * 7)
        satker = SATKER[i % len(SATKER)]
        kec = KECAMATAN[i % len(KECAMATAN)]
        name = f"{KINDS[i % len(KINDS)]} {PLACES[i % len(PLACES)]} - {PLACES[(i * 3 + 1) % len(PLACES)]} Tahap {i}"
        pagu = rnd.randrange(200, 5000) * 1_000_000 * 100
        start = date(year, 3, 1) + timedelta(days=rnd.randrange(0, 90))
        end = start + timedelta(days=rnd.randrange(90, 180))
        rup.append({"kd_rup": kd_rup, "nama_paket": name, "pagu": rupiah_id(pagu), "metode_pengadaan": "Tender",
                    "tgl_awal_kontrak": tanggal(start, i), "tgl_akhir_kontrak": tanggal(end, i + 1),
                    "lokasi": f"Kec. {kec}, Kab. Trenggalek", "nama_satker": satker, "sumber_dana": "APBD",
                    "tahun_anggaran": str(year), "nama_ppk": f"Ir. Pejabat {i}", "nip_ppk": f"19700101 199503 1 {i:03d}"})
        if i % 10 == 9:
            continue  # still in planning: no tender yet
        kd_tender = str(9_100_000 + i * 13)
        hps = int(pagu * rnd.uniform(0.9, 0.99)) // 100 * 100
        value = int(hps * rnd.uniform(0.85, 0.99)) // 100 * 100
        w = WINNERS[i % len(WINNERS)]
        tender.append({"kd_tender": kd_tender, "kd_rup_paket": kd_rup, "nama_paket": name, "pagu": rupiah_id(pagu),
                       "hps": rupiah_id(hps), "nilai_kontrak": rupiah_id(value), "nama_penyedia": w[0],
                       "npwp_penyedia": w[1], "tgl_penetapan_pemenang": tanggal(start - timedelta(days=20), i),
                       "no_rekening_ppk": f"0123{i:06d}"})
        if i % 10 == 8:
            continue  # awarded, contract not signed yet
        no = f"027/{100 + i}/406.011/{year}"
        base = {"no_kontrak": no, "kd_tender": kd_tender, "nilai_kontrak": rupiah_id(value),
                "tgl_kontrak": tanggal(start - timedelta(days=5), i), "tgl_spmk": tanggal(start, i + 2),
                "tgl_selesai_kontrak": tanggal(end, i), "nama_penyedia": w[0], "npwp_penyedia": w[1],
                "progres_pekerjaan": "", "besar_pembayaran": "", "termin": "", "tgl_bap": "", "tgl_bast": "",
                "nip_pptk": f"19800202 200501 1 {i:03d}", "nomor_rekening_penyedia": f"98{i:08d}"}
        kontrak.append(dict(base))
        if i % 3 == 0:  # a BAP with progress and a termin
            k = dict(base, progres_pekerjaan="35,50", besar_pembayaran=rupiah_id(value * 30 // 100 // 100 * 100),
                     termin="Termin 1", tgl_bap=tanggal(start + timedelta(days=40), i))
            kontrak.append(k)
        if i % 7 == 0:  # handed over
            kontrak.append(dict(base, progres_pekerjaan="100", tgl_bast=tanggal(end - timedelta(days=2), i)))
    return rup, tender, kontrak


def write_csv(rows: list[dict], path: Path, title: bool = True) -> Path:
    """';'-separated like Excel in Indonesia, under a title block like the office's exports."""
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        if title:
            f.write("Data Paket Pengadaan;Pemerintah Kabupaten Trenggalek\n\n")
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=";")
        w.writeheader()
        w.writerows(rows)
    return Path(path)


def write_xlsx(rows: list[dict], path: Path) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Laporan e-Kontrak"])
    ws.append([])
    ws.append(list(rows[0]))
    for r in rows:
        ws.append(list(r.values()))
    wb.save(path)
    return Path(path)
