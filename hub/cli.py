"""The `simpul` command line (also `python -m hub`)."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from hub.config import ConfigError

app = typer.Typer(help="Simpul: one stream of public-complaint tickets for a regency.",
                  no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="People who log in.", no_args_is_help=True)
opd_app = typer.Typer(help="OPDs and their API keys.", no_args_is_help=True)
key_app = typer.Typer(help="API keys of OPD systems and intake systems.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(opd_app, name="opd")
opd_app.add_typer(key_app, name="key")
console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)  # one line, however narrow the terminal
    raise typer.Exit(code)


def _cfg():
    from hub.config import regency_config
    from hub.settings import get_settings

    from hub.normalizer_loader import load_normalizer_regency

    try:
        cfg = regency_config(str(get_settings().config_dir))
        load_normalizer_regency(get_settings().config_dir)  # routing rules: OPDs, LAPOR! categories
        return cfg
    except ConfigError as exc:
        _fail(f"broken config: {exc}")


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="Address to listen on"),
          port: int = typer.Option(8000, help="Port"),
          workers: bool = typer.Option(True, "--workers/--no-workers",
                                       help="Run intake processing, outbox and scheduled jobs"),
          in_process: Optional[bool] = typer.Option(
              None, "--in-process/--worker-process",
              help="Run that work inside the HTTP process, or in a `simpul worker` child process. "
                   "Default: a child process on PostgreSQL, in-process on SQLite")):
    """API, webhooks, dashboard, workers and scheduler from one command.

    On PostgreSQL the background work runs in a `simpul worker` child process, so accepting
    messages and turning them into tickets use two cores (one Python process uses one). On
    SQLite it stays in-process: SQLite has one writer, and two processes waiting on its lock
    cost more than they gain (measured with bench/intake.py). The child stops with the server."""

    import uvicorn

    from hub.app import create_app
    from hub.logging import UVICORN_LOG_CONFIG
    from hub.migrate import upgrade
    from hub.settings import get_settings

    settings = get_settings()
    _cfg()  # a broken config says so first (file and line), even when the port is busy too
    sock = _listen(host, port)  # before anything slow: a busy port is a one-line message at once
    upgrade()
    if in_process is None:
        in_process = settings.database_url.startswith("sqlite")
    child = None
    if workers and not in_process:
        child = _WorkerChild()
        child.start()
    try:
        server = uvicorn.Server(uvicorn.Config(create_app(settings, workers=workers and in_process, server_process=True),
                                               log_level="warning", access_log=False,
                                               log_config=UVICORN_LOG_CONFIG))
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        # once: the socket already listens, so a browser opened now waits for start-up instead of failing
        console.print(f"Simpul: open http://{shown}:{port}/ in a browser"
                      + (" (demo: log in as admin / simpul-demo)" if settings.demo else "") + " — Ctrl+C stops",
                      soft_wrap=True)
        server.run(sockets=[sock])
    finally:
        if child is not None:
            child.stop()


class _WorkerChild:
    """The `simpul worker` that `serve` runs beside it, started again (after a pause that grows
    to a minute) if it ever exits while serve runs: a worker that died would otherwise leave
    every accepted message pending until someone restarted the hub."""

    def __init__(self) -> None:
        import threading

        self.proc = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-child", daemon=True)

    def _spawn(self) -> None:
        import subprocess

        self.proc = subprocess.Popen([sys.executable, "-m", "hub", "worker"],
                                     env={**os.environ, "SIMPUL_SERVE_PID": str(os.getpid())})

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _watch(self) -> None:
        from hub.logging import get_logger

        log, pause = get_logger("hub.serve"), 1.0
        while not self._stopping.wait(1.0):
            code = self.proc.poll()
            if code is None:
                pause = 1.0
                continue
            log.warning("serve.worker_exited", code=code, restart_in_s=pause)
            if self._stopping.wait(pause):
                return
            pause = min(pause * 2, 60.0)
            self._spawn()

    def stop(self) -> None:
        import subprocess

        self._stopping.set()
        self._thread.join(5)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@app.command("backup")
def backup_cmd(out: Optional[Path] = typer.Option(None, "--out", help="Backup file (default: ./backups/simpul-<time>.db|.dump)")):
    """A consistent backup while the hub runs: SQLite online backup API, or pg_dump."""
    from datetime import datetime, timezone

    from hub.backup import backup
    from hub.settings import get_settings

    url = get_settings().database_url
    if out is None:
        ext = "db" if url.startswith("sqlite") else "dump"
        out = Path("backups") / f"simpul-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.{ext}"
    try:
        res = backup(url, out)
    except RuntimeError as exc:
        _fail(str(exc))
    console.print(f"backup of [bold]{_safe_url(url)}[/] written to {res.path} ({res.bytes:,} bytes, {res.seconds:.1f} s)")
    print(res.path)


@app.command("restore")
def restore_cmd(path: Path = typer.Argument(..., help="A file written by `simpul backup`"),
                into: str = typer.Option(..., "--into", help="URL of a new, empty store")):
    """Restore a backup into a new store (then point SIMPUL_DATABASE_URL at it)."""
    from hub.backup import restore

    try:
        restore(path, into)
    except RuntimeError as exc:
        _fail(str(exc))
    console.print(f"restored {path} into [bold]{_safe_url(into)}[/]")


def _listen(host: str, port: int):
    """The server's listening socket, or a one-line error when the port is taken."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            _fail(f"port {port} on {host} is already in use (another Simpul?). "
                  f"Stop that one, or choose another port: make run PORT={port + 80 if port < 65000 else 8080}"
                  f" / simpul serve --port {port + 80 if port < 65000 else 8080}")
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


