"""The domain error family. The API maps each to one HTTP status and one error body."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "detail": self.message, **self.details}


class InvalidInput(DomainError):
    """The request itself is wrong (missing note, unknown queue, bad property)."""

    status = 422
    code = "invalid_input"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Forbidden(DomainError):
    """The actor may not perform this action on this object."""

    status = 403
    code = "forbidden"


class Conflict(DomainError):
    """The object moved under us: concurrent change, lock timeout, uniqueness."""

    status = 409
    code = "conflict"


class TransitionNotAllowed(Conflict):
    """The transition does not exist from the current state, or its conditions fail."""

    code = "transition_not_allowed"


class NotAvailable(DomainError):
    """This installation cannot do it (e.g. reports on the SQLite demo database)."""

    status = 503
    code = "not_available"
