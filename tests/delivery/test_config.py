"""Delivery fields in opds.yaml: what each type needs, secrets only by env-var name, errors with
the file and line."""
from __future__ import annotations

import shutil

import pytest

from config import DEFAULT_CONFIG_DIR
from hub.config import ConfigError, load_regency


@pytest.mark.parametrize("delivery,problem", [
    ("{type: webhook, url: 'https://x.example/h', secret_env: SIMPUL_WEBHOOK_SECRET_PUPR}", None),
    ("{type: webhook, url: 'https://x.example/h', secret_env: S, timeout_s: 5}", None),
    ("{type: webhook, secret_env: S}", "delivery.url must be an http(s) URL"),
    ("{type: webhook, url: 'https://x.example/h', secret: whsec_abc}", "never put the webhook secret in YAML"),
    ("{type: webhook, url: 'https://x.example/h'}", "delivery.secret_env must name"),
    ("{type: webhook, url: 'https://x.example/h', secret_env: S, timeout_s: 0}", "timeout_s"),
    ("{type: email, to: a@b.go.id}", None),
    ("{type: email, to: [a@b.go.id, c@d.go.id]}", None),
    ("{type: email}", "delivery.to must be an e-mail address"),
    ("{type: email, to: [nobody]}", "delivery.to must be an e-mail address"),
    ("{type: open311, endpoint: 'https://g.example/v2', api_key_env: K, service_code: '042'}", None),
    ("{type: open311, endpoint: 'https://g.example/v2', api_key: k, service_code: '042'}", "never put the Open311 api_key"),
    ("{type: open311, endpoint: 'https://g.example/v2', api_key_env: K}", "service_code is required"),
    ("{type: open311, api_key_env: K, service_code: 1}", "delivery.endpoint"),
    ("{type: fax}", "delivery.type must be one of"),
])
def test_delivery_config(tmp_path, delivery, problem):
    cfg_dir = tmp_path / "cfg"
    shutil.copytree(DEFAULT_CONFIG_DIR, cfg_dir)
    path = cfg_dir / "opds.yaml"
    text = path.read_text()
    marker = "  - code: DLH\n"
    assert marker in text
    line_no = text[: text.index(marker)].count("\n") + 1
    text = text.replace(marker, f"  - delivery: {delivery}\n    code: DLH\n")
    path.write_text(text)
    if problem is None:
        cfg = load_regency(cfg_dir)
        assert {o.code: o for o in cfg.opds}["DLH"].delivery["type"] in ("webhook", "email", "open311")
        return
    with pytest.raises(ConfigError) as exc:
        load_regency(cfg_dir)
    assert problem in str(exc.value) and "OPD DLH" in str(exc.value)
    assert exc.value.line == line_no and exc.value.path == path


def test_head_contact_must_be_an_address(tmp_path):
    cfg_dir = tmp_path / "cfg"
    shutil.copytree(DEFAULT_CONFIG_DIR, cfg_dir)
    path = cfg_dir / "opds.yaml"
    path.write_text(path.read_text().replace("  - code: DLH\n", "  - head_contact: 'Pak Kadis'\n    code: DLH\n"))
    with pytest.raises(ConfigError, match="head_contact must be an e-mail address"):
        load_regency(cfg_dir)


def test_shipped_config_delivers_pupr_by_email_and_the_rest_pull():
    cfg = load_regency(DEFAULT_CONFIG_DIR)
    kinds = {o.code: o.delivery.get("type", "pull") for o in cfg.opds}
    assert kinds.pop("PUPR") == "email"
    assert set(kinds.values()) == {"pull"}
