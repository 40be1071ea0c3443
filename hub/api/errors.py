"""One place where domain errors become HTTP answers (routes raise, never translate).

hub.tickets errors carry their meaning, not a status code a route picks: IllegalMove → 409 with
the moves that are allowed, NotFound → 404, Forbidden → 403, InvalidValue → 422, any other
TicketError (a refused change, a bad cursor) → 400. The answer is {"detail": message} as
FastAPI's own HTTPException, so clients see one shape.
"""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from hub.tickets.errors import IllegalMove, TicketError


def ticket_error_response(exc: TicketError) -> JSONResponse:
    body: dict = {"detail": str(exc)}
    if isinstance(exc, IllegalMove) and exc.allowed:
        body["allowed"] = exc.allowed
    if exc.status_code == 422:  # the documented shape of every 422
        body["errors"] = [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]
    return JSONResponse(body, status_code=exc.status_code)


class Invalid(RequestValidationError):
    """A 422 a route decides on (a value that passed the types but not the rules), answered in
    the same documented shape as FastAPI's own validation errors, with the reason as detail."""

    def __init__(self, message: str, loc: tuple[str | int, ...]):
        super().__init__([{"loc": loc, "msg": message, "type": "value_error"}])
        self.sentence = message


def invalid(message: str, *loc: str | int) -> Invalid:
    return Invalid(message, tuple(loc))


# What a 422 (and a malformed-JSON 400) body is, as hub.app and the intake fast path write it:
# a sentence and the list of what was wrong, each as FastAPI's ValidationError.
VALIDATION_ERROR_SCHEMA = {
    "title": "HTTPValidationError", "type": "object", "required": ["detail", "errors"],
    "properties": {"detail": {"type": "string", "title": "Detail"},
                   "errors": {"type": "array", "title": "Errors",
                              "items": {"$ref": "#/components/schemas/ValidationError"}}},
}


def document_validation_errors(app: FastAPI) -> None:
    """The OpenAPI schema says what a 422 body really is (FastAPI's default says "detail" is
    the error list; Simpul's answer is {"detail": sentence, "errors": [...]})."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            schemas = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = VALIDATION_ERROR_SCHEMA
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    """Register the domain-error handler on the app (hub.app.create_app calls this), and
    document the validation errors' real shape in the OpenAPI schema."""
    document_validation_errors(app)

    @app.exception_handler(TicketError)
    async def ticket_error(request: Request, exc: TicketError) -> JSONResponse:
        return ticket_error_response(exc)
