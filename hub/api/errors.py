"""One place where domain errors become HTTP answers (routes raise, never translate).

hub.tickets errors carry their meaning, not a status code a route picks: IllegalMove → 409 with
the moves that are allowed, NotFound → 404, Forbidden → 403, InvalidValue → 422, any other
TicketError (a refused change, a bad cursor) → 400. The answer is {"detail": message} as
FastAPI's own HTTPException, so clients see one shape.
"""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from hub.tickets.errors import IllegalMove, TicketError


def ticket_error_response(exc: TicketError) -> JSONResponse:
    body: dict = {"detail": str(exc)}
    if isinstance(exc, IllegalMove) and exc.allowed:
        body["allowed"] = exc.allowed
    return JSONResponse(body, status_code=exc.status_code)


def install(app: FastAPI) -> None:
    """Register the domain-error handler on the app (hub.app.create_app calls this)."""

    @app.exception_handler(TicketError)
    async def ticket_error(request: Request, exc: TicketError) -> JSONResponse:
        return ticket_error_response(exc)
