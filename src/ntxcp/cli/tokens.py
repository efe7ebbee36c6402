"""``ntxcp tokens``, ``ntxcp whoami`` and ``ntxcp commands``: API tokens and the command log.

The commands go through the running service's HTTP API (like ``ntxcp gateways add``),
so a change takes effect at once; the token routes need an admin token (``--token``
or ``NTXCP_API_TOKEN``)::

    ntxcp tokens add dashboard-wall --role read-only   # prints the token, once
    ntxcp tokens list                                  # names, roles, created, last used
    ntxcp tokens revoke dashboard-wall                 # refused from now on
    ntxcp whoami                                       # the name and role of --token
    ntxcp commands --gateway GW-1                      # the command log, with who sent

Exit status as for every API command: 0 success; 1 the API answered an error; 2 usage
error; 3 the API cannot be reached.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from ntxcp.cli.api_client import ApiClient, Column, command_parser, listing

__all__ = ["add_parsers"]

ROLES = ("read-only", "operator", "admin")
"""The roles of a token, each allowing what the ones before it allow."""

_TOKEN_COLUMNS: tuple[Column, ...] = (
    ("name", ("name",)),
    ("role", ("role",)),
    ("created", ("createdAt",)),
    ("last used", ("lastUsedAt",)),
    ("revoked", ("revokedAt",)),
)
_COMMAND_COLUMNS: tuple[Column, ...] = (
    ("id", ("id",)),
    ("sent", ("sentAt",)),
    ("gateway", ("gatewayId",)),
    ("action", ("action",)),
    ("outcome", ("outcome",)),
    ("token", ("tokenName",)),
)


def _list(args: argparse.Namespace, api: ApiClient) -> tuple[Any, str | None]:
    return listing(api.request("GET", "/api/tokens"), _TOKEN_COLUMNS, "(no tokens)")


def _add(args: argparse.Namespace, api: ApiClient) -> tuple[Any, str | None]:
    answer = api.request("POST", "/api/tokens", body={"name": args.name, "role": args.role})
    return answer, (
        f"added {args.role} token {args.name}; the token (shown once, send it as "
        f"Authorization: Bearer <token>):\n{answer['token']}"
    )


def _revoke(args: argparse.Namespace, api: ApiClient) -> tuple[Any, str | None]:
    answer = api.request("DELETE", f"/api/tokens/{quote(args.name, safe='')}")
    return answer, f"revoked token {args.name}"


def _whoami(args: argparse.Namespace, api: ApiClient) -> tuple[Any, str | None]:
    answer = api.request("GET", "/api/whoami")
    if not answer.get("authenticated"):
        return answer, f"{answer['role']} (the API is open: no token is needed)"
    return answer, f"{answer['name']} ({answer['role']})"


def _commands(args: argparse.Namespace, api: ApiClient) -> tuple[Any, str | None]:
    query = {"gateway": args.gateway, "action": args.action, "limit": args.limit}
    answer = api.request("GET", "/api/commands", query=query)
    return listing(answer, _COMMAND_COLUMNS, "(no commands)")


def add_parsers(subparsers: Any) -> None:
    """Add ``tokens``, ``whoami`` and ``commands`` to the ``ntxcp`` parser.

    Args:
        subparsers: the object returned by the root parser's ``add_subparsers()``.
    """
    tokens = subparsers.add_parser(
        "tokens", help="list, add or revoke the API tokens of the control center (admin)"
    )
    actions = tokens.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    command_parser(actions, "list", _list, "list the API tokens (never their secrets)")
    add = command_parser(actions, "add", _add, "create an API token; prints it once")
    add.add_argument("name", metavar="NAME", help="1..64 letters, digits, '_' or '-'")
    add.add_argument("--role", required=True, choices=ROLES, help="what the token may do")
    revoke = command_parser(actions, "revoke", _revoke, "revoke an API token at once")
    revoke.add_argument("name", metavar="NAME")
    command_parser(subparsers, "whoami", _whoami, "the name and role of the token used")
    commands = command_parser(
        subparsers, "commands", _commands, "the requests sent to gateways, and who sent them"
    )
    commands.add_argument("--gateway", metavar="ID", help="only this gateway")
    commands.add_argument("--action", help="only this action, e.g. Reset")
    commands.add_argument("--limit", type=int, metavar="N", help="at most N commands")
