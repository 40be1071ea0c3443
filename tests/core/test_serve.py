"""`simpul serve` as users start it: a real server process, with its background work in a
`simpul worker` child process, turns an HTTP intake into a ticket and stops cleanly."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_with_worker_process_makes_tickets_and_stops_its_child(tmp_path, sqlite_url, make_key):
    # the database: a copy of the session's migrated template (conftest), keys made in-process;
    # `simpul db upgrade` and `simpul opd key create` as commands are tests/core/test_cli.py's
    env = {**os.environ, "SIMPUL_DATABASE_URL": sqlite_url, "SIMPUL_LOG_LEVEL": "INFO", "SIMPUL_LOG_JSON": "true"}
    h = make_key("intake", name="t")
    reader_h = make_key("admin", name="r")  # intake keys read nothing
    port = _free_port()
    log_path = tmp_path / "serve.log"
    server = subprocess.Popen([sys.executable, "-m", "hub", "serve", "--port", str(port), "--worker-process"],
                              env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log_path.open("w"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        r = httpx.post(f"{base}/api/v1/intake/api", headers=h,
                       json={"text": "Jalan berlubang di desa Ngadirenggo kec. Pogalan", "id": "serve-1"})
        assert r.status_code == 202
        code = r.json()["code"]
        deadline = time.time() + 60
        status = None
        while time.time() < deadline:
            status = httpx.get(f"{base}/api/v1/tickets/{code}", headers=reader_h).status_code
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200, "the worker process did not turn the message into a ticket"
        children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 1
        # the worker yields the CPU to the HTTP process in a flood (hub.workers.run_forever)
        assert os.getpriority(os.PRIO_PROCESS, int(children[0])) == os.getpriority(os.PRIO_PROCESS, server.pid) + 10
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    deadline = time.time() + 5
    while time.time() < deadline and subprocess.run(["ps", "-p", children[0]], capture_output=True).returncode == 0:
        time.sleep(0.1)
    assert subprocess.run(["ps", "-p", children[0]], capture_output=True).returncode != 0, "worker left running"
    # Both processes moved their start-up heap out of the collector's sight (hub/runtime.py):
    # without it, full collections paused intake for ~90 ms under load.
    frozen = [json.loads(line)["objects"] for line in log_path.read_text().splitlines()
              if '"runtime.heap_frozen"' in line]
    assert len(frozen) == 2 and min(frozen) > 10_000, frozen
    # the server process primed the dashboard's counts in the background (hub/web/warm.py)
    assert '"dashboard.warmed"' in log_path.read_text()


def test_worker_child_stops_when_serve_is_killed_outright(tmp_path, sqlite_url):
    env = {**os.environ, "SIMPUL_DATABASE_URL": sqlite_url, "SIMPUL_LOG_LEVEL": "WARNING"}
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "hub", "serve", "--port", str(port), "--worker-process"],
                              env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: list[str] = []
    deadline = time.time() + 60
    while time.time() < deadline and not children:
        children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
        time.sleep(0.1)
    assert children, "serve started no worker"
    server.kill()  # no chance to clean up
    server.wait(10)
    deadline = time.time() + 15
    while time.time() < deadline and subprocess.run(["ps", "-p", children[0]], capture_output=True).returncode == 0:
        time.sleep(0.1)
    assert subprocess.run(["ps", "-p", children[0]], capture_output=True).returncode != 0, "orphaned worker"


def _children(pid: int) -> list[str]:
    return subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()


def test_serve_starts_its_worker_again_when_it_dies(tmp_path, sqlite_url):
    """A worker that died (OOM killer, a crash) would leave every accepted message pending until
    someone restarted the hub: serve starts it again."""
    env = {**os.environ, "SIMPUL_DATABASE_URL": sqlite_url, "SIMPUL_LOG_LEVEL": "WARNING", "SIMPUL_LOG_JSON": "true"}
    log_path = tmp_path / "serve.log"
    server = subprocess.Popen([sys.executable, "-m", "hub", "serve", "--port", str(_free_port()), "--worker-process"],
                              env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log_path.open("w"))
    try:
        deadline, first = time.time() + 60, []
        while time.time() < deadline and not first:
            first = _children(server.pid)
            time.sleep(0.1)
        assert first, "serve started no worker"
        os.kill(int(first[0]), signal.SIGKILL)
        deadline, again = time.time() + 30, []
        while time.time() < deadline and not (again and again != first):
            again = _children(server.pid)
            time.sleep(0.1)
        assert again and again != first, "the dead worker was not started again"
        assert '"serve.worker_exited"' in log_path.read_text()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)


def test_a_worker_started_while_the_store_is_down_waits_for_it(tmp_path):
    """`simpul worker` on a PostgreSQL that does not answer (here: a closed port) keeps waiting
    with one warning instead of exiting, and still stops at SIGTERM."""
    env = {**os.environ, "SIMPUL_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/none",
           "SIMPUL_LOG_LEVEL": "WARNING", "SIMPUL_LOG_JSON": "true"}
    log_path = tmp_path / "worker.log"
    worker = subprocess.Popen([sys.executable, "-m", "hub", "worker"], env=env, cwd=ROOT,
                              stdout=log_path.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and '"worker.store_unavailable_at_start"' not in log_path.read_text():
            assert worker.poll() is None, log_path.read_text()[-2000:]
            time.sleep(0.3)
        assert '"worker.store_unavailable_at_start"' in log_path.read_text()
        time.sleep(3)
        assert worker.poll() is None, "the worker exited while the store was down"
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
