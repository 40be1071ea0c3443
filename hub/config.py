"""Loads the regency configuration (YAML in the config directory) with precise errors.

A broken file stops start-up with the file, the line and what is wrong.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import yaml


class ConfigError(Exception):
    def __init__(self, path: Path, line: int | None, problem: str):
        self.path, self.line, self.problem = path, line, problem
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}")


def _line_of(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def load_yaml(path: Path) -> Any:
    """Parse one YAML file; syntax errors become ConfigError with the line number."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(path, line, f"invalid YAML: {exc.problem}") from None


def _node_lines(path: Path) -> dict[tuple[Any, ...], int]:
    """Map of key paths to line numbers, so validation errors can point at a line."""
    lines: dict[tuple[Any, ...], int] = {}

    def walk(node: yaml.Node, at: tuple[Any, ...]) -> None:
        lines[at] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                walk(v, at + (k.value,))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, at + (i,))

    root = yaml.compose(path.read_text(encoding="utf-8"))
    if root is not None:
        walk(root, ())
    return lines


def _require(cond: bool, path: Path, lines: dict, at: tuple, problem: str) -> None:
    if not cond:
        line = None
        probe = at
        while probe and probe not in lines:
            probe = probe[:-1]
        line = lines.get(probe)
        raise ConfigError(path, line, problem)


@dataclass(frozen=True)
class OpdConfig:
    code: str
    name: str
    kind: str = "dinas"
    head_contact: str | None = None
    delivery: dict[str, Any] = field(default_factory=dict)
    tasks: tuple[str, ...] = ()  # what the OPD handles, in the regency's words (triage screen, docs)
    aliases: tuple[str, ...] = ()  # other codes/names meaning this OPD (DISHUB -> PKPP in 2026)


@dataclass(frozen=True)
class RegencyConfig:
    directory: Path
    opds: tuple[OpdConfig, ...]
    triage_opd: str
    channels: dict[str, Any]
    sla: dict[str, Any]
    templates: dict[str, str]

    def opd_codes(self) -> set[str]:
        return {o.code for o in self.opds}

    # The gazetteer, wilayah.csv (kode, nama, level), read once per loaded config and handed to
    # whoever needs it: the normalizer (its text), the pages, the hotline line, e-mails, Open311.
    @cached_property
    def wilayah_csv(self) -> str | None:
        """The text of wilayah.csv, or None when the config has none."""
        try:
            return (self.directory / "wilayah.csv").read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    @cached_property
    def places(self) -> tuple[tuple[str, str, str], ...]:
        """wilayah.csv as (kode, nama, level) rows, stripped; () without the file."""
        rows = csv.DictReader(io.StringIO(self.wilayah_csv or ""))
        return tuple(((r.get("kode") or "").strip(), (r.get("nama") or "").strip(), (r.get("level") or "").strip())
                     for r in rows if r.get("kode"))

    @cached_property
    def place_names(self) -> dict[str, str]:
        """Any place code -> its name."""
        return {code: name for code, name, _ in self.places}

    @cached_property
    def region_label(self) -> str:
        """The regency's own name ("Kabupaten Trenggalek"), from wilayah.csv; "daerah" without it."""
        return next((name for _, name, level in self.places if level in ("kabupaten", "kota")), "daerah")

    def template(self, name: str, **values: Any) -> str:
        return self.templates[name].format(**values)


def delivery_problem(d: dict[str, Any]) -> str | None:
    """What is missing from one OPD's delivery config, or None. Secrets are only ever named
    (secret_env, api_key_env: the environment variable that holds them), never written here."""
    kind = d.get("type")
    url_ok = lambda v: isinstance(v, str) and v.startswith(("http://", "https://"))  # noqa: E731
    if kind == "webhook":
        if not url_ok(d.get("url")):
            return "delivery.url must be an http(s) URL for a webhook"
        if "secret" in d:
            return "never put the webhook secret in YAML: name its environment variable in delivery.secret_env"
        if not isinstance(d.get("secret_env"), str) or not d["secret_env"]:
            return "delivery.secret_env must name the environment variable holding the whsec_ secret"
    elif kind == "email":
        to = d.get("to")
        to = [to] if isinstance(to, str) else to
        if not isinstance(to, list) or not to or not all(isinstance(a, str) and "@" in a for a in to):
            return "delivery.to must be an e-mail address or a list of them"
    elif kind == "open311":
        if not url_ok(d.get("endpoint")):
            return "delivery.endpoint must be the http(s) base URL of the GeoReport v2 server"
        if "api_key" in d:
            return "never put the Open311 api_key in YAML: name its environment variable in delivery.api_key_env"
        if not isinstance(d.get("api_key_env"), str) or not d["api_key_env"]:
            return "delivery.api_key_env must name the environment variable holding the api_key"
        if d.get("service_code") in (None, ""):
            return "delivery.service_code is required for open311"
    if "timeout_s" in d and not (isinstance(d["timeout_s"], (int, float)) and 0 < d["timeout_s"] <= 120):
        return "delivery.timeout_s must be a number of seconds between 0 and 120"
    return None


