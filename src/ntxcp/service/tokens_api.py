"""The API routes of the named tokens (see :mod:`.api_tokens`).

* ``GET /api/whoami``: the name and role of the token that sent the request (any role;
  the dashboard asks it after login to hide the forms the role may not use);
* ``GET /api/tokens``: every token, active and revoked, by name (never a secret);
* ``POST /api/tokens`` ``{"name": ..., "role": ...}``: create a token; the answer
  holds its full ``<name>.<secret>``, shown this once only;
* ``DELETE /api/tokens/{name}``: revoke a token at once (its requests are refused from
  now on and its event streams end); the token stays listed as revoked and its name is
  not given out again.

The token routes need the admin role (:data:`.api_contract.REQUIRED_ROLES`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ntxcp.service.access import add_route, current_principal
from ntxcp.service.api_contract import NewToken, parse_query
from ntxcp.service.api_tokens import TokenError
from ntxcp.service.http_errors import json_response
from ntxcp.service.request_body import decode_body, json_body

if TYPE_CHECKING:
    from ntxcp.service.service import Service

__all__ = ["setup"]

_RULES = {
    "name": "name must be 1..64 letters, digits, '_' or '-'",
    "role": "role must be read-only, operator or admin",
}


class _TokensApi:
    """The handlers of the token routes, bound to one service."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def whoami(self, request: web.Request) -> web.Response:
        parse_query(request.query, "whoAmI")
        who = current_principal()
        return json_response(
            {
                "name": who.name,
                "role": who.role.value,
                "authenticated": not self.service.tokens.open,
                # Lets the dashboard and the CLI say whether a removed gateway comes back.
                "gatewayAdmission": "open"
                if self.service.config.admits_any_gateway
                else "registered",
            }
        )

    async def list_tokens(self, request: web.Request) -> web.Response:
        parse_query(request.query, "listTokens")
        items = self.service.tokens.listing()
        return json_response({"count": len(items), "items": items})

    async def add_token(self, request: web.Request) -> web.Response:
        parse_query(request.query, "addToken")
        body = decode_body(await json_body(request), NewToken, _RULES)
        try:
            token, secret = await self.service.tokens.add(body.name, body.role)
        except TokenError as exc:
            return json_response({"error": str(exc), "path": "name"}, exc.status)
        return json_response(
            {**token.public(), "token": secret},
            201,
            {"Location": f"/api/tokens/{token.name}"},
        )

    async def revoke_token(self, request: web.Request) -> web.Response:
        parse_query(request.query, "revokeToken")
        name = request.match_info["name"]
        try:
            token = await self.service.tokens.revoke(name)
        except TokenError as exc:
            return json_response({"error": str(exc)}, exc.status)
        if token is None:
            return json_response({"error": f"unknown token {name!r}"}, 404)
        return json_response(token.public())


def setup(app: web.Application, service: Service) -> None:
    """Add the token routes.

    Args:
        app: the API's application (routes may still be added).
        service: the running service.
    """
    tokens = _TokensApi(service)
    add_route(app, "GET", "/api/whoami", tokens.whoami, "whoAmI")
    add_route(app, "GET", "/api/tokens", tokens.list_tokens, "listTokens")
    add_route(app, "POST", "/api/tokens", tokens.add_token, "addToken")
    add_route(app, "DELETE", "/api/tokens/{name}", tokens.revoke_token, "revokeToken")
