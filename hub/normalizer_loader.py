"""Loads the normalizer's knowledge of the regency (normalizer.knowledge.Regency): the
gazetteer, taxonomy, routing rules and OPDs from the regency config, and the newest learned
router model from the database; caches the built Regency. Never classifies anything itself
(that is normalizer's job).

Names: hub.config.regency_config is the regency's configuration (RegencyConfig);
normalizer.knowledge.Regency is what the normalizer knows about the regency; this module
builds the second from the first."""
from __future__ import annotations

import json
import re
import threading
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from hub.config import ConfigError, _node_lines, load_yaml, regency_config
from hub.models import RouterModel
from hub.settings import get_settings
from normalizer import Regency, RegencyConfigError, build_regency

_lock = threading.Lock()
_cache: dict[tuple[str, object], Regency] = {}
_CACHE_MAX = 4


def _read_config(config_dir: Path) -> tuple[str, dict, dict, list[dict], str]:
    config_dir = Path(config_dir)
    wpath = config_dir / "wilayah.csv"
    wilayah = regency_config(str(config_dir)).wilayah_csv  # read once, by the regency config
    if wilayah is None:
        raise ConfigError(wpath, None, "file not found")
    cpath = config_dir / "lapor_categories.json"
    try:
        categories = json.loads(cpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(cpath, None, "file not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(cpath, exc.lineno, f"invalid JSON: {exc.msg}") from None
    rpath = config_dir / "routing.yaml"
    routing = load_yaml(rpath) or {}
    if not isinstance(routing, dict):
        raise ConfigError(rpath, 1, "routing.yaml must be a mapping")
    opath = config_dir / "opds.yaml"
    opds_doc = load_yaml(opath) or {}
    if not isinstance(opds_doc, dict) or not isinstance(opds_doc.get("opds"), list):
        raise ConfigError(opath, 1, "expected a mapping with 'opds:'")
    return wilayah, categories, routing, opds_doc["opds"], str(opds_doc.get("triage_opd", "DISKOMINFO"))


def load_normalizer_regency(config_dir: Path, learned: dict | None = None, cache_key: object = None) -> Regency:
    """Build (or reuse) the Regency for a config directory and an optional learned model.

    Cached by (config_dir, cache_key or id(learned)); a rule naming an unknown OPD or category
    raises ConfigError pointing at routing.yaml."""
    key = (str(Path(config_dir).resolve()), cache_key if cache_key is not None else id(learned) if learned else None)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            return hit
    wilayah, categories, routing, opds, triage = _read_config(Path(config_dir))
    try:
        reg = build_regency(wilayah, categories, routing, opds, triage, learned=learned)
    except RegencyConfigError as exc:
        rpath = Path(config_dir) / "routing.yaml"
        raise ConfigError(rpath, _line_in_routing(rpath, str(exc)), str(exc)) from None
    with _lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.pop(next(iter(_cache)))
        _cache[key] = reg
    return reg


_WHERE = re.compile(r"(rules)\[(\d+)\](?: near\[(\d+)\])?|(channel_defaults|incident_types|opd_categories)\.([^\s:]+)"
                    r"|(sms_keywords)")


def _line_in_routing(path: Path, problem: str) -> int | None:
    """The routing.yaml line a normalizer config error is about (the category line if any)."""
    m = _WHERE.search(problem)
    if m is None:
        return None
    if m.group(1):
        at: tuple = ("rules", int(m.group(2))) + (("near", int(m.group(3))) if m.group(3) else ())
    elif m.group(4):
        at = (m.group(4), m.group(5))
    else:
        at = (m.group(6),)
    try:
        lines = _node_lines(path)
    except Exception:
        return None
    for key in ("subcategory" if "subcategory" in problem else "category", "opd"):
        if at + (key,) in lines and key in problem.lower():
            return lines[at + (key,)]
    while at and at not in lines:
        at = at[:-1]
    return lines.get(at)


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def newest_model(session) -> RouterModel | None:
    """The newest learned router model, or None (also when the table does not exist yet)."""
    try:
        return session.scalars(select(RouterModel).order_by(RouterModel.id.desc()).limit(1)).first()
    except SQLAlchemyError:
        return None


def current_regency(session) -> Regency:
    """The Regency live routing uses: config rules plus the newest learned model, if any."""
    config_dir = get_settings().config_dir
    try:  # look at the newest model's id first: its (large) JSON is only read when it changed
        head = session.execute(select(RouterModel.id, RouterModel.examples)
                               .order_by(RouterModel.id.desc()).limit(1)).first()
    except SQLAlchemyError:
        head = None
    if head is None:
        return load_normalizer_regency(config_dir)
    key = ("router_model", head[0], head[1])
    with _lock:
        hit = _cache.get((str(Path(config_dir).resolve()), key))
    if hit is not None:
        return hit
    row = session.get(RouterModel, head[0])
    if row is None or not row.model:
        return load_normalizer_regency(config_dir)
    return load_normalizer_regency(config_dir, learned=row.model, cache_key=key)
