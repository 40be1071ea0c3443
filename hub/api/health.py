"""/healthz (process up), /readyz (database answers, no line stopped; degraded lines listed), /metrics
(Prometheus)."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

from hub import metrics, unreadable
from hub import readiness
from hub.db import get_engine
from hub.models import Ticket

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz():
    return {"status": "ok"}


@router.get("/readyz")
def readyz():
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
    lines = readiness.report()
    stopped = sorted(name for name, r in lines.items() if not r["running"])
    degraded = sorted(name for name, r in lines.items() if r["state"] == readiness.DEGRADED)
    if stopped:
        return JSONResponse({"status": "unavailable", "database": "ok", "lines": lines,
                             "stopped": stopped, "degraded": degraded}, status_code=503)
    if degraded:  # still taking messages: ready, but say what is not right
        return {"status": "degraded", "database": "ok", "lines": lines, "degraded": degraded}
    return {"status": "ok", "database": "ok", "lines": lines}


@router.get("/metrics")
def prometheus_metrics():
    try:
        t = Ticket.__table__
        with get_engine().connect() as conn:
            for status, n in conn.execute(select(t.c.status, func.count()).group_by(t.c.status)):
                metrics.TICKETS_BY_STATUS.labels(status=status).set(n)
        metrics.INTAKE_UNREADABLE.set(unreadable.count())
    except Exception:
        pass  # metrics must answer even when the database does not
    try:
        readiness.report()  # sets simpul_line_up
    except Exception:
        pass
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
