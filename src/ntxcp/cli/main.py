"""The ``ntxcp`` command (also ``python -m ntxcp``).

Sub-commands:

* ``ntxcp control-center``: the control center service (:mod:`ntxcp.service`);
* ``ntxcp cluster-demo``: NATS, PostgreSQL, N nodes and HAProxy on this machine
  (:mod:`ntxcp.cli.cluster_demo`);
* those of the gateway simulator, when it is installed (``gateway``, ``gateways``,
  ``call``, ``meter-values``, ``status``, ``messages``, ``commands``, ``tokens``,
  ``whoami``; see :mod:`ntxcp.cli.gateways`
  and :mod:`ntxcp.cli.api_client`).

Every sub-command sets ``func`` on the parsed arguments; ``func(args)`` runs it and
returns the exit status.

``ntxcp control-center`` prints exactly one line on standard output once both
listeners are ready, naming the gateways' URL and the API's URL, and logs to standard
error. It stops on SIGINT or SIGTERM: every gateway is closed with 1001 and the process
exits 0 within 10 s (spec §6.3). Exit status 2: unusable flags or settings (including
a non-loopback ``--api-host`` without ``--api-token``); 1: the service could not start
(port in use, unreadable database).

Logs go to standard error, as text for people or (``--log-format json``) one JSON
object per line for log collectors: ``time`` (spec §3 date-time), ``level``,
``logger``, ``message``, ``gatewayId`` when the record names a gateway (passed as
``extra={"gateway_id": ...}``, or the library's ``[<gatewayId>]`` message prefix) and
``exception`` with a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from ntxcp import __version__
from ntxcp.cli import cluster_demo
from ntxcp.cli.runner import run
from ntxcp.v10.types import encode_datetime

__all__ = ["JsonFormatter", "build_parser", "configure_logging", "main"]

_log = logging.getLogger("ntxcp.service")

_STOP_BUDGET = 8.0  # s for a graceful stop; spec §6.3 asks for an exit within 10 s


def _add_control_center_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "control-center",
        help="run the control center service (gateways, storage, HTTP API)",
        description="Run a Ding.X Control Center: accept gateways over ntxcp 1.0, store "
        "what they send in SQLite, and serve an HTTP API. Settings come from the "
        "defaults, then --config FILE.toml (the same keys), then these flags.",
    )
    add = parser.add_argument
    add("--config", metavar="FILE.toml", help="read settings from a TOML file first")
    gateways = parser.add_argument_group("gateways (ntxcp 1.0 over WebSocket)")
    gateways.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    gateways.add_argument("--port", type=int, help="TCP port (default 8887; 0: any free port)")
    gateways.add_argument("--path", help="base path; gateways append /<id> (default /ntxcp)")
    gateways.add_argument(
        "--unknown-gateways",
        choices=("accept", "pending", "reject"),
        help="BootNotification answer for unregistered gateways (default accept)",
    )
    gateways.add_argument(
        "--auth",
        choices=("none", "basic"),
        help="gateway authentication: basic = HTTP Basic with the registered password "
        "(default none)",
    )
    gateways.add_argument("--certfile", help="PEM server certificate: serve wss:// (TLS)")
    gateways.add_argument("--keyfile", help="PEM private key of --certfile")
    gateways.add_argument("--client-ca", help="PEM CA bundle: require client certificates")
    gateways.add_argument(
        "--heartbeat-interval",
        type=int,
        metavar="S",
        help="heartbeat interval sent to accepted gateways (default 300)",
    )
    gateways.add_argument(
        "--call-timeout",
        type=float,
        metavar="S",
        help="seconds to wait for a gateway's answer (default 30)",
    )
    gateways.add_argument(
        "--ping-interval",
        type=float,
        metavar="S",
        help="seconds of silence before a WebSocket ping to a gateway (default 30; 0: off)",
    )
    gateways.add_argument(
        "--max-handshakes",
        type=int,
        metavar="N",
        help="gateway connections in their handshake at once; more wait in the listen "
        "backlog (default 0: no limit)",
    )
    gateways.add_argument(
        "--accept-rate",
        type=float,
        metavar="PER_S",
        help="gateway connections accepted per second; more wait in the listen backlog "
        "(default 1000; 0: no limit)",
    )
    gateways.add_argument(
        "--ping-timeout",
        type=float,
        metavar="S",
        help="seconds to wait for the pong before closing the connection (default 30)",
    )
    storage = parser.add_argument_group("storage")
    storage.add_argument(
        "--db",
        metavar="FILE|URL",
        help="SQLite file (default ./ntxcp.sqlite) or postgresql://user@host:port/database "
        "(the password may come from PGPASSWORD)",
    )
    storage.add_argument(
        "--frame-log-retention",
        type=float,
        metavar="DAYS",
        help="days to keep logged frames (default 30; 0: forever)",
    )
    storage.add_argument(
        "--durability",
        choices=("disk", "process"),
        help="disk: fsync each commit before answering a gateway (survives a power cut); "
        "process: survives a crash of the process only (default disk)",
    )
    storage.add_argument(
        "--frame-log",
        choices=("all", "errors", "off"),
        help="frames to log: all, errors (CALLERRORs, unreadable frames, gateways not "
        "accepted) or off (default all)",
    )
    storage.add_argument(
        "--frame-log-gateway-budget",
        metavar="BYTES",
        help="bytes one gateway may add to the frame log per hour (default 4M; 0: no limit)",
    )
    storage.add_argument(
        "--frame-log-budget",
        metavar="BYTES",
        help="bytes all gateways may add to the frame log per hour (default 1G; 0: no limit)",
    )
    storage.add_argument(
        "--max-db-size",
        metavar="BYTES",
        help="database size at which the frame log stops and the storage alarm is "
        "raised (default 0: no cap)",
    )
    storage.add_argument(
        "--min-free-disk",
        metavar="BYTES",
        help="free disk space below which the frame log stops and the storage alarm is "
        "raised (default 1G; 0: no check)",
    )
    storage.add_argument(
        "--server-key-file",
        metavar="FILE",
        help="key of generated gateway secrets, created at first start (default: "
        "<db>.key beside a SQLite file; ntxcp-server.key in the working directory "
        "with PostgreSQL)",
    )
    api = parser.add_argument_group("HTTP API")
    api.add_argument("--api-host", help="address of the API (default 127.0.0.1)")
    api.add_argument("--api-port", type=int, help="TCP port (default 8080; 0: any free port)")
    api.add_argument(
        "--api-token",
        help="require 'Authorization: Bearer TOKEN' on /api/* (needed off loopback)",
    )
    api.add_argument("--api-certfile", help="PEM certificate: serve the API over HTTPS")
    api.add_argument("--api-keyfile", help="PEM private key of --api-certfile")
    cluster = parser.add_argument_group("cluster (several nodes sharing one PostgreSQL database)")
    cluster.add_argument(
        "--cluster",
        metavar="URL",
        help="run as one node of a cluster: nats://HOST:PORT of the NATS server "
        "(needs --db postgresql://...)",
    )
    cluster.add_argument(
        "--node-id", metavar="NAME", help="this node's name (default: host name and process id)"
    )
    other = parser.add_argument_group("other")
    other.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error", "critical"),
        help="default info",
    )
    other.add_argument("--log-format", choices=("text", "json"), help="default text")
    other.add_argument(
        "--demo", type=int, metavar="N", help="also run N simulated gateways demo-1..N"
    )
    parser.set_defaults(func=control_center_command)


_SETTINGS = (
    "host",
    "port",
    "path",
    "db",
    "api_host",
    "api_port",
    "api_token",
    "api_certfile",
    "api_keyfile",
    "unknown_gateways",
    "auth",
    "certfile",
    "keyfile",
    "client_ca",
    "heartbeat_interval",
    "call_timeout",
    "ping_interval",
    "ping_timeout",
    "max_handshakes",
    "accept_rate",
    "log_level",
    "log_format",
    "demo",
    "frame_log_retention",
    "durability",
    "frame_log",
    "frame_log_gateway_budget",
    "frame_log_budget",
    "max_db_size",
    "min_free_disk",
    "server_key_file",
    "cluster",
    "node_id",
)


_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as JSON."""
        entry: dict[str, object] = {
            "time": encode_datetime(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        gateway_id = getattr(record, "gateway_id", None)  # the library's structured field
        if gateway_id is not None:
            entry["gatewayId"] = gateway_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, fmt: str, stream: TextIO | None = None) -> None:
    """Send every log record of the process to ``stream`` (default standard error).

    Args:
        level: ``debug``, ``info``, ``warning``, ``error`` or ``critical``.
        fmt: ``text`` or ``json``.
        stream: where to write.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # One line per HTTP request is noise unless debugging.
    logging.getLogger("aiohttp.access").setLevel(
        logging.DEBUG if level == "debug" else logging.WARNING
    )


def control_center_command(args: argparse.Namespace) -> int:
    """Run ``ntxcp control-center`` with parsed arguments; returns the exit status."""
    from ntxcp.service.config import ConfigError, build_config

    try:
        config = build_config({name: getattr(args, name) for name in _SETTINGS}, args.config)
    except ConfigError as exc:
        sys.stderr.write(f"ntxcp control-center: error: {exc}\n")
        return exc.exit_code
    configure_logging(config.log_level, config.log_format)
    from ntxcp.service.memory import tune_garbage_collector
    from ntxcp.service.service import Service, ServiceError

    async def serve() -> int:
        try:
            service = Service(config)
        except ServiceError as exc:
            sys.stderr.write(f"ntxcp control-center: error: {exc}\n")
            return exc.exit_code
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await service.start()
        except ServiceError as exc:
            sys.stderr.write(f"ntxcp control-center: error: {exc}\n")
            return exc.exit_code
        tune_garbage_collector()  # after the start: what exists now is frozen
        sys.stdout.write(
            f"ntxcp control center ready: gateways {service.ws_url}/<id>  api {service.api_url}\n"
        )
        sys.stdout.flush()
        await stop.wait()
        _log.info("stopping (signal received)")
        try:
            await asyncio.wait_for(service.stop(), _STOP_BUDGET)
        except TimeoutError:
            _log.error("graceful stop took longer than %.0f s; exiting anyway", _STOP_BUDGET)
        _log.info("stopped")
        return 0

    return run(serve)


def build_parser() -> argparse.ArgumentParser:
    """The ``ntxcp`` argument parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="ntxcp",
        description="ntxcp 1.0: Ding.X Control Center service, gateway simulator and tools",
    )
    parser.add_argument("--version", action="version", version=f"ntxcp {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_control_center_parser(subparsers)
    cluster_demo.add_parser(subparsers)
    try:
        from ntxcp.cli import gateways
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("ntxcp.simulator"):
            raise
    else:
        gateways.add_parsers(subparsers)
    return parser


def _chosen_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The parser of the (nested) sub-command that ``args`` chose, e.g. ``gateways list``."""
    while True:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = getattr(args, action.dest, None)
                if isinstance(chosen, str) and chosen in action.choices:
                    parser = action.choices[chosen]
                    break
        else:
            return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and run the sub-command.

    Returns:
        The process exit status.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the sub-command's parser, with its usage (not the top level's)
        _chosen_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    status = func(args)
    return int(status or 0)
