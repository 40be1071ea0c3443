"""Domain errors of ticket changes. HTTP never appears here: hub.api.errors maps them to status
codes (one handler for the API), the pages show their message on the ticket page."""
from __future__ import annotations


class TicketError(Exception):
    """A change the rules refuse (unknown status, missing note, bad value): 400.

    `user_message` is the same refusal in Bahasa Indonesia for the pages (and the citizen's
    SMS/Telegram answer); the API keeps the English message."""
    status_code = 400
    user_message: str | None = None

    def __init__(self, message: str = "", *args, user_message: str | None = None):
        super().__init__(message, *args)
        if user_message is not None:
            self.user_message = user_message

    def for_people(self) -> str:
        return self.user_message or str(self)


class InvalidValue(TicketError):
    """A value the request carried does not pass validation: 422."""
    status_code = 422


class IllegalMove(TicketError):
    """A lifecycle move that is not allowed from the ticket's current state: 409.

    `allowed` lists the moves that are (empty when the question is not about status)."""
    status_code = 409

    def __init__(self, message: str, allowed: list[str] | None = None, user_message: str | None = None):
        super().__init__(message, user_message=user_message)
        self.allowed = list(allowed or [])


class NotFound(TicketError):
    status_code = 404


class Forbidden(TicketError):
    """The actor may see the ticket but not make this change: 403."""
    status_code = 403
