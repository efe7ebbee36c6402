"""The error classes of the ``ntxcp`` commands, defined once for every command."""

from __future__ import annotations

from typing import Any

__all__ = ["ApiResponseError", "ApiUnreachableError", "UsageError"]


class UsageError(Exception):
    """A flag, file or argument is unusable; the message says which and why (exit 2)."""


class ApiResponseError(Exception):
    """The service's HTTP API answered with an error status (the client's view).

    Attributes:
        status: the HTTP status.
        message: the body's ``error`` (or ``description``) text.
        code: the body's ``code`` (an ntxcp error code for 422/502), if any.
        body: the decoded body (``None`` when it was not JSON).
    """

    def __init__(self, status: int, message: str, code: str | None, body: Any) -> None:
        self.status = status
        self.message = message
        self.code = code
        self.body = body
        super().__init__(f"HTTP {status}" + (f" {code}" if code else "") + f": {message}")


class ApiUnreachableError(Exception):
    """The API could not be reached (connection refused, DNS, timeout, ...)."""