def _load_opds(path: Path) -> tuple[tuple[OpdConfig, ...], str]:
    data = load_yaml(path)
    lines = _node_lines(path)
    _require(isinstance(data, dict), path, lines, (), "expected a mapping with 'opds:'")
    items = data.get("opds")
    _require(isinstance(items, list) and items, path, lines, ("opds",), "'opds' must be a non-empty list")
    opds, seen = [], set()
    for i, item in enumerate(items):
        _require(isinstance(item, dict), path, lines, ("opds", i), "each OPD must be a mapping")
        code, name = item.get("code"), item.get("name")
        _require(isinstance(code, str) and code.strip() != "", path, lines, ("opds", i), "OPD needs a 'code'")
        _require(isinstance(name, str) and name.strip() != "", path, lines, ("opds", i), f"OPD {code} needs a 'name'")
        _require(code not in seen, path, lines, ("opds", i), f"duplicate OPD code {code}")
        delivery = item.get("delivery") or {"type": "pull"}
        _require(isinstance(delivery, dict) and delivery.get("type") in {"pull", "webhook", "email", "open311"},
                 path, lines, ("opds", i, "delivery"),
                 f"OPD {code}: delivery.type must be one of pull, webhook, email, open311")
        problem = delivery_problem(delivery)
        _require(problem is None, path, lines, ("opds", i, "delivery"), f"OPD {code}: {problem}")
        head = item.get("head_contact")
        _require(head is None or (isinstance(head, str) and "@" in head), path, lines, ("opds", i, "head_contact"),
                 f"OPD {code}: head_contact must be an e-mail address")
        for key in ("tasks", "aliases"):
            v = item.get(key)
            _require(v is None or (isinstance(v, list) and all(isinstance(x, str) and x.strip() for x in v)),
                     path, lines, ("opds", i, key), f"OPD {code}: {key} must be a list of texts")
        seen.add(code)
        opds.append(OpdConfig(code=code, name=name, kind=item.get("kind", "dinas"),
                              head_contact=item.get("head_contact"), delivery=delivery,
                              tasks=tuple(item.get("tasks") or ()), aliases=tuple(item.get("aliases") or ())))
    triage = data.get("triage_opd", "DISKOMINFO")
    _require(triage in seen, path, lines, ("triage_opd",), f"triage_opd {triage!r} is not a listed OPD")
    return tuple(opds), triage


def _load_mapping(path: Path, name: str) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = load_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(path, 1, f"{name} must be a mapping")
    return data


def load_regency(directory: Path) -> RegencyConfig:
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(directory, None, "config directory not found")
    opds, triage = _load_opds(directory / "opds.yaml")
    templates = _load_mapping(directory / "templates.yaml", "templates")
    tpath = directory / "templates.yaml"
    for key, value in templates.items():
        if not isinstance(value, str):
            raise ConfigError(tpath, _node_lines(tpath).get((key,)), f"template {key!r} must be a string")
    return RegencyConfig(
        directory=directory,
        opds=opds,
        triage_opd=triage,
        channels=_load_mapping(directory / "channels.yaml", "channels"),
        sla=_load_mapping(directory / "sla.yaml", "sla"),
        templates=templates,
    )


@lru_cache(maxsize=8)
def regency_config(directory: str) -> RegencyConfig:
    """The regency's configuration (OPDs, lines, SLA, templates, gazetteer), loaded once per directory."""
    return load_regency(Path(directory))
