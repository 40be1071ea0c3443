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
    from hub.regency import load_normalizer_regency

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
