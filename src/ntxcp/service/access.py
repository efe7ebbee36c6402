"""Who may use which route of the HTTP API: the route table and the access check.

Every route is added with :func:`add_route`, which names its operation
(``operationId``); the role an operation needs is declared once, in
:data:`~ntxcp.service.api_contract.REQUIRED_ROLES`. :func:`access_middleware` checks
each request against it:

* a route whose operation needs no role (``/healthz``, ``/metrics``, the docs and the
  dashboard's page) is served to anyone;
* any other route, and any unknown ``/api`` path, needs ``Authorization: Bearer
  <token>`` (the scheme name in any case, RFC 7235 §2.1): a missing, wrong or revoked
  token is answered 401;
* a token whose role does not allow the operation is answered 403, naming the role
  needed;
* a route added some other way (so without a declared role) is refused (403): a
  forgotten declaration never opens a route.

The handler finds who sent the request with :func:`current_principal`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from ntxcp.service.api_contract import REQUIRED_ROLES
from ntxcp.service.api_tokens import Principal, Role, TokenRegistry
from ntxcp.service.http_errors import json_response

if TYPE_CHECKING:
    from ntxcp.service.service import Service

__all__ = ["ROUTE_OPERATIONS", "access_middleware", "add_route", "current_principal"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ROUTE_OPERATIONS: Final = web.AppKey("ntxcp_route_operations", dict[tuple[str, str], str])
"""The operation of each route of an application, by (method, path pattern)."""

# Who sent the request being handled: each request is handled in a task of its own,
# which sees the value the middleware set.
_PRINCIPAL: ContextVar[Principal] = ContextVar("ntxcp_principal")
_OPEN = Principal(None, Role.ADMIN)
_UNAUTHENTICATED = "missing, invalid or revoked bearer token (Authorization: Bearer <token>)"


def add_route(
    app: web.Application, method: str, path: str, handler: Handler, operation: str
) -> None:
    """Add a route and declare its operation (a ``GET`` route also answers ``HEAD``).

    Raises:
        ValueError: the operation has no declared role.
    """
    if operation not in REQUIRED_ROLES:
        raise ValueError(f"operation {operation!r} declares no role in REQUIRED_ROLES")
    operations = app.setdefault(ROUTE_OPERATIONS, {})
    if method == "GET":
        app.router.add_get(path, handler)
        operations[("HEAD", path)] = operation
    else:
        app.router.add_route(method, path, handler)
    operations[(method, path)] = operation


def current_principal() -> Principal:
    """Who sent the request (set by :func:`access_middleware`).

    Raises:
        LookupError: the request's route needs no role (so no token was checked).
    """
    return _PRINCIPAL.get()


def access_middleware(service: Service) -> Any:
    """The middleware that authenticates requests and checks their role."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        needed = _required_role(request)
        if needed is None:
            return await handler(request)
        who = _authenticate(service.tokens, request)
        if who is None:
            return json_response(
                {"error": _UNAUTHENTICATED},
                401,
                {"WWW-Authenticate": 'Bearer realm="ntxcp"'},
            )
        if not who.role.allows(needed):
            return json_response(
                {
                    "error": f"this route needs the {needed.value} role; the token "
                    f"{who.name!r} has the {who.role.value} role",
                    "requiredRole": needed.value,
                    "role": who.role.value,
                },
                403,
            )
        reset = _PRINCIPAL.set(who)
        try:
            return await handler(request)
        finally:
            _PRINCIPAL.reset(reset)

    return middleware


_UNDECLARED: Final = "undeclared"


def _required_role(request: web.Request) -> Role | None:
    """The role a request needs (``None``: none).

    An unknown ``/api`` path needs a token (then 404 or 405); a route without a
    declared operation is refused: :class:`web.HTTPForbidden`.
    """
    match = request.match_info
    if match.http_exception is not None:  # no such route: 404 or 405 after the check
        is_api = request.path == "/api" or request.path.startswith("/api/")
        return Role.READ_ONLY if is_api else None
    resource = match.route.resource
    key = (request.method, "" if resource is None else resource.canonical)
    operation = request.app.get(ROUTE_OPERATIONS, {}).get(key, _UNDECLARED)
    if operation not in REQUIRED_ROLES:
        raise web.HTTPForbidden(text="this route declares no required role: refused")
    return REQUIRED_ROLES[operation]


def _authenticate(tokens: TokenRegistry, request: web.Request) -> Principal | None:
    if tokens.open:
        return _OPEN
    # RFC 7235 §2.1: the scheme name is case-insensitive.
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return tokens.authenticate(credentials.strip())
