"""Request bodies of the HTTP API: reading, decoding, and the error of a client mistake."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from ntxcp.service.http_errors import BodyError, BodyTimeoutError, UnsupportedMediaTypeError
from ntxcp.v10.codec import DECODE_ERRORS, error_from_validation

__all__ = ["BODY_TIMEOUT", "ApiError", "decode_body", "in_time", "json_body"]

_Body = TypeVar("_Body", bound=msgspec.Struct)


class ApiError(Exception):
    """A client mistake, answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": message, **extra}


BODY_TIMEOUT = web.AppKey("body_timeout", float)
"""Seconds a request's body may take to arrive once its head has (the service's
``api_body_timeout``): a client trickling a body must not hold an API connection."""


async def in_time(request: web.Request, body: Awaitable[bytes]) -> bytes:
    """``body`` read within the application's body timeout.

    Raises:
        BodyTimeoutError: the body did not arrive in time (408).
    """
    seconds = request.app[BODY_TIMEOUT]
    try:
        async with asyncio.timeout(seconds):
            return await body
    except TimeoutError:
        raise BodyTimeoutError(f"the body did not arrive within {seconds:g} s") from None


async def json_body(request: web.Request) -> bytes:
    """The request's body, if it is JSON by its declared media type (or declares none).

    Raises:
        UnsupportedMediaTypeError: the body declares another media type (415).
        BodyTimeoutError: the body did not arrive within the body timeout (408).
    """
    body = await in_time(request, request.read())
    declared = request.headers.get("Content-Type")
    if body and declared is not None and request.content_type != "application/json":
        raise UnsupportedMediaTypeError(
            f"the body must be application/json, not {request.content_type!r}"
        )
    return body


def decode_body(raw: bytes, kind: type[_Body], rules: Mapping[str, str]) -> _Body:
    """A JSON body decoded as ``kind``; ``rules`` says each field's rule in words.

    Raises:
        BodyError: the body is not JSON (400).
        ApiError: a field is missing, unknown or breaks its rule (422).
    """
    try:
        msgspec.json.decode(raw or b"null")
    except DECODE_ERRORS as exc:
        raise BodyError(f"body is not valid JSON: {exc}") from None
    try:
        return msgspec.json.decode(raw or b"null", type=kind)
    except msgspec.ValidationError as exc:
        error = error_from_validation(exc)
        # A known field that is missing or wrong: its rule; anything else (an unknown
        # field, not an object): msgspec's own message.
        message = rules.get(error.path, error.description)
        raise ApiError(422, message, code=error.code.value, path=error.path) from None