@app.command()
def worker():
    """Background work only (intake processing, outbox, scheduled jobs), no HTTP.

    `simpul serve` starts one of these beside itself unless --in-process is given; more can run
    on other machines against the same PostgreSQL."""
    import asyncio

    from hub.workers import die_with_parent

    die_with_parent()  # before the slow start-up below: serve may be killed during it
    from hub.migrate import upgrade
    from hub.workers import run_forever

    _cfg()
    _upgrade_when_store_answers(upgrade)
    asyncio.run(run_forever(get_settings_()))


def _upgrade_when_store_answers(upgrade) -> None:
    """The worker's migration check, waiting (one warning every 30 s) while the store does not
    answer instead of exiting: a worker started during a database outage must still work off
    what is accepted once the database is back (hub.workers.run_forever waits the same way)."""
    import signal
    import time

    from sqlalchemy.exc import DBAPIError

    from hub.logging import configure_logging, get_logger

    settings = get_settings_()
    configure_logging(settings.log_level, settings.log_json)
    log = get_logger("hub.worker")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop while waiting; run_forever sets its own
    waited, last_log = 0, None
    while True:
        try:
            upgrade()
            return
        except DBAPIError as exc:
            if last_log is None or waited - last_log >= 30:
                log.warning("worker.store_unavailable_at_start", error=type(exc.orig).__name__, waited_s=waited)
                last_log = waited
            time.sleep(2)
            waited += 2


def get_settings_():
    from hub.settings import get_settings

    return get_settings()


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")):
    """Apply migrations."""
    from hub.migrate import upgrade
    from hub.settings import get_settings

    upgrade(revision=revision)
    console.print(f"database at [bold]{_safe_url(get_settings().database_url)}[/] is up to date")
    if revision == "head":
        _move_aliases()


def _move_aliases() -> None:
    from hub.db import session_scope
    from hub.seed import sync_opds
    from hub.tickets.aliases import move_alias_tickets

    cfg = _cfg()
    with session_scope() as s:
        sync_opds(s, cfg, move_aliases=False)
        moved = move_alias_tickets(s, cfg)
    console.print("open tickets on former OPD codes (aliases in opds.yaml) moved: "
                  + (", ".join(f"{k} {v}" for k, v in moved.items()) if moved else "none"))


@db_app.command("move-aliases")
def db_move_aliases():
    """Move open tickets on a former OPD code (an alias in opds.yaml, e.g. DISHUB -> PKPP) to its OPD."""
    _move_aliases()


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _prepared_session():
    from hub.db import session_scope
    from hub.seed import prepare_database

    prepare_database(_cfg())
    return session_scope


