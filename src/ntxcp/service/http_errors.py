"""One table from exceptions to HTTP statuses, and the JSON response, for every API route.

A handler raises; the API's error middleware (and the command runner, which records
the outcome of each call) asks :func:`status_for` which status answers it. The body is
always a JSON object with an ``error`` message (schemas ``Error``, ``ParameterError``,
``ValidationError``             and ``CallErrorAnswer`` of ``/openapi.json``).

==============================  ======  =====================================================
exception                       status  meaning
==============================  ======  =====================================================
``ParameterError``              400     a query parameter is unknown, empty or out of bounds
``BodyError``                   400     the body is not JSON (or nested too deep)
``BodyTimeoutError``            408     the body did not arrive within the body timeout
``UnsupportedMediaTypeError``   415     the body is not ``application/json``
``PayloadValidationError``      422     the body breaks a rule (``code``, ``path``)
``NotConnectedError``           404     the gateway is not connected
``DisconnectedError``           502     the gateway left before answering
``CallError``                   502     the gateway answered a CALLERROR (spec §2.1)
``QueueFullError``              503     too many requests wait for this gateway (§2.3.1)
``CallTimeoutError``            504     no answer within the call timeout (§2.3.2)
``DatabaseUnavailableError``    503     the database cannot be reached (PostgreSQL backend)
``BusUnavailableError``         503     the cluster bus is down (the gateway is elsewhere)
anything else                   500     a bug: logged, the process goes on
==============================  ======  =====================================================
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from aiohttp import web

from ntxcp.errors import (
    CallError,
    CallTimeoutError,
    DisconnectedError,
    NotConnectedError,
    PayloadValidationError,
    QueueFullError,
)
from ntxcp.service.api_contract import ParameterError
from ntxcp.service.backend import DatabaseUnavailableError
from ntxcp.service.cluster.bus import BusUnavailableError

__all__ = [
    "STATUS_BY_ERROR",
    "BodyError",
    "BodyTimeoutError",
    "UnsupportedMediaTypeError",
    "json_response",
    "status_for",
]


class BodyError(Exception):
    """A request body that is not JSON text (answered 400)."""


class BodyTimeoutError(Exception):
    """A request body that did not arrive in time (answered 408, connection closed)."""


class UnsupportedMediaTypeError(Exception):
    """A request body of a media type the route does not take (answered 415)."""


# Most specific first: DisconnectedError is a NotConnectedError, and a
# PayloadValidationError is a CallError.
STATUS_BY_ERROR: Final[tuple[tuple[type[Exception], int], ...]] = (
    (ParameterError, 400),
    (BodyError, 400),
    (BodyTimeoutError, 408),
    (UnsupportedMediaTypeError, 415),
    (PayloadValidationError, 422),
    (DisconnectedError, 502),
    (NotConnectedError, 404),
    (CallError, 502),
    (QueueFullError, 503),
    (CallTimeoutError, 504),
    (DatabaseUnavailableError, 503),
    (BusUnavailableError, 503),
)
"""Exception class → HTTP status, most specific class first."""


def status_for(exc: BaseException) -> int:
    """The HTTP status that answers ``exc`` (500 for anything unexpected).

    Args:
        exc: the exception a handler raised.

    Returns:
        The status from :data:`STATUS_BY_ERROR`, or 500.
    """
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response (encoded with msgspec)."""
    return web.Response(
        body=msgspec.json.encode(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )
