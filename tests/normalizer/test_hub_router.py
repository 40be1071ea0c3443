"""Hub side of the router: the cached regency loader, `simpul triage` without and with a
database, and `simpul router learn` (bad lines reported with their number)."""
import json

import pytest
from typer.testing import CliRunner


@pytest.fixture
def temp_db(tmp_path, monkeypatch):
    from hub import db, settings

    monkeypatch.setenv("SIMPUL_DATABASE_URL", f"sqlite:///{tmp_path / 'simpul.db'}")
    settings.reset_settings()
    db.reset_engine()
    yield tmp_path
    settings.reset_settings()
    db.reset_engine()


def _app():
    import typer

    from hub.cli_router import router_app, triage

    app = typer.Typer()
    app.command("triage")(triage)
    app.add_typer(router_app, name="router")
    return app


def test_load_normalizer_regency_is_cached():
    from config import DEFAULT_CONFIG_DIR
    from hub.normalizer_loader import load_normalizer_regency

    a = load_normalizer_regency(DEFAULT_CONFIG_DIR)
    assert a is load_normalizer_regency(DEFAULT_CONFIG_DIR)
    assert a.triage_opd == "DISKOMINFO" and "PUPR" in a.opd_codes


def test_triage_without_database(temp_db):
    lines = "\n".join([json.dumps({"text": "jalan rusak di ds Ngetal kec Pogalan", "id": "x1"}),
                       "{bukan json",
                       json.dumps({"text": "banjir di desa Ngadisuko", "channel": "bpbd"})]) + "\n"
    res = CliRunner().invoke(_app(), ["triage"], input=lines)
    assert res.exit_code == 0
    rows = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert rows[0]["id"] == "x1" and rows[0]["opd"] == "PUPR" and rows[0]["kecamatan"] == "Pogalan"
    assert rows[1]["opd"] == "BPBD" and rows[1]["urgency"] == "darurat" and rows[1]["desa"] == "Ngadisuko"
    assert set(rows[0]) >= {"id", "category", "opd", "kecamatan", "desa", "urgency", "confidence"}
    assert "baris 2" in res.stderr
    assert not (temp_db / "simpul.db").exists()  # no database was created


def test_learn_then_triage_uses_model(temp_db):
    from hub.db import session_scope
    from hub.models import RouterModel

    path = temp_db / "learn.jsonl"
    good = [{"text": f"kucing tetangga hilang di kebun {i}", "opd": "SATPOLPP"} for i in range(12)]
    good += [{"text": f"tikus makan padi di sawah {i}", "opd": "DISPERTA"} for i in range(12)]
    path.write_text("\n".join(json.dumps(g) for g in good) + "\n{rusak\n" +
                    json.dumps({"text": "x", "opd": "NOPE"}) + "\n", encoding="utf-8")
    res = CliRunner().invoke(_app(), ["router", "learn", str(path)])
    assert res.exit_code == 0, res.output
    assert "24 contoh" in res.stdout
    assert "baris 25" in res.stderr and "baris 26" in res.stderr
    with session_scope() as s:
        row = s.query(RouterModel).order_by(RouterModel.id.desc()).first()
        assert row.examples == 24
    out = CliRunner().invoke(_app(), ["triage"], input=json.dumps({"text": "kucing hilang di kebun"}) + "\n")
    assert json.loads(out.stdout.splitlines()[0])["opd"] == "SATPOLPP"


def test_reroute_example_counts_at_the_next_background_retrain(temp_db):
    from hub.db import session_scope
    from hub.migrate import upgrade
    from hub.models import RouterModel
    from hub.router_learning import record_example, retrain_if_stale, router_status

    upgrade()
    with session_scope() as s:
        for i in range(25):
            record_example(s, f"lampu jalan mati {i}", "DISHUB" if i % 2 else "PUPR", "learn")
        first = retrain_if_stale(s)
        assert first is not None and first.model["kind"] == "linear-tfidf"
        # DISHUB is an alias of PKPP in the 2026 registry
        assert set(first.model["classes"]) >= {"PKPP", "PUPR"} and "DISHUB" not in first.model["classes"]
        n = first.examples
        assert retrain_if_stale(s) is None  # nothing new
        record_example(s, "kucing hilang", "SATPOLPP", "reroute")
        second = retrain_if_stale(s)
        assert second is not None and second.examples == n + 1
        assert s.query(RouterModel).order_by(RouterModel.id.desc()).first().id == second.id
        st = router_status(s)
        assert st["examples"] == n + 1 and st["per_opd"]["SATPOLPP"] == 1 and st["cv_accuracy"] is not None


