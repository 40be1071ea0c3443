"""Demo projects for `simpul demo`: a dozen invented, Trenggalek-like works in every state
(planning, tender, contracted, on track, critical, paid ahead, silent, value above HPS,
addendum, overdue without BAST, handed over, terminated), with dates relative to today, a
contractor key's NPWP, and a few citizens' reports about them. Idempotent: existing codes are
left alone. Names, firms and numbers are invented."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from sqlalchemy import select
from sqlmodel import Session

from hub.works.models import WorksContract, WorksProject, WorksTender

# code, name, OPD, kecamatan, desa, lat, lon, line?, pagu (juta), state
PROJECTS = [
    ("35030001", "Rehabilitasi Jalan Ruas Karangan - Sumberingin", "PUPR", "35.03.06", None, -8.0620, 111.6590, True, 2400, "pelaksanaan"),
    ("35030002", "Pembangunan Jembatan Kali Ngasinan Desa Prambon", "PUPR", "35.03.05", None, -8.1010, 111.7350, False, 3800, "kritis"),
    ("35030003", "Peningkatan Jalan Lingkar Pantai Prigi", "PUPR", "35.03.08", None, -8.2860, 111.7290, True, 5200, "bayar_mendahului"),
    ("35030004", "Pembangunan Saluran Drainase Jalan Soekarno-Hatta Trenggalek", "PUPR", "35.03.11", None, -8.0530, 111.7160, False, 900, "diam"),
    ("35030005", "Rehabilitasi Gedung SD Negeri 2 Dongko", "DINDIK", "35.03.04", None, -8.1840, 111.5980, False, 750, "hps"),
    ("35030006", "Pembangunan Puskesmas Pembantu Desa Ngulungkulon", "DINKES", "35.03.02", None, -8.2270, 111.6530, False, 1600, "adendum"),
    ("35030007", "Pembangunan Talud Sungai Desa Kedungsigit", "PUPR", "35.03.06", None, -8.1000, 111.6430, False, 650, "lewat"),
    ("35030008", "Rehabilitasi Rumah Tidak Layak Huni Kecamatan Pule", "PKPP", "35.03.03", None, -8.1350, 111.5450, False, 500, "selesai"),
    ("35030009", "Pembangunan Embung Desa Sukorejo", "PUPR", "35.03.10", None, -8.0230, 111.6860, False, 1200, "putus"),
    ("35030010", "Peningkatan Jalan Poros Desa Tasikmadu", "PUPR", "35.03.08", None, -8.2710, 111.7450, False, 1800, "berkontrak"),
    ("35030011", "Rehabilitasi Pasar Desa Gandusari", "DISPERINDAG", "35.03.10", None, -8.1130, 111.7050, False, 1100, "tender"),
    ("35030012", "Pembangunan Gedung Serbaguna Kecamatan Bendungan", "PKPP", "35.03.09", None, -8.0060, 111.6210, False, 2600, "perencanaan"),
]
WINNERS = [("CV Maju Jaya Trenggalek", "012345678654000"), ("CV Karya Wilis", "023456789654000"),
           ("PT Prigi Konstruksi Utama", "034567890654000"), ("CV Sumber Rejeki Abadi", "045678901654000")]
DEMO_NPWP = WINNERS[0][1]


def load_works_demo(scope, cfg, traffic: bool = True) -> list[str]:
    from hub.works.service import add_addendum, record_payment, record_progress, recompute_flags, today_local

    today = today_local(cfg)
    year = today.year
    added = 0
    with scope() as s:
        have = set(s.scalars(select(WorksProject.code)))
        for i, (code, name, opd, kec, desa, lat, lon, line, pagu_juta, state) in enumerate(PROJECTS):
            if code in have:
                continue
            added += 1
            pagu = pagu_juta * 1_000_000 * 100
            start = today - timedelta(days=60)
            end = today + timedelta(days=60)
            if state in ("selesai", "lewat", "putus"):
                start, end = today - timedelta(days=150), today - timedelta(days=10)
            if state == "berkontrak":  # SPMK two days ago
                start, end = today - timedelta(days=2), today + timedelta(days=120)
            p = WorksProject(code=code, name=name, opd_code=opd, kecamatan_code=kec, desa_code=desa,
                             latitude=None if line else lat, longitude=None if line else lon,
                             line=[[lat, lon - 0.006], [lat + 0.002, lon], [lat + 0.003, lon + 0.006]] if line else None,
                             buffer_m=15 if line else None, funding_source=["APBD", "DAK", "APBD", "Dana Desa"][i % 4],
                             fiscal_year=year, pagu_sen=pagu, method="Tender", planned_start=start, planned_end=end,
                             location_text=f"Kab. Trenggalek")
            s.add(p)
            if state == "perencanaan":
                continue
            hps = pagu * 97 // 100
            value = hps * 92 // 100 if state != "hps" else hps + 25_000_000 * 100
            w = WINNERS[i % len(WINNERS)]
            t = WorksTender(kd_tender=f"9{code}", kd_rup=code, name=name, pagu_sen=pagu, hps_sen=hps,
                            value_sen=value if state != "tender" else None,
                            winner_name=w[0] if state != "tender" else None,
                            winner_npwp=w[1] if state != "tender" else None, award_date=start - timedelta(days=20))
            s.add(t)
            if state == "tender":
                continue
            c = WorksContract(number=f"027/{i + 1:03d}/406.011/{year}", kd_tender=t.kd_tender, kd_rup=code,
                              value_sen=value, original_value_sen=value, winner_name=w[0], winner_npwp=w[1],
                              signed_on=start - timedelta(days=5), start_on=start, planned_end=end, original_end=end,
                              terminated=state == "putus")
            if state == "pelaksanaan":
                c.schedule = [{"name": "Persiapan dan galian", "weight": 15, "start": start.isoformat(),
                               "end": (start + timedelta(days=20)).isoformat()},
                              {"name": "Lapis pondasi", "weight": 35, "start": (start + timedelta(days=15)).isoformat(),
                               "end": (start + timedelta(days=70)).isoformat()},
                              {"name": "Pengaspalan", "weight": 50, "start": (start + timedelta(days=60)).isoformat(),
                               "end": end.isoformat()}]
            s.add(c)
            s.flush()
            actor = f"mitra:{w[0]}"
            if state == "berkontrak":
                continue
            steps = {"pelaksanaan": [(20, 12), (40, 27), (58, 42)], "kritis": [(20, 4), (45, 9), (58, 14)],
                     "bayar_mendahului": [(30, 22), (58, 45)], "diam": [(10, 8)], "hps": [(30, 25), (58, 48)],
                     "adendum": [(30, 20), (58, 45)], "lewat": [(60, 40), (120, 85)],
                     "selesai": [(50, 35), (100, 80), (138, 100)], "putus": [(40, 10)]}[state]
            for day, pct in steps:
                record_progress(s, c, pct, start + timedelta(days=day), actor, note="Laporan mingguan")
            pay = s.scalars(select(WorksContract).where(WorksContract.id == c.id)).one()
            record_payment(s, pay, value * 20 // 100, start + timedelta(days=3), "uang_muka", "user:bendahara")
            if state == "bayar_mendahului":
                record_payment(s, pay, value * 45 // 100, today - timedelta(days=2), "termin", "user:bendahara", 1)
            if state == "selesai":
                record_payment(s, pay, value * 75 // 100, end, "termin", "user:bendahara", 1)
                c.bast_on = end - timedelta(days=2)
            if state == "adendum":
                add_addendum(s, c, "user:ppk", "027/ADD-01", today - timedelta(days=7), value + 60_000_000 * 100,
                             end + timedelta(days=30), "Pekerjaan tambah saluran samping")
            s.add(c)
        s.flush()
        if added:
            recompute_flags(s, cfg, today=today)
    lines = []
    if traffic:
        from hub.intake import accept_many
        from hub.processing import drain

        accepted = accept_many(demo_reports())
        drain()
        lines.append(f"works demo: {sum(not a.duplicate for a in accepted)} citizens' reports about projects")
    return lines + [f"works demo: {added} projects added ({len(PROJECTS) - added} already there); "
            f"contractor NPWP for `simpul works key`: {DEMO_NPWP}"]


def demo_reports() -> list:
    """A few citizens' reports about the demo projects (by code, name and coordinates)."""
    from normalizer.types import InboundMessage

    now = datetime.now(timezone.utc)
    day = now.strftime("%Y%m%d")
    items = [
        ("sms", "Proyek 35030002 jembatan Prambon sepi, tidak ada pekerjaan sudah dua minggu", None, None),
        ("telegram", "Aspal jalan baru di sini sudah retak padahal belum sebulan", -8.0625, 111.6588),
        ("web", "Drainase Soekarno-Hatta galiannya dibiarkan terbuka, bahaya untuk pengendara", None, None),
        ("sms", "Gedung SD Negeri 2 Dongko atapnya bocor lagi setelah direhab", None, None),
    ]
    return [InboundMessage(channel=ch, text=text, sender=f"+6281331{k:06d}", provider_id=f"works-demo-{day}-{k}",
                           received_at=now - timedelta(minutes=30 + k), latitude=lat, longitude=lon)
            for k, (ch, text, lat, lon) in enumerate(items)]
