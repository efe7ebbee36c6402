"""``ntxcp gateway``: run simulated gateways from the command line (spec §6.3).

:func:`add_parsers` adds the simulator's sub-commands (and those of
:mod:`~ntxcp.cli.api_client`) to the ``ntxcp`` parser. Every sub-command sets
``func``: ``args.func(args)`` runs it and returns the process exit status.

``ntxcp gateway`` runs one gateway (``--id``), many (``--count N --id-prefix P``:
``P1`` … ``PN``, all with ``--password``), or one per line of an ``id,secret`` file
(``--secrets FILE``, e.g. what ``ntxcp gateways import`` wrote) in one process. It
prints a one-line summary, refreshed in place on a terminal and as plain lines every
``--summary-interval`` seconds otherwise, and stops on SIGINT/SIGTERM (or after
``--duration``): every gateway closes with 1000 and the process exits 0 within 10 s
(spec §6.3).

``--url`` may be repeated: every gateway then gets the URLs as a failover list
(:class:`ntxcp.Gateway`: the first that answers, then round-robin on every reconnect).

Exit status: 0 after a clean stop; 1 when a single gateway with a single ``--url`` is
refused permanently (HTTP 400/401/403/404) at start; 2 for a usage error (bad URL,
flags, files); 3 when no gateway ever connected.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import shutil
import signal
import ssl
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from ntxcp.cli import api_client, tokens
from ntxcp.cli.errors import UsageError
from ntxcp.cli.gateway_import import GENERATE, read_secrets_file
from ntxcp.cli.runner import run
from ntxcp.errors import HandshakeRefusedError
from ntxcp.simulator.gateway import SimulatedGateway
from ntxcp.transport import client_tls_context, valid_gateway_id

__all__ = ["add_parsers", "build_parser", "gateway_secrets", "main", "run_gateways"]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NEVER_CONNECTED = 3  # no gateway ever connected (the reason is printed)

_STOP_BUDGET = 8.0  # s to close every gateway; spec §6.3 asks for an exit within 10 s
_START_CONCURRENCY = 200  # connection attempts in flight while starting many gateways

Subparsers = Any  # argparse's _SubParsersAction is private; typed loosely on purpose


def add_parsers(subparsers: Subparsers) -> None:
    """Add ``gateway`` and the API-client commands to the ``ntxcp`` parser.

    Args:
        subparsers: the object returned by the root parser's ``add_subparsers()``.
    """
    _add_gateway_parser(subparsers)
    api_client.add_parsers(subparsers)
    tokens.add_parsers(subparsers)


def _add_gateway_parser(subparsers: Subparsers) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "gateway",
        help="run simulated gateways against a control center",
        description="Run one or many simulated Ding.X Gateways (ntxcp 1.0) until "
        "Ctrl-C, SIGTERM or --duration.",
    )
    parser.add_argument(
        "--url",
        required=True,
        action="append",
        help="control center base URL, e.g. ws://127.0.0.1:8887/ntxcp (the id is appended); "
        "repeat for a failover list: the first that answers is used, every reconnect moves "
        "on to the next, round-robin",
    )
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--id", help="run one gateway with this id")
    who.add_argument("--count", type=_positive_int, help="run N gateways")
    who.add_argument(
        "--secrets",
        metavar="FILE",
        help="run one gateway per line of an id,secret file (CSV or JSON lines, e.g. the "
        "output of 'ntxcp gateways import'), each with its own secret",
    )
    parser.add_argument(
        "--id-prefix", default="SIM-", help="id prefix with --count (default SIM-: SIM-1 …)"
    )
    parser.add_argument("--password", help="HTTP Basic auth secret (security profiles 1/2)")
    parser.add_argument("--cafile", help="PEM CA bundle to trust for wss:// and https://")
    parser.add_argument("--certfile", help="PEM client certificate (mutual TLS, profile 3)")
    parser.add_argument("--keyfile", help="PEM key of --certfile, when not inside it")
    parser.add_argument(
        "--services", type=_positive_int, default=2, help="services per gateway (default 2)"
    )
    parser.add_argument(
        "--meter-interval",
        type=_non_negative_float,
        default=60.0,
        metavar="S",
        help="seconds between MeterValues (default 60; 0: none)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=_non_negative_float,
        metavar="S",
        help="fixed heartbeat interval (default: the control center's boot interval)",
    )
    parser.add_argument(
        "--duration",
        type=_non_negative_float,
        metavar="S",
        help="stop after S seconds (default: run until Ctrl-C/SIGTERM)",
    )
    parser.add_argument(
        "--queue",
        metavar="FILE",
        help="SQLite store-and-forward file (with --count: FILE gets the id inserted)",
    )
    parser.add_argument(
        "--loopback-only",
        action="store_true",
        help="refuse firmware/diagnostics locations that are not on a loopback address",
    )
    parser.add_argument("--model", default="DX-SIM", help="dingxGatewayModel (default DX-SIM)")
    parser.add_argument(
        "--firmware-version", default="1.0.0", help="firmware version at start (default 1.0.0)"
    )
    parser.add_argument(
        "--summary-interval",
        type=_non_negative_float,
        metavar="S",
        help="seconds between summary lines (default 1 on a terminal, 10 otherwise; "
        "0: only the final one)",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="log level on standard error (default warning)",
    )
    parser.set_defaults(func=gateway_command)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


# --- building the gateways -------------------------------------------------------------


def _check_urls(urls: Sequence[str]) -> tuple[str, ...]:
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise UsageError(f"--url must be ws://HOST[:PORT]/PATH or wss://…, got {url!r}")
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as exc:
            raise UsageError(f"--url has a bad port: {exc}") from None
    if len(set(urls)) != len(urls):
        raise UsageError(f"--url given twice with the same URL: {' '.join(urls)}")
    return tuple(urls)


def gateway_secrets(args: argparse.Namespace) -> dict[str, str | None]:
    """The ids to simulate and their Basic-auth secrets.

    ``--id``, or ``--id-prefix`` 1..``--count``, all with ``--password``; or the lines of
    ``--secrets FILE``, each with its own.

    Raises:
        UsageError: an id is not 1..48 printable ASCII characters without ``/``; the
            secrets file is unusable, repeats an id, or asks to ``generate`` a secret.
    """
    if args.secrets is not None:
        if args.password is not None:
            raise UsageError("--secrets gives each gateway its secret: leave out --password")
        secrets: dict[str, str | None] = {}
        for line, gateway_id, secret in read_secrets_file(args.secrets):
            if gateway_id in secrets:
                raise UsageError(f"{args.secrets}:{line}: gateway {gateway_id!r} again")
            if secret == GENERATE:
                raise UsageError(
                    f"{args.secrets}:{line}: 'generate' is for 'ntxcp gateways import'; "
                    "give the file it wrote"
                )
            secrets[gateway_id] = secret
        if not secrets:
            raise UsageError(f"{args.secrets}: no gateway in the file")
    elif args.id is not None:
        secrets = {args.id: args.password}
    else:
        secrets = {f"{args.id_prefix}{n}": args.password for n in range(1, args.count + 1)}
    for gateway_id in secrets:
        if not valid_gateway_id(gateway_id):
            raise UsageError(
                f"invalid gateway id {gateway_id!r}: 1..48 printable ASCII characters, no '/'"
            )
    return secrets


def queue_file(path: str | None, gateway_id: str, many: bool) -> str | None:
    """The store-and-forward file of one gateway: ``path``, or with ``many`` the id inserted.

    ``queue.sqlite`` becomes ``queue.GW-1.sqlite`` (characters unsafe in file names
    are replaced by ``_``).
    """
    if path is None or not many:
        return path
    target = Path(path)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", gateway_id)
    return str(target.with_name(f"{target.stem}.{safe}{target.suffix}"))


def _tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if args.keyfile and not args.certfile:
        raise UsageError("--keyfile needs --certfile")
    wants_tls = any(urlsplit(url).scheme == "wss" for url in args.url)
    if not (wants_tls or args.cafile or args.certfile):
        return None
    try:
        return client_tls_context(args.cafile, certfile=args.certfile, keyfile=args.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the TLS files: {exc}") from None


def build_gateways(args: argparse.Namespace) -> list[SimulatedGateway]:
    """Create the simulated gateways the flags ask for.

    Raises:
        UsageError: a flag is unusable.
    """
    urls = _check_urls(args.url)
    secrets = gateway_secrets(args)
    context = _tls_context(args)
    try:
        return [
            SimulatedGateway(
                gateway_id,
                urls,
                password=password,
                ssl=context,
                services=args.services,
                meter_interval=args.meter_interval,
                heartbeat_interval=args.heartbeat_interval,
                store=queue_file(args.queue, gateway_id, len(secrets) > 1),
                model=args.model,
                firmware_version=args.firmware_version,
                loopback_only=args.loopback_only,
            )
            for gateway_id, password in secrets.items()
        ]
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# --- the summary line ------------------------------------------------------------------


def summary(gateways: Sequence[SimulatedGateway]) -> str:
    """One line about all gateways: connected, registered, messages, last event."""
    connected = sum(g.connected for g in gateways)
    registered = sum(g.registered for g in gateways)
    sent = sum(g.messages_sent for g in gateways)
    received = sum(sum(g.received.values()) for g in gateways)
    queued = sum(g.queued for g in gateways)
    latest = max(gateways, key=lambda g: g.last_event_at)
    return (
        f"connected {connected}/{len(gateways)} | registered {registered} | "
        f"sent {sent} | received {received} | queued {queued} | "
        f"last: [{latest.gateway_id}] {latest.last_event}"
    )


class SummaryPrinter:
    """Prints :func:`summary` in place on a terminal, as plain lines otherwise.

    Args:
        gateways: the gateways summed up.
        stream: where to print.
        interval: seconds between prints (``None``: 1 on a terminal, 10 otherwise).
    """

    def __init__(
        self, gateways: Sequence[SimulatedGateway], stream: TextIO, interval: float | None
    ) -> None:
        self.gateways = gateways
        self.stream = stream
        self.tty = stream.isatty()
        self.interval = (1.0 if self.tty else 10.0) if interval is None else interval

    def print(self, final: bool = False) -> None:
        """Print the line now (``final``: end the in-place line)."""
        line = time.strftime("%H:%M:%S ") + summary(self.gateways)
        if self.tty:
            width = max(20, shutil.get_terminal_size().columns - 1)
            self.stream.write("\r" + line[:width] + "\x1b[K" + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    async def run(self) -> None:
        """Print every :attr:`interval` seconds until cancelled."""
        if self.interval <= 0:
            return
        while True:
            await asyncio.sleep(self.interval)
            self.print()


# --- running -----------------------------------------------------------------------------


async def run_gateways(
    gateways: Sequence[SimulatedGateway],
    *,
    duration: float | None = None,
    printer: SummaryPrinter | None = None,
    install_signals: bool = True,
    err: TextIO = sys.stderr,
) -> int:
    """Start the gateways, run until SIGINT/SIGTERM or ``duration``, stop them.

    Returns:
        The exit status: 0; 1 when a single gateway with one URL is refused
        permanently at start; 3 when no gateway ever connected (the control center
        could not be reached).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if install_signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)  # spec §6.3
    limit = asyncio.Semaphore(_START_CONCURRENCY)

    async def start(gateway: SimulatedGateway) -> None:
        async with limit:
            await gateway.start()

    async def start_all() -> None:
        await asyncio.gather(*(start(g) for g in gateways))

    async def stopped() -> None:
        await stop.wait()

    status = EXIT_OK
    began = loop.time()
    starting = loop.create_task(start_all())
    stopper = loop.create_task(stopped())
    reporter = loop.create_task(printer.run()) if printer is not None else None
    try:
        done, _ = await asyncio.wait(
            {starting, stopper}, timeout=duration, return_when=asyncio.FIRST_COMPLETED
        )
        if starting in done:
            starting.result()  # an unexpected error surfaces here
            refused = _refusal(gateways)
            if refused is not None:
                err.write(f"error: {refused}\n")
                status = EXIT_REFUSED
            elif stopper not in done:
                left = None if duration is None else max(0.0, duration - (loop.time() - began))
                await asyncio.wait({stopper}, timeout=left)
    finally:
        starting.cancel()
        stopper.cancel()
        await asyncio.gather(starting, stopper, return_exceptions=True)
        if reporter is not None:
            reporter.cancel()
        await _stop_all(gateways)
        if install_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        if printer is not None:
            printer.print(final=True)
    if status == EXIT_OK:
        never = _never_connected(gateways)
        if never is not None:
            err.write(f"error: {never}\n")
            status = EXIT_NEVER_CONNECTED
    return status


