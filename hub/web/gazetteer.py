"""Kecamatan and desa names for the pages, read once from the regency's wilayah.csv.

Display and pickers only: place recognition in free text is the normalizer's job, never here.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


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


@lru_cache(maxsize=4)
def load(config_dir: str) -> Wilayah:
    kec: list[tuple[str, str]] = []
    desa: dict[str, list[tuple[str, str]]] = {}
    names: dict[str, str] = {}
    with open(Path(config_dir) / "wilayah.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            code, name, level = row["kode"].strip(), row["nama"].strip(), row["level"].strip()
            names[code] = name
            if level == "kecamatan":
                kec.append((code, name))
            elif level.startswith("desa"):
                desa.setdefault(code.rsplit(".", 1)[0], []).append((code, name))
    return Wilayah(kecamatan=tuple(sorted(kec, key=lambda x: x[1])),
                   desa={k: tuple(sorted(v, key=lambda x: x[1])) for k, v in desa.items()},
                   names=names)


def wilayah() -> Wilayah:
    from hub.settings import get_settings

    return load(str(get_settings().config_dir))
