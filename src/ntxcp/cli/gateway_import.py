"""``ntxcp gateways import FILE``: register many gateways at once (spec §1 secrets).

FILE lists one gateway per line, as CSV or as JSON lines (told apart by the first
character that is not blank: ``{`` starts JSON lines):

* CSV: ``id,secret``; a first line ``id,secret`` is a header and skipped;
* JSON lines: ``{"id": "GW-1", "secret": "..."}``.

The secret is a machine secret of at least 22 characters (stored with the keyed fast
hash, :mod:`ntxcp.service.machine_secrets`), the word ``generate`` (the control center
generates one), or empty / ``null`` (no secret). Blank lines are skipped. Every gateway
is sent in one ``POST /api/gateway-imports``: all are registered or none is, and every
mistake is reported with its line (``FILE:LINE: ...``).

The generated secrets are printed once, as CSV ``id,secret`` (the format of FILE, which
``ntxcp gateway --secrets`` reads): to ``--output OUT`` (a new file, readable by its
owner only), else to standard output.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ntxcp.cli.errors import ApiResponseError, UsageError

if TYPE_CHECKING:
    from ntxcp.cli.api_client import ApiClient

__all__ = ["GENERATE", "SecretEntry", "import_gateways", "read_secrets_file", "write_secrets"]

GENERATE = "generate"
"""The secret cell that asks the control center to generate the secret."""

_MAX_REPORTED = 50  # mistakes printed one per line; --json shows every one

SecretEntry = tuple[int, str, str | None]
"""A line of a secrets file: its line number, the gateway id, the secret (or ``None``)."""


def _csv_entries(path: Path, lines: list[str]) -> list[SecretEntry]:
    entries: list[SecretEntry] = []
    for number, row in enumerate(csv.reader(lines), start=1):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if number == 1 and [cell.strip().lower() for cell in row] == ["id", "secret"]:
            continue
        if len(row) > 2:
            raise UsageError(f"{path}:{number}: expected 'id,secret', got {len(row)} fields")
        secret = row[1].strip() if len(row) == 2 else ""
        entries.append((number, row[0].strip(), secret or None))
    return entries


def _jsonl_entries(path: Path, lines: list[str]) -> list[SecretEntry]:
    entries: list[SecretEntry] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{path}:{number}: not JSON: {exc}") from None
        if not isinstance(item, dict) or not set(item) <= {"id", "secret"} or "id" not in item:
            raise UsageError(f'{path}:{number}: expected {{"id": ..., "secret": ...}}')
        gateway_id, secret = item["id"], item.get("secret")
        if not isinstance(gateway_id, str) or not isinstance(secret, str | None):
            raise UsageError(f"{path}:{number}: id and secret must be strings")
        entries.append((number, gateway_id, secret or None))
    return entries


def read_secrets_file(path: str | Path) -> list[SecretEntry]:
    """The gateways of a secrets file (CSV or JSON lines, see the module text).

    Raises:
        UsageError: the file cannot be read, or a line is malformed (with its number).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    lines = text.splitlines()
    if text.lstrip().startswith("{"):
        return _jsonl_entries(path, lines)
    return _csv_entries(path, lines)


def write_secrets(out: TextIO, secrets: list[tuple[str, str]]) -> None:
    """Write ``id,secret`` lines (CSV with its header)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("id", "secret"))
    writer.writerows(secrets)


def _open_output(path: str) -> TextIO:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} exists: the output must be a new file") from None
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror}") from None
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


def import_gateways(args: argparse.Namespace, api: ApiClient) -> tuple[Any, str | None]:
    """Run ``ntxcp gateways import`` (an API command, see :mod:`ntxcp.cli.api_client`)."""
    entries = read_secrets_file(args.file)
    if not entries:
        raise UsageError(f"{args.file}: no gateway in the file")
    body = {
        "gateways": [
            {"id": gateway_id, "generatePassword": True}
            if secret == GENERATE
            else {"id": gateway_id, "password": secret}
            for _, gateway_id, secret in entries
        ]
    }
    output = _open_output(args.output) if args.output else None
    try:
        answer = api.request("POST", "/api/gateway-imports", body=body)
    except ApiResponseError as exc:
        if output is not None:
            output.close()
            os.unlink(args.output)
        raise _per_line(exc, args.file, entries) from None
    generated = [(item["id"], item["password"]) for item in answer["items"] if "password" in item]
    summary = f"imported {answer['count']} gateways, {len(generated)} generated secrets"
    if output is not None:
        with output:
            write_secrets(output, generated)
        return answer, f"{summary} written to {args.output}"
    if not args.json:
        sys.stderr.write(summary + " (below, shown once)\n")
        write_secrets(sys.stdout, generated)
        return answer, ""
    return answer, None


def _per_line(exc: ApiResponseError, file: str, entries: list[SecretEntry]) -> ApiResponseError:
    """The API's per-entry report as ``FILE:LINE: message`` lines."""
    errors = exc.body.get("errors") if isinstance(exc.body, dict) else None
    if not isinstance(errors, list):
        return exc
    lines = [exc.message]
    shown = errors[:_MAX_REPORTED]
    for error in shown:
        index = error.get("index")
        line = entries[index][0] if isinstance(index, int) and index < len(entries) else "?"
        lines.append(f"  {file}:{line}: {error.get('error')}")
    if len(errors) > len(shown):
        lines.append(f"  ... and {len(errors) - len(shown)} more (--json shows them all)")
    return ApiResponseError(exc.status, "\n".join(lines), exc.code, exc.body)