def test_learn_reads_csv_by_header_and_maps_opd_names(temp_db):
    from hub.db import session_scope
    from hub.models import RoutingExample

    path = temp_db / "riwayat.csv"
    rows = ["No;Tanggal;Isi Laporan;Instansi Tujuan"]
    for i in range(15):
        rows.append(f"{i + 1};2025-01-0{i % 9 + 1};lampu PJU mati di gang {i};Dinas Perhubungan")
        rows.append(f"{i + 16};2025-01-0{i % 9 + 1};sampah menumpuk di TPS {i};DLH")
    rows.append("31;2025-02-01;jalan rusak;Dinas Entah Apa")
    rows.append("32;2025-02-01;;PUPR")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    res = CliRunner().invoke(_app(), ["router", "learn", str(path), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "30 contoh" in res.stdout
    assert "'Dinas Entah Apa': 1 baris (32)" in res.stderr  # row numbers as the office sees them
    assert "baris 33" in res.stderr
    with session_scope() as s:
        assert {o for (o,) in s.query(RoutingExample.opd_code).distinct()} == {"PKPP", "DLH"}


def test_learns_from_lapor_dispositions_and_closed_tickets(temp_db, monkeypatch):
    """A LAPOR! ticket disposed to an instansi that is an OPD (or its alias), and a ticket an OPD
    closed selesai without a re-route, are examples; a re-routed one is not counted twice."""
    import sys
    from pathlib import Path

    from hub.db import session_scope
    from hub.migrate import upgrade
    from hub.router_learning import decided_examples
    from hub.seed import sync_opds
    from hub.config import regency_config as load_cfg
    from hub.settings import get_settings

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "delivery"))
    from helpers import make_ticket

    upgrade()
    with session_scope() as s:
        sync_opds(s, load_cfg(str(get_settings().config_dir)))
        make_ticket(s, opd="DISKOMINFO", channel="lapor", text="lampu PJU mati di jalan raya",
                    fields={"disposition": "Dinas Perhubungan"})
        make_ticket(s, opd="DISKOMINFO", channel="lapor", text="laporan umum",
                    fields={"disposition": "Pemerintah Kabupaten Trenggalek"})  # not one OPD
        from hub.tickets import add_event
        done = make_ticket(s, opd="DLH", text="sampah menumpuk di TPS", status="selesai")
        add_event(s, done, "key:dlh-system", "status", from_status="diproses", to_status="selesai")
        t = make_ticket(s, opd="PUPR", text="pohon rimbun mohon dipangkas", status="selesai")
        add_event(s, t, "user:admin", "rerouted", from_opd="DLH", to_opd="PUPR")
        add_event(s, t, "user:pupr", "status", from_status="diproses", to_status="selesai")
        old = make_ticket(s, opd="DINKES", text="pasien sesak napas (log lama)", status="selesai")
        add_event(s, old, "system", "status", from_status="menunggu", to_status="selesai")
        make_ticket(s, opd="PDAM", text="air mati", status="diproses")
        s.flush()
        pairs, counts = decided_examples(s)
    assert ("lampu PJU mati di jalan raya", "PKPP") in pairs
    assert ("sampah menumpuk di TPS", "DLH") in pairs
    assert all(t not in ("laporan umum", "pohon rimbun mohon dipangkas", "air mati", "pasien sesak napas (log lama)")
               for t, _o in pairs)
    assert counts["lapor"] == 1 and counts["selesai"] == 1
