"""Domain errors raised by services and mapped to 4xx responses once, in the API handler."""


class ApplicationError(Exception):
    """A request the domain refuses. ``status`` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, message: str, *, extra: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class Conflict(ApplicationError):
    """The request clashes with the current state (already merged, already solved...)."""

    status = 409


class Forbidden(ApplicationError):
    """The caller's role may not do this (403); nothing changes."""

    status = 403


class PayloadTooLarge(ApplicationError):
    status = 413
