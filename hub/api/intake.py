"""POST /api/v1/intake/{channel}: JSON intake for operators and other systems."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator

from hub.auth import Principal, carries_api_key, require
from hub.api.deps import principal, regency_config
from hub.config import RegencyConfig
from hub.guard import InvalidMessage
from hub.unavailable import RETRY_AFTER_S
from normalizer.types import Attachment, InboundMessage

router = APIRouter(prefix="/api/v1", tags=["intake"])


class AttachmentIn(BaseModel):
    url: str = Field(max_length=2000)
    kind: str = Field(default="file", max_length=20)
    mime: str | None = Field(default=None, max_length=100)
    name: str | None = Field(default=None, max_length=200)


class IntakeIn(BaseModel):
    model_config = {"extra": "forbid"}
    text: str = Field(min_length=1, max_length=10_000, description="What the citizen reported")
    id: str | None = Field(default=None, max_length=200, description="Your id for this message (idempotency)")
    sender: str | None = Field(default=None, max_length=200, description="Phone number or other address")
    sender_name: str | None = Field(default=None, max_length=200)
    received_at: datetime | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=20)
    fields: dict[str, Any] = Field(default_factory=dict)

    @field_validator("text")
    @classmethod
    def not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text must not be blank")
        return v

    @field_validator("received_at")
    @classmethod
    def aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("received_at needs a timezone offset, e.g. 2026-11-28T10:00:00+07:00")
        return v


class IntakeOut(BaseModel):
    code: str
    duplicate: bool
    status_url: str


# Field keys the hub sets itself: a client may not claim a report is imported history (closed,
# never delivered, never answered) or already answered.
INTERNAL_FIELDS = {"imported", "receipt_sent", "held", "source"}


def to_message(channel: str, body: IntakeIn) -> InboundMessage:
    return InboundMessage(
        channel=channel, text=body.text, sender=body.sender, provider_id=body.id,
        received_at=body.received_at or datetime.now(timezone.utc), sender_name=body.sender_name,
        attachments=tuple(Attachment(**a.model_dump()) for a in body.attachments),
        latitude=body.latitude, longitude=body.longitude,
        fields={k: v for k, v in body.fields.items() if k not in INTERNAL_FIELDS},
    )


@router.post("/intake/{channel}", status_code=202, response_model=IntakeOut,
             responses={400: {"description": "bad input"}, 404: {"description": "unknown channel"},
                        503: {"description": "not stored; retry"}})
async def intake(channel: str, body: IntakeIn, request: Request,
                 who: Principal = Depends(principal), cfg: RegencyConfig = Depends(regency_config)):
    require(who, "intake", "admin", "operator")
    known = (cfg.channels.get("channels") or {}).keys()
    if channel not in known:
        raise HTTPException(404, f"unknown channel {channel!r}; known: {', '.join(sorted(known))}")
    msg = to_message(channel, body)
    try:
        accepted = await request.app.state.intake_writer.submit(msg)
    except InvalidMessage as exc:
        return JSONResponse({"detail": str(exc)}, status_code=422)
    except Exception:
        return JSONResponse({"detail": "message not stored, please retry"}, status_code=503,
                            headers={"Retry-After": str(RETRY_AFTER_S)})
    return IntakeOut(code=accepted.ticket_code, duplicate=accepted.duplicate,
                     status_url=f"/api/v1/tickets/{accepted.ticket_code}")


# The hot path. The FastAPI route above documents the endpoint in OpenAPI and serves callers
# that log in with a session. Requests that carry an API key (every system and provider) are
# answered by IntakeFastPath, the outermost plain ASGI middleware, which calls fast_intake inside
# RequestContext (request id, body limit, latency metric) and StoreGuard (503 when the store is
# down) but without the web's gzip and session middleware, Starlette's exception middleware,
# the router and per-request FastAPI dependency machinery: the same checks with the
# same answers (tests/web/test_web.py sends the same inputs through both). Intake is the one
# endpoint that must take thousands of messages a second in a disaster (bench/intake.py).
_BODY = TypeAdapter(IntakeIn)
_INTAKE_ROLES = ("intake", "admin", "operator")
INTAKE_PREFIX = "/api/v1/intake/"


def _error(status: int, detail: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=status)


async def fast_intake(request: Request) -> Response:
    try:
        who = await principal(request)
    except HTTPException as exc:
        return _error(exc.status_code, exc.detail)
    if who.role not in _INTAKE_ROLES:
        return _error(403, f"role {who.role} may not do this; needs one of {', '.join(_INTAKE_ROLES)}")
    channel = request.path_params["channel"]
    cfg = await regency_config()
    known = (cfg.channels.get("channels") or {}).keys()
    if channel not in known:
        return _error(404, f"unknown channel {channel!r}; known: {', '.join(sorted(known))}")
    try:
        body = _BODY.validate_json(await request.body())
    except ValidationError as exc:
        errors = [{"loc": ["body", *e.get("loc", ())], "msg": e.get("msg"), "type": e.get("type")}
                  for e in exc.errors(include_url=False)]
        status = 400 if any(e["type"] == "json_invalid" for e in errors) else 422
        return JSONResponse({"detail": "invalid request", "errors": errors}, status_code=status)
    try:
        accepted = await request.app.state.intake_writer.submit(to_message(channel, body))
    except InvalidMessage as exc:
        return _error(422, str(exc))
    except Exception:
        return JSONResponse({"detail": "message not stored, please retry"}, status_code=503,
                            headers={"Retry-After": str(RETRY_AFTER_S)})
    return Response(json.dumps({"code": accepted.ticket_code, "duplicate": accepted.duplicate,
                                "status_url": f"/api/v1/tickets/{accepted.ticket_code}"}),
                    status_code=202, media_type="application/json")


class _RouteLabel:
    """What RequestContext reads from scope["route"] for the latency metric's label."""

    path = "/api/v1/intake/{channel}"


class IntakeFastPath:
    """Pure ASGI, the outermost of the app's middleware (hub.app.create_app adds it last):
    POST /api/v1/intake/{channel} with an API key goes to fast_intake through `guarded`, the
    same request-id/body-limit/metric and store-down wrappers every other request passes
    (hub.app.RequestContext, hub.unavailable.StoreGuard), and past everything else: the web's
    gzip and session middleware, Starlette's exception middleware, the router, the dependencies."""

    def __init__(self, app, guarded=None):
        self.app = app
        self.fast = guarded(self._serve) if guarded is not None else self._serve

    @staticmethod
    async def _serve(scope, receive, send):
        response = await fast_intake(Request(scope, receive))
        await response(scope, receive, send)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith(INTAKE_PREFIX):
            channel = scope["path"][len(INTAKE_PREFIX):]
            if channel and "/" not in channel and carries_api_key(scope):
                scope["path_params"] = {"channel": channel}
                scope["route"] = _RouteLabel
                return await self.fast(scope, receive, send)
        return await self.app(scope, receive, send)
