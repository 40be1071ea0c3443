"""Pure geometry and place helpers of the works register: distances in metres from a point to a
project's point or road line (with its buffer), and kecamatan/desa codes from a location text
(SiRUP's 'lokasi': 'Kec. Pogalan, Ds. Ngadirejo') using the regency's wilayah.csv."""
from __future__ import annotations

import csv
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

EARTH_M = 6_371_008.8


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_M * math.asin(min(1.0, math.sqrt(a)))


def _segment_m(lat: float, lon: float, a: Sequence[float], b: Sequence[float]) -> float:
    """Point to segment distance on a local equirectangular plane (exact enough below ~50 km)."""
    k = math.cos(math.radians(lat))
    ax, ay = (a[1] - lon) * k, a[0] - lat
    bx, by = (b[1] - lon) * k, b[0] - lat
    dx, dy = bx - ax, by - ay
    L = dx * dx + dy * dy
    t = 0.0 if L == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / L))
    px, py = ax + t * dx, ay + t * dy
    return math.radians(math.hypot(px, py)) * EARTH_M


def distance_to_project_m(lat: float, lon: float, p_lat: float | None, p_lon: float | None,
                          line: list[list[float]] | None, buffer_m: float | None) -> float | None:
    """Metres from (lat, lon) to the project: to its line minus the buffer (0 inside), else to
    its point. None when the project has no geometry."""
    if line and len(line) >= 2:
        d = min(_segment_m(lat, lon, line[i], line[i + 1]) for i in range(len(line) - 1))
        return max(0.0, d - float(buffer_m or 0))
    if p_lat is not None and p_lon is not None:
        return haversine_m(lat, lon, p_lat, p_lon)
    return None


def _canon(v: Any) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", str(v or "").lower()).split())


@lru_cache(maxsize=4)
def _wilayah(path: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    kec, desa = [], []
    p = Path(path)
    if not p.is_file():
        return kec, desa
    with p.open(encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r["level"] == "kecamatan":
                kec.append((r["kode"], _canon(r["nama"])))
            elif r["level"] == "desa_kelurahan":
                desa.append((r["kode"], _canon(r["nama"])))
    return kec, desa


def place_from_text(text: str | None, cfg) -> tuple[str | None, str | None]:
    """(kecamatan code, desa code) named in a location text; the longest name wins."""
    if not text:
        return None, None
    kec, desa = _wilayah(str(Path(cfg.directory) / "wilayah.csv"))
    t = f" {_canon(text)} "
    t = re.sub(r" (kab|kabupaten|pemkab|pemerintah kabupaten) [a-z]+ ", " ", t)  # the regency, not kec. Trenggalek
    marked = [(c, n) for c, n in kec if f" kec {n} " in t or f" kecamatan {n} " in t]
    k = max(marked or [(c, n) for c, n in kec if f" {n} " in t], key=lambda x: len(x[1]), default=(None, ""))[0]
    ds = [(c, n) for c, n in desa if f" {n} " in t and (k is None or c.startswith(k + "."))]
    d = max(ds, key=lambda x: len(x[1]), default=(None, ""))[0]
    if d and not k:
        k = d.rsplit(".", 1)[0]
    return k, d


def kecamatan_names(cfg) -> dict[str, str]:
    import csv as _csv

    out = {}
    p = Path(cfg.directory) / "wilayah.csv"
    if p.is_file():
        with p.open(encoding="utf-8") as f:
            for r in _csv.DictReader(f):
                if r["level"] in ("kecamatan", "desa_kelurahan"):
                    out[r["kode"]] = r["nama"]
    return out
