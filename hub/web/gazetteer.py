"""Kecamatan and desa names for the pages, from the regency config's wilayah.csv rows (read once there).

Display and pickers only: place recognition in free text is the normalizer's job, never here.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Wilayah:
    kecamatan: tuple[tuple[str, str], ...]  # (code, name), by name
    desa: dict[str, tuple[tuple[str, str], ...]]  # kecamatan code -> (code, name), by name
    names: dict[str, str]  # any code -> name

    def name(self, code: str | None) -> str:
        if not code:
            return "-"
        return self.names.get(code, code)

    def kecamatan_by_name(self, name: str) -> str | None:
        key = name.strip().lower()
        for code, n in self.kecamatan:
            if n.lower() == key:
                return code
        return None

    def desa_by_name(self, kec_code: str | None, name: str) -> str | None:
        key = name.strip().lower()
        for code, n in self.desa.get(kec_code or "", ()):
            if n.lower() == key:
                return code
        return None


def from_places(places: tuple[tuple[str, str, str], ...]) -> Wilayah:
    """Built from the config's parsed rows (hub.config.RegencyConfig.places)."""
    kec: list[tuple[str, str]] = []
    desa: dict[str, list[tuple[str, str]]] = {}
    names: dict[str, str] = {}
    for code, name, level in places:
        names[code] = name
        if level == "kecamatan":
            kec.append((code, name))
        elif level.startswith("desa"):
            desa.setdefault(code.rsplit(".", 1)[0], []).append((code, name))
    return Wilayah(kecamatan=tuple(sorted(kec, key=lambda x: x[1])),
                   desa={k: tuple(sorted(v, key=lambda x: x[1])) for k, v in desa.items()},
                   names=names)


@lru_cache(maxsize=4)
def _load(places: tuple[tuple[str, str, str], ...]) -> Wilayah:
    return from_places(places)


def load(config_dir: str) -> Wilayah:
    from hub.config import regency_config

    return _load(regency_config(str(config_dir)).places)


def wilayah() -> Wilayah:
    from hub.settings import get_settings

    return load(str(get_settings().config_dir))
