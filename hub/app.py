"""The FastAPI application: API, webhooks, dashboard, and (in `simpul serve`) the workers."""
from __future__ import annotations

import time
import uuid
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.middleware.base import BaseHTTPMiddleware

from hub import __version__, metrics
from hub.config import regency
from hub.db import get_engine, session_scope
from hub.intake import IntakeWriter
from hub.logging import configure_logging, get_logger
from hub.seed import sync_opds
from hub.settings import Settings, get_settings

log = get_logger(__name__)


class RequestContext(BaseHTTPMiddleware):
    """Request id on every log line, latency metric, and a body size limit."""

    def __init__(self, app, max_body: int):
        super().__init__(app)
        self.max_body = max_body

    async def dispatch(self, request: Request, call_next):
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=rid)
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_body:
            return JSONResponse({"detail": f"body too large: {length} bytes, limit {self.max_body}"},
                                status_code=413, headers={"x-request-id": rid})
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.REQUEST_LATENCY.labels(request.method, path, str(response.status_code)).observe(
            time.perf_counter() - start)
        response.headers["x-request-id"] = rid
        return response


def create_app(settings: Settings | None = None, workers: bool | None = None) -> FastAPI:
    import hub.plugins  # noqa: F401  (registers routers, senders and jobs of the optional modules)

    settings = settings or get_settings()
    run_workers = settings.workers if workers is None else workers
    configure_logging(settings.log_level, settings.log_json)
    cfg = regency(str(settings.config_dir))  # a broken config stops start-up here

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        with session_scope() as s:
            sync_opds(s, cfg)
        app.state.intake_writer = IntakeWriter(get_engine(), dedup_window_s=settings.dedup_window_s)
        await app.state.intake_writer.start()
        for hook in STARTUP_HOOKS:
            await hook(app, settings)
        sched = None
        if run_workers:
            from hub.workers import start_scheduler

            sched = start_scheduler(settings)
        log.info("hub.started", version=__version__, database=get_engine().dialect.name, workers=run_workers)
        try:
            yield
        finally:
            if sched is not None:
                sched.shutdown(wait=False)
            for hook in SHUTDOWN_HOOKS:
                await hook(app, settings)
            await app.state.intake_writer.stop()

    app = FastAPI(title="Simpul", version=__version__, lifespan=lifespan,
                  description="Joins a regency's complaint lines into one stream of tickets.")
    app.state.settings = settings
    app.state.regency = cfg
    app.add_middleware(RequestContext, max_body=settings.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
                  for e in exc.errors()]
        status = 400 if any(e["type"] == "json_invalid" for e in errors) else 422
        return JSONResponse({"detail": "invalid request", "errors": errors}, status_code=status)

    from hub.api import health, intake, stats, tickets

    for r in (health.router, intake.router, tickets.router, stats.router):
        app.include_router(r)
    for extend in ROUTER_HOOKS:
        extend(app)
    return app


# Extension points for the lines, delivery and dashboard modules (imported by hub.plugins).
ROUTER_HOOKS: list = []
STARTUP_HOOKS: list = []
SHUTDOWN_HOOKS: list = []


def app_factory() -> FastAPI:
    return create_app()
