"""Works settings from config/<regency>/works.yaml (all optional, defaults below)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from hub.config import ConfigError, load_yaml


@dataclass(frozen=True)
class WorksSettings:
    link_distance_m: float = 250.0
    default_road_buffer_m: float = 15.0
    paid_ahead_margin_pct: float = 5.0
    silent_working_days: int = 10
    claim_vs_ground_pct: float = 50.0
    addenda_min_count: int = 1
    copy_to: str = "INSPEKTORAT"
    flag_urgency: str = "tinggi"


def works_settings(cfg) -> WorksSettings:
    path = Path(cfg.directory) / "works.yaml"
    if not path.is_file():
        return WorksSettings()
    data = load_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(path, 1, "expected a mapping of settings")
    known = {f.name: f.type for f in fields(WorksSettings)}
    out = {}
    for k, v in data.items():
        if k not in known:
            raise ConfigError(path, None, f"unknown setting {k!r}; use one of {', '.join(known)}")
        default = getattr(WorksSettings, k)
        try:
            out[k] = type(default)(v)
        except (TypeError, ValueError):
            raise ConfigError(path, None, f"{k}: {v!r} is not a {type(default).__name__}") from None
    return WorksSettings(**out)