@users_app.command("add")
def users_add(username: str, role: str = typer.Option(..., help="admin, pimpinan, operator or opd"),
              opd: Optional[str] = typer.Option(None, help="OPD code (role opd)"),
              name: Optional[str] = typer.Option(None, help="Full name"),
              password: Optional[str] = typer.Option(None, help="Password (asked if not given)")):
    """Add a person who logs in to the dashboard."""
    from hub.auth import create_user

    scope = _prepared_session()
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with scope() as s:
            if opd and opd not in _cfg().opd_codes():
                _fail(f"unknown OPD {opd}")
            create_user(s, username, password, role, opd, name)
    except ValueError as exc:
        _fail(str(exc))
    console.print(f"user [bold]{username}[/] added with role {role}")


@users_app.command("unlock")
def users_unlock(username: str = typer.Argument(..., help="Lift every login lockout of this user name")):
    """Lift a person's login lockouts (from every address) and username limit."""
    from hub.web.security import unlock

    _prepared_session()
    n = unlock(username=username)
    console.print(f"{n} lockout(s) of {username} lifted" if n else f"{username} was not locked out")


@users_app.command("lockouts")
def users_lockouts():
    """List active login lockouts and login rate limits."""
    from hub.web.security import lockouts

    _prepared_session()
    rows = lockouts()
    if not rows:
        console.print("no active lockouts")
    for r in rows:
        typer.echo(f"{r['kind']}\t{r['username']}\t{r['source']}\t{r['left_s'] // 60 + 1} min left")


@key_app.command("create")
def key_create(name: str = typer.Argument(..., help="Who uses the key, e.g. 'SIMDA PUPR'"),
               opd: Optional[str] = typer.Option(None, help="OPD code: the key sees only this OPD"),
               role: str = typer.Option("opd", help="opd, intake or admin")):
    """Create an API key; it is printed once and stored only hashed."""
    from hub.auth import create_api_key

    scope = _prepared_session()
    if opd and opd not in _cfg().opd_codes():
        _fail(f"unknown OPD {opd}")
    try:
        with scope() as s:
            key = create_api_key(s, name, role, opd)
    except ValueError as exc:
        _fail(str(exc))
    console.print("API key (shown once, keep it secret):")
    typer.echo(key)


@key_app.command("revoke")
def key_revoke(prefix: str = typer.Argument(..., help="The part after 'sk_' and before the next '_'")):
    """Revoke an API key."""
    from hub.auth import revoke_api_key

    scope = _prepared_session()
    try:
        with scope() as s:
            revoke_api_key(s, prefix)
    except LookupError as exc:
        _fail(str(exc))
    console.print(f"key {prefix} revoked")


@app.command()
def demo(config_only: bool = typer.Option(False, "--config-only", help="Only the config and demo users"),
         password: str = typer.Option("simpul-demo", help="Password of the demo users")):
    """Load the Trenggalek demo config and a day of realistic sample traffic."""
    from hub.demo import load_demo

    _wire_process()
    scope = _prepared_session()
    report = load_demo(scope, _cfg(), password=password, traffic=not config_only)
    for line in report:
        console.print(line)


def _wire_process() -> None:
    """Commands that turn messages into tickets do it as a running hub does: through the wired
    parts' draft hooks and senders (hub.wiring), e.g. the works register linking reports."""
    from hub.settings import get_settings
    from hub.wiring import install, wire

    install(wire(get_settings()))


def _register_extras() -> None:
    """Commands owned by other modules (normalizer tools, importers)."""
    from hub.lines.hotline.cli import import_app
    from hub.lines.twilio.cli import whatsapp_app
    from hub.cli_router import router_app, triage
    from hub.works.cli import works_app

    app.command("triage", help="Classify JSON lines: category, OPD, place, urgency.")(triage)
    app.add_typer(router_app, name="router", help="Teach the router from labelled history.")
    app.add_typer(import_app, name="import", help="Import old hotline logs (CSV/XLSX).",
                  callback=_wire_process)
    app.add_typer(whatsapp_app, name="whatsapp", help="WhatsApp templates on Twilio (docs/sms.md).")
    app.add_typer(works_app, name="works", callback=_wire_process,
                  help="Public works: LKPP import, red flags, contractor keys (docs/works.md).")


_register_extras()


def main() -> None:
    from hub.logging import configure_logging
    from hub.settings import get_settings

    configure_logging(get_settings().log_level, get_settings().log_json)
    try:
        app()
    except ConfigError as exc:
        console.print(f"[bold red]error:[/] broken config: {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
