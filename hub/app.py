"""The FastAPI application: API, webhooks, dashboard, and (in `simpul serve`) the workers."""
from __future__ import annotations

import os
import time
from contextlib import asynccontextmanager
from typing import Callable, Sequence

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from hub import __version__, metrics
from hub.config import regency_config
from hub.db import get_engine, session_scope
from hub.intake import IntakeWriter
from hub.parts import Line
from hub.runtime import warm_and_freeze
from hub.logging import configure_logging, get_logger
from hub.seed import sync_opds
from hub.settings import Settings, get_settings
from hub.wiring import FEATURES, LINES, install, wire

log = get_logger(__name__)


class RequestContext:
    """Request id on every log line, latency metric, and a body size limit (pure ASGI: this
    runs on every intake request, so no BaseHTTPMiddleware overhead)."""

    def __init__(self, app, max_body: int, body_limits: dict[str, int] | None = None):
        self.app = app
        self.max_body = max_body
        self.body_limits = body_limits or {}  # path prefix -> larger limit (photo uploads)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        # 16 random hex digits (uuid4().hex[:16] built a UUID object for the same thing)
        rid = (headers.get(b"x-request-id") or b"").decode("latin-1")[:64] or os.urandom(8).hex()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=rid)
        length = headers.get(b"content-length", b"")
        max_body = body_limit(scope.get("path", ""), self.max_body, self.body_limits)
        if length.isdigit() and int(length) > max_body:
            resp = JSONResponse({"detail": f"body too large: {int(length)} bytes, limit {max_body}"},
                                status_code=413, headers={"x-request-id": rid})
            return await resp(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}
        seen = {"bytes": 0}

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
                if seen["bytes"] > max_body:
                    raise BodyTooLarge()
            return message

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except BodyTooLarge:
            resp = JSONResponse({"detail": f"body too large: limit {max_body} bytes"}, status_code=413,
                                headers={"x-request-id": rid})
            await resp(scope, receive, send)
            status["code"] = 413
        label = (scope["method"], getattr(scope.get("route"), "path", "unmatched"), status["code"])
        child = _latency.get(label)
        if child is None:  # prometheus_client's labels() takes a lock and checks the names every time
            child = metrics.REQUEST_LATENCY.labels(label[0], label[1], str(label[2]))
            if len(_latency) < 4096:
                _latency[label] = child
        child.observe(time.perf_counter() - start)


_latency: dict[tuple[str, str, int], object] = {}  # (method, route, status) -> its latency histogram


class BodyTooLarge(Exception):
    pass


def body_limit(path: str, default: int, limits: dict[str, int]) -> int:
    """The body limit of a path: a wired part's larger limit for its prefix, else the default."""
    for prefix, limit in limits.items():
        if path.startswith(prefix):
            return limit
    return default


def create_app(settings: Settings | None = None, workers: bool | None = None,
               server_process: bool = False, lines: Sequence[Callable[[Settings], Line]] = LINES,
               features: Sequence[Callable[[Settings], Line]] = FEATURES) -> FastAPI:
    """`server_process`: this is the long-running `simpul serve` process: freeze the start-up
    heap (hub.runtime) and keep the dashboard's counts warm (hub.web.warm). Tests leave it off.
    `lines` / `features`: what to wire (hub.wiring); every line and feature by default."""
    settings = settings or get_settings()
    run_workers = settings.workers if workers is None else workers
    configure_logging(settings.log_level, settings.log_json)
    cfg = regency_config(str(settings.config_dir))  # a broken config stops start-up here
    from hub.normalizer_loader import load_normalizer_regency

    # ... and so do routing rules naming an unknown OPD or LAPOR! category (they used to pass
    # start-up and then fail every processing batch)
    load_normalizer_regency(settings.config_dir)
    wired = wire(settings, lines, features)
    install(wired)  # the outbox sends through these lines' and features' senders

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        with session_scope() as s:
            sync_opds(s, cfg)
        app.state.intake_writer = IntakeWriter(get_engine(), dedup_window_s=settings.dedup_window_s)
        await app.state.intake_writer.start()
        for hook in wired.startup:
            await hook(app, settings)
        sched = None
        if run_workers:
            from hub.workers import start_scheduler

            sched = start_scheduler(settings, wired.periodic)
        if server_process:
            warm_and_freeze(warm_normalizer=run_workers)
        log.info("hub.started", version=__version__, database=get_engine().dialect.name, workers=run_workers)
        try:
            yield
        finally:
            if sched is not None:
                sched.shutdown(wait=False)
            for hook in wired.shutdown:
                await hook(app, settings)
            await app.state.intake_writer.stop()

    # FastAPI's own OpenTelemetry instrumentation is off unless asked for: Simpul exports its
    # metrics at /metrics, and the check alone cost ~4% of an intake request's CPU.
    otel = {} if settings.otel_telemetry else {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(title="Simpul", version=__version__, lifespan=lifespan, telemetry=otel,
                  description="Joins a regency's complaint lines into one stream of tickets.")
    app.state.settings = settings
    app.state.server_process = server_process
    app.state.regency = cfg
    app.state.wiring = wired
    app.state.session_resolvers = list(wired.session_resolvers)  # hub.auth asks them in turn
    from hub.api.intake import IntakeFastPath

    from hub.unavailable import StoreGuard

    def guarded(inner):
        """What wraps every request: request id, body limit and latency metric (RequestContext),
        database down -> 503 + Retry-After and bad message -> 422 (StoreGuard)."""
        return RequestContext(StoreGuard(inner), max_body=settings.max_body_bytes, body_limits=wired.body_limits)

    app.add_middleware(StoreGuard)
    app.add_middleware(RequestContext, max_body=settings.max_body_bytes, body_limits=wired.body_limits)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
                  for e in exc.errors()]
        status = 400 if any(e["type"] == "json_invalid" for e in errors) else 422
        return JSONResponse({"detail": getattr(exc, "sentence", "invalid request"), "errors": errors},
                            status_code=status)

    from hub.api import errors, health, intake, stats, tickets

    errors.install(app)  # hub.tickets errors → 400/403/404/409/422

    for r in (health.router, intake.router, tickets.router, stats.router, *wired.routers):
        app.include_router(r)
    for install_part in wired.installs:
        install_part(app)
    # Added last, so it is the outermost of the app's middleware: API-key intake requests take
    # their own guarded() chain (the same RequestContext and StoreGuard) straight to the endpoint,
    # past the web's gzip and session middleware that the parts above installed.
    app.add_middleware(IntakeFastPath, guarded=guarded)
    return app


def app_factory() -> FastAPI:
    return create_app()
