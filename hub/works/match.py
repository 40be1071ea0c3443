"""Pure matching of a citizen's report to a project: a project code or contract number in the
text, coordinates within a distance of the project's point or road line (the nearest wins), or
the project's name. Plain data in, a match out; no database."""
from __future__ import annotations

import re
from dataclasses import dataclass

from hub.works.geo import distance_to_project_m

# Words of project names that say what kind of work, not where: they do not identify a project.
GENERIC = set("""
pembangunan rehabilitasi rehab peningkatan pemeliharaan perbaikan pengadaan belanja jalan ruas jembatan
saluran drainase talud gedung kantor sekolah sd smp puskesmas pasar irigasi embung rumah kawasan lanjutan
tahap lokasi desa ds kec kecamatan kab kabupaten trenggalek dan di ke dari yang untuk pada dengan atau
kegiatan paket pekerjaan fisik konstruksi lingkungan dusun dsn rt rw jl km ii iii iv i baru lama umum negeri
sdn smpn smk sma tk paud mi mts
""".split())
WORKS_WORDS = re.compile(
    r"\b(proyek|projek|pembangunan|dibangun|bangunan|jalan|jembatan|aspal|pengaspalan|saluran|drainase|talud|"
    r"gedung|pekerjaan|dikerjakan|kontraktor|pemborong|material|mangkrak|galian|cor|betonisasi|paving|retak|"
    r"ambrol|rusak|irigasi|embung|plengsengan|tanggul|rehab|renovasi)\b")
NO_WORK = re.compile(
    r"(tidak ada (pekerjaan|pengerjaan|kegiatan|aktivitas|tukang|pekerja)|belum (ada )?(dikerjakan|dibangun|dimulai|"
    r"ada pekerjaan|ada pengerjaan|ada kegiatan)|tidak (pernah )?dikerjakan|mangkrak|fiktif|tidak ada yang kerja|"
    r"sepi tidak ada|belum ada tukang|tidak ada tukang|(tukang|pekerja) tidak ada|"
    r"(proyek|pekerjaan|pembangunan) (sepi|berhenti|terhenti|mandek))")


@dataclass(frozen=True)
class ProjectRef:
    id: int
    code: str
    name: str
    opd_code: str | None
    latitude: float | None = None
    longitude: float | None = None
    line: tuple[tuple[float, float], ...] | None = None
    buffer_m: float | None = None
    contracts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Match:
    project: ProjectRef
    method: str  # code | distance | name
    distance_m: float | None = None


def _canon(s: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", (s or "").lower()).split())


def name_tokens(name: str) -> set[str]:
    return {w for w in _canon(name).split() if w not in GENERIC and len(w) > 2 and not w.isdigit()}


def says_no_work(text: str) -> bool:
    return bool(NO_WORK.search((text or "").lower()))


def about_works(text: str) -> bool:
    return bool(WORKS_WORDS.search((text or "").lower()))


def match(text: str, lat: float | None, lon: float | None, projects: list[ProjectRef], max_m: float,
          default_buffer_m: float = 0.0) -> Match | None:
    t = _canon(text)
    words = set(t.split())
    raw = (text or "").lower()
    for p in projects:  # 1. a code the citizen copied from the project board
        if (p.code and len(p.code) >= 5 and p.code.lower() in words) or \
                any(c and len(c) >= 6 and c.lower() in raw for c in p.contracts):
            return Match(p, "code")
    if lat is not None and lon is not None:  # 2. where the citizen stands
        best: tuple[float, ProjectRef] | None = None
        for p in projects:
            d = distance_to_project_m(lat, lon, p.latitude, p.longitude, [list(x) for x in p.line] if p.line else None,
                                      p.buffer_m if p.buffer_m is not None else default_buffer_m)
            if d is not None and d <= max_m and (best is None or d < best[0]):
                best = (d, p)
        if best is not None:
            return Match(best[1], "distance", round(best[0], 1))
    scored = []  # 3. the project's name: its distinctive words (places, not 'jalan' or 'pembangunan')
    for p in projects:
        toks = name_tokens(p.name)
        if len(toks) >= 1:
            hit = len(toks & words)
            if hit >= min(2, len(toks)) and hit / len(toks) >= 0.66:
                scored.append((hit / len(toks), hit, p))
    if scored:
        scored.sort(key=lambda x: (-x[0], -x[1], x[2].id))
        if len(scored) == 1 or scored[0][:2] != scored[1][:2]:
            return Match(scored[0][2], "name")
    return None
