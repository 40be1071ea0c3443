"""Ticket codes, log masking and config errors: pure behaviour, no database."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import structlog

from hub.codes import ALPHABET, LENGTH, clean_code, new_code
from hub.config import ConfigError, load_regency
from hub.logging import configure_logging, mask_text
from config import DEFAULT_CONFIG_DIR


def test_codes_are_short_unambiguous_and_unique():
    codes = {new_code() for _ in range(20000)}
    assert len(codes) == 20000
    for c in list(codes)[:2000]:
        assert len(c) == LENGTH <= 10
        assert not set(c) & set("0O1IL")
        assert set(c) <= set(ALPHABET)


@pytest.mark.parametrize("typed,expected", [
    ("k7x2m9p", "K7X2M9P"), (" K7X-2M9P ", "K7X2M9P"), ("K7X 2M9P", "K7X2M9P"),
    ("K0X2M9P", None),  # 0 is never in a code
    ("K7X2M9", None), ("HELLO WORLD", None), ("", None),
])
def test_clean_code(typed, expected):
    assert clean_code(typed) == expected


@pytest.mark.parametrize("text,must_not_contain,must_contain", [
    ("NIK saya 3503114507900003 mohon", "3503114507900003", "3503**********03"),
    ("hubungi 081234567890 ya", "081234567890", "0812***890"),
    ("hp +62 812-3456-7890", "3456-7890", "***"),
    ("from +6281234567890", "6281234567890", "+628***890"),
    ("token 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1 bocor", "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1", "123456789:***"),
    ("key sk_ab12cd34_Zm9vYmFyYmF6cXV4cXV1eA here", "Zm9vYmFyYmF6cXV4cXV1eA", "sk_ab12cd34_***"),
    ("Authorization: Bearer abc.def.ghi", "abc.def.ghi", "Bearer ***"),
    ("POST https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1/sendMessage",
     "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1", "/bot123456789:***"),
])
def test_mask_text(text, must_not_contain, must_contain):
    out = mask_text(text)
    assert must_not_contain not in out
    assert must_contain in out


@pytest.mark.parametrize("text", ["jalan rusak di RT 03 RW 05 desa Ngadirenggo", "tanggal 20-08-2021 jam 07:15",
                                  "kode laporan K7X2M9P"])
def test_mask_text_leaves_ordinary_text(text):
    assert mask_text(text) == text


def test_log_lines_are_json_and_masked(capsys):
    configure_logging("INFO", json=True)
    structlog.contextvars.bind_contextvars(request_id="req-1")
    structlog.get_logger("t").info("sms.received", sender="081234567890", nik="3503114507900003",
                                   password="hunter22", text="NIK 3503114507900003 hp 081234567890",
                                   headers={"X-Twilio-Signature": "abc", "Host": "x"})
    structlog.contextvars.clear_contextvars()
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    dumped = json.dumps(line)
    assert line["request_id"] == "req-1" and line["event"] == "sms.received"
    for secret in ("081234567890", "3503114507900003", "hunter22", '"abc"'):
        assert secret not in dumped
    assert line["headers"]["Host"] == "x"


def _copy_config(tmp_path: Path) -> Path:
    import shutil

    d = tmp_path / "cfg"
    shutil.copytree(DEFAULT_CONFIG_DIR, d)
    return d


def test_default_config_has_required_opds():
    cfg = load_regency(DEFAULT_CONFIG_DIR)
    required = {"PUPR", "PKPP", "DLH", "DINSOS", "DUKCAPIL", "DINKES", "RSUD", "SATPOLPP", "BPBD", "DINDIK",
                "DISKOMINFO", "DISNAKER", "DISPERINDAG", "PDAM", "BPKPD", "DPMPTSP", "BKPSDM", "DISPERTA",
                "INSPEKTORAT", "SETDA", "KECAMATAN"}
    assert required <= cfg.opd_codes()
    assert cfg.triage_opd == "DISKOMINFO"


@pytest.mark.parametrize("content,line,problem", [
    ("triage_opd: DISKOMINFO\nopds:\n  - {code: PUPR, name: \"PU\"\n", 4, "invalid YAML"),
    ("opds:\n  - {code: PUPR, name: PU}\n  - {code: PUPR, name: Lagi}\n", 3, "duplicate OPD code PUPR"),
    ("opds:\n  - {code: PUPR}\n", 2, "needs a 'name'"),
    ("opds:\n  - {code: PUPR, name: PU, delivery: {type: fax}}\n", 2, "delivery.type"),
    ("triage_opd: NOPE\nopds:\n  - {code: PUPR, name: PU}\n", 1, "triage_opd 'NOPE'"),
    ("opds: []\n", 1, "non-empty list"),
])
def test_broken_opd_config_names_file_and_line(tmp_path, content, line, problem):
    d = _copy_config(tmp_path)
    (d / "opds.yaml").write_text(content)
    with pytest.raises(ConfigError) as exc:
        load_regency(d)
    assert exc.value.path == d / "opds.yaml"
    assert exc.value.line == line
    assert problem in str(exc.value)


def test_broken_template_is_reported(tmp_path):
    d = _copy_config(tmp_path)
    (d / "templates.yaml").write_text(textwrap.dedent("""\
        receipt: "ok {code}"
        status_selesai:
          - not a string
        """))
    with pytest.raises(ConfigError) as exc:
        load_regency(d)
    assert exc.value.line == 3 and "status_selesai" in str(exc.value)


def test_cli_stops_on_broken_config(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from hub import config as hub_config
    from hub.cli import app
    from hub.settings import reset_settings

    d = _copy_config(tmp_path)
    (d / "opds.yaml").write_text("opds:\n  - {code: PUPR}\n")
    monkeypatch.setenv("SIMPUL_CONFIG_DIR", str(d))
    monkeypatch.setenv("SIMPUL_DATABASE_URL", f"sqlite:///{tmp_path}/x.db")
    reset_settings()
    hub_config.regency_config.cache_clear()
    result = CliRunner().invoke(app, ["opd", "key", "create", "x", "--opd", "PUPR"])
    reset_settings()
    assert result.exit_code == 2
    assert "opds.yaml:2" in result.output and "needs a 'name'" in result.output


@pytest.mark.parametrize("old,new", [
    # the first rule's category, and a channel default's: not in LAPOR!'s taxonomy
    ("    category: PEKERJAAN UMUM DAN PENATAAN RUANG\n", "    category: JALAN_RUSAK\n"),
    ("psc119: {opd: DINKES, score: 3.0, category: KESEHATAN,", "psc119: {opd: DINKES, score: 3.0, category: JALAN_RUSAK,"),
])
def test_unknown_lapor_category_stops_start_up_with_file_and_line(tmp_path, monkeypatch, old, new):
    """Issue #13 item 12: it used to start and then fail every processing batch."""
    from typer.testing import CliRunner

    from hub import config as hub_config
    from hub.app import create_app
    from hub.cli import app
    from hub.normalizer_loader import clear_cache
    from hub.settings import get_settings, reset_settings

    d = _copy_config(tmp_path)
    text = (d / "routing.yaml").read_text(encoding="utf-8")
    line = text[:text.index(old)].count("\n") + 1
    (d / "routing.yaml").write_text(text.replace(old, new, 1), encoding="utf-8")
    monkeypatch.setenv("SIMPUL_CONFIG_DIR", str(d))
    monkeypatch.setenv("SIMPUL_DATABASE_URL", f"sqlite:///{tmp_path}/x.db")
    reset_settings()
    hub_config.regency_config.cache_clear()
    clear_cache()
    try:
        with pytest.raises(ConfigError) as exc:
            create_app(get_settings(), workers=False)
        assert exc.value.path == d / "routing.yaml" and exc.value.line == line
        assert "JALAN_RUSAK" in str(exc.value) and "lapor_categories.json" in str(exc.value)
        for command in (["serve"], ["worker"]):
            result = CliRunner().invoke(app, command)
            assert result.exit_code == 2, result.output
            out = result.output.replace("\n", "")  # the console wraps long lines
            assert f"routing.yaml:{line}:" in out and "JALAN_RUSAK" in out
    finally:
        reset_settings()
        hub_config.regency_config.cache_clear()
        clear_cache()