def _never_connected(gateways: Sequence[SimulatedGateway]) -> str | None:
    """A message when no gateway ever connected during the run (else ``None``)."""
    if not gateways or any(g.ever_connected for g in gateways):
        return None
    first = gateways[0]
    reason = first.last_error or "no connection was made"
    if len(gateways) == 1:
        return f"gateway {first.gateway_id!r} never connected to {_where(first)}: {reason}"
    return f"none of the {len(gateways)} gateways connected to {_where(first)}: {reason}"


def _where(gateway: SimulatedGateway) -> str:
    """The URL(s) a gateway connects to, for a message."""
    return " or ".join(gateway.urls)


def _refusal(gateways: Sequence[SimulatedGateway]) -> str | None:
    """A message when the only gateway was refused for good at start (else ``None``)."""
    if len(gateways) != 1 or len(gateways[0].urls) != 1:
        # many gateways, or a failover list: the refused ones keep retrying in the
        # background (another URL may answer)
        return None
    gateway = gateways[0]
    error = gateway.last_error
    if gateway.connected or not isinstance(error, HandshakeRefusedError) or not error.permanent:
        return None
    return f"gateway {gateway.gateway_id!r} cannot connect to {_where(gateway)}: {error}"


async def _stop_all(gateways: Sequence[SimulatedGateway]) -> None:
    stopping = [asyncio.ensure_future(g.stop()) for g in gateways]
    if not stopping:
        return
    _, late = await asyncio.wait(stopping, timeout=_STOP_BUDGET)
    for task in late:  # spec §6.3: exit within 10 s whatever happens
        task.cancel()
    await asyncio.gather(*stopping, return_exceptions=True)


def gateway_command(args: argparse.Namespace) -> int:
    """Run ``ntxcp gateway`` with parsed arguments; returns the exit status."""
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        return run(lambda: _gateway_main(args))
    except UsageError as exc:
        sys.stderr.write(f"ntxcp gateway: error: {exc}\n")
        return EXIT_USAGE


async def _gateway_main(args: argparse.Namespace) -> int:
    gateways = build_gateways(args)
    printer = SummaryPrinter(gateways, sys.stdout, args.summary_interval)
    return await run_gateways(gateways, duration=args.duration, printer=printer)


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone ``ntxcp`` parser with the simulator's commands only."""
    parser = argparse.ArgumentParser(
        prog="ntxcp", description="ntxcp 1.0 gateway simulator and control center API client"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit status."""
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status
