"""A fake SP4N-LAPOR! integration API: a real HTTP server on 127.0.0.1 for tests.

Built from what LAPOR! shows in public (tracking ids, status texts, admin actions, report types,
anonymous/rahasia flags) and the shape assumed in adapters/lapor.py. It can fail (HTTP 500,
timeouts, a refused token, a 200 whose body is not a page, as a proxy's error page is) and recover. Never used outside tests.
"""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

STATUS_UNVERIFIED = "Belum Terverifikasi"
STATUS_FOLLOWED_UP = "Ditindaklanjuti oleh Instansi"
STATUS_REPORTER_REPLIED = "Ditanggapi oleh Pelapor"
STATUS_AUTO_CLOSED = "Selesai otomatis dalam 10 hari"
ACTION_STATUS = {"tunda": "Ditunda", "bukan_wewenang": "Bukan Wewenang", "arsipkan": "Diarsipkan"}


def _iso(d: datetime) -> str:
    return d.astimezone(timezone.utc).isoformat()


class FakeLapor:
    """State and control of the fake. `url` is the base URL to give the adapter."""

    def __init__(self, token: str = "lapor-test-token", instansi: str = "Pemerintah Kabupaten Trenggalek"):
        self.token, self.instansi = token, instansi
        self.reports: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.follow_ups: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []
        # ("status", code, retry_after, message), ("sleep", seconds) or ("body", text, content type)
        self._failures: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self._clock = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True, name="fake-lapor")

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> "FakeLapor":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- what LAPOR! admins and reporters do ----------------------------------------------
    def tick(self, seconds: float = 60) -> datetime:
        self._clock += timedelta(seconds=seconds)
        return self._clock

    def submit(self, tracking_id: int | str, title: str, body: str, *, kind: str = "pengaduan",
               category: str = "Pekerjaan Umum dan Penataan Ruang", anonymous: bool = False,
               rahasia: bool = False, name: str | None = "Siti Rahayu", phone: str | None = "081234567890",
               location: str | None = None) -> dict[str, Any]:
        """A citizen files a report; it is invisible to instansi until an admin verifies it."""
        now = self.tick()
        rep = {"tracking_id": int(tracking_id), "judul": title, "isi": body, "jenis": kind,
               "kategori": category, "anonim": anonymous, "rahasia": rahasia,
               "pelapor": {"nama": name, "telepon": phone}, "lokasi": location,
               "instansi_tujuan": None, "status": STATUS_UNVERIFIED, "tanggal_lapor": _iso(now),
               "tanggal_disposisi": None, "diperbarui": _iso(now), "lampiran": [], "tanggapan": []}
        with self._lock:
            self.reports[str(tracking_id)] = rep
        return rep

    def verify(self, tracking_id: int | str, instansi: str | None = None) -> None:
        """LAPOR! admin action Verifikasi: dispositions the report to an instansi."""
        inst = instansi or self.instansi
        now = self.tick()
        with self._lock:
            rep = self.reports[str(tracking_id)]
            rep.update(instansi_tujuan=inst, status=f"Terdisposisi ke {inst}",
                       tanggal_disposisi=_iso(now), diperbarui=_iso(now))

    def reporter_replies(self, tracking_id: int | str, text: str) -> None:
        now = self.tick()
        with self._lock:
            rep = self.reports[str(tracking_id)]
            rep["tanggapan"].append({"dari": "pelapor", "isi": text, "waktu": _iso(now)})
            rep.update(status=STATUS_REPORTER_REPLIED, diperbarui=_iso(now))

    def auto_close(self, tracking_id: int | str) -> None:
        """10 working days passed after the follow-up without a reply from the reporter."""
        now = self.tick()
        with self._lock:
            self.reports[str(tracking_id)].update(status=STATUS_AUTO_CLOSED, diperbarui=_iso(now))

    # --- failure injection -----------------------------------------------------------------
    def fail_next(self, n: int = 1, status: int = 500, retry_after: str | None = None,
                  message: str = "Internal Server Error") -> None:
        """The next n requests answer `status` with {"message": message}, and a Retry-After
        header when `retry_after` is given (delta-seconds or an HTTP date, sent as is)."""
        with self._lock:
            self._failures.extend([("status", float(status), retry_after, message)] * n)

    def stall_next(self, n: int = 1, seconds: float = 2.0) -> None:
        """The next n requests answer only after `seconds` (a client timeout shorter than that fails)."""
        with self._lock:
            self._failures.extend([("sleep", seconds)] * n)

    def garble_next(self, n: int = 1, body: str = "<html><body>502 Bad Gateway</body></html>",
                    content_type: str = "text/html") -> None:
        """The next n requests answer 200 with `body` (a captive portal, a proxy's error page, a
        JSON shape we do not know)."""
        with self._lock:
            self._failures.extend([("body", body, content_type)] * n)

    def _next_failure(self) -> tuple[Any, ...] | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    # --- the HTTP side ---------------------------------------------------------------------
    def _visible(self, since: datetime | None) -> list[dict[str, Any]]:
        with self._lock:
            reps = [json.loads(json.dumps(r)) for r in self.reports.values()
                    if r["instansi_tujuan"] == self.instansi and r["status"] != STATUS_UNVERIFIED]
        if since is not None:
            reps = [r for r in reps if datetime.fromisoformat(r["diperbarui"]) >= since]
        reps.sort(key=lambda r: (r["diperbarui"], r["tracking_id"]))
        for r in reps:  # what LAPOR! itself never hands out
            if r["anonim"] or r["rahasia"]:
                r["pelapor"] = None
        return reps

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, code: int, body: Any, retry_after: str | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _body(self) -> dict[str, Any]:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                return json.loads(raw) if raw else {}

            def _common(self, method: str) -> tuple[Any, dict[str, Any]] | None:
                url = urlparse(self.path)
                body = self._body() if method == "POST" else {}
                fake.requests.append({"method": method, "path": url.path, "query": parse_qs(url.query),
                                      "headers": dict(self.headers), "json": body})
                failure = fake._next_failure()
                if failure and failure[0] == "sleep":
                    time.sleep(failure[1])
                elif failure and failure[0] == "body":
                    data = failure[1].encode()
                    self.send_response(200)
                    self.send_header("Content-Type", failure[2])
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return None
                elif failure:
                    self._send(int(failure[1]), {"message": failure[3]}, failure[2])
                    return None
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self._send(401, {"message": "token tidak valid"})
                    return None
                return url, body

            def do_GET(self):
                got = self._common("GET")
                if got is None:
                    return
                url, _ = got
                if url.path != "/api/v1/instansi/laporan":
                    return self._send(404, {"message": "not found"})
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                since = datetime.fromisoformat(q["diperbarui_sejak"]) if q.get("diperbarui_sejak") else None
                page, per = int(q.get("halaman", 1)), int(q.get("per_halaman", 50))
                reps = fake._visible(since)
                chunk = reps[(page - 1) * per: page * per]
                nxt = page + 1 if page * per < len(reps) else None
                self._send(200, {"data": chunk, "halaman_berikutnya": nxt, "total": len(reps)})

            def do_POST(self):
                got = self._common("POST")
                if got is None:
                    return
                url, body = got
                parts = url.path.strip("/").split("/")
                # api/v1/instansi/laporan/<id>/<tindak-lanjut|aksi>
                if len(parts) != 6 or parts[:4] != ["api", "v1", "instansi", "laporan"]:
                    return self._send(404, {"message": "not found"})
                tid, what = parts[4], parts[5]
                with fake._lock:
                    rep = fake.reports.get(tid)
                if rep is None or rep["instansi_tujuan"] != fake.instansi:
                    return self._send(404, {"message": f"laporan {tid} tidak ditemukan"})
                now = fake.tick()
                if what == "tindak-lanjut":
                    if not str(body.get("isi") or "").strip():
                        return self._send(422, {"message": "isi wajib diisi"})
                    with fake._lock:
                        rep["tanggapan"].append({"dari": "instansi", "isi": body["isi"], "waktu": _iso(now)})
                        rep.update(status=STATUS_FOLLOWED_UP, diperbarui=_iso(now))
                        fake.follow_ups.append({"tracking_id": tid, **body})
                        n = len(fake.follow_ups)
                    return self._send(201, {"id": f"tl-{n}", "status": rep["status"]})
                if what == "aksi":
                    action = body.get("aksi")
                    if action not in ("verifikasi", *ACTION_STATUS):
                        return self._send(422, {"message": f"aksi tidak dikenal: {action}"})
                    with fake._lock:
                        if action == "verifikasi":
                            rep["status"] = f"Terdisposisi ke {fake.instansi}"
                        else:
                            rep["status"] = ACTION_STATUS[action]
                        rep["diperbarui"] = _iso(now)
                        fake.actions.append({"tracking_id": tid, **body})
                        n = len(fake.actions)
                    return self._send(201, {"id": f"aksi-{n}", "status": rep["status"]})
                return self._send(404, {"message": "not found"})

        return Handler
