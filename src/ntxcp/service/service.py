"""The control center service: a :class:`~ntxcp.ControlCenter`, its database and API.

:class:`Service` puts the pieces together and runs them on the current event loop::

    service = Service(ServiceConfig(port=0, api_port=0, db="cc.sqlite"))
    await service.start()
    print(service.ws_url, service.api_url)
    ...
    await service.stop()

``ntxcp control-center`` (:mod:`ntxcp.cli`) is this class plus signal handling; tests
and a dashboard can run it in-process the same way.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from aiohttp import web

import ntxcp
from ntxcp.endpoints import ControlCenter, GatewayConnection
from ntxcp.service import queries
from ntxcp.service.admission import GatewayAuthenticator
from ntxcp.service.api import create_app
from ntxcp.service.api_listener import (
    API_LINGERING_TIME,
    DEFAULT_API_BODY_TIMEOUT,
    DEFAULT_API_IDLE_TIMEOUT,
    DEFAULT_MAX_API_CONNECTIONS,
    ApiListener,
    MalformedRequestLog,
    raise_open_file_limit,
)
from ntxcp.service.api_tokens import REFRESH_INTERVAL, TokenRegistry
from ntxcp.service.backend import DatabaseUnavailableError, create_storage
from ntxcp.service.cluster.node import ClusterNode, ClusterUnavailableError
from ntxcp.service.commands import CommandRunner
from ntxcp.service.config import AuthMode, Durability, ServiceConfig
from ntxcp.service.events import EventHub
from ntxcp.service.fleet import FleetIndex
from ntxcp.service.framelog import FrameBudgets
from ntxcp.service.handlers import FrameRecorder, GatewayTrafficHandler
from ntxcp.service.machine_secrets import (
    ServerKeyError,
    generate_secret,
    hash_machine_secret,
    load_server_key,
)
from ntxcp.service.memory import TRIM_INTERVAL, map_large_blocks, release_free_memory
from ntxcp.service.metrics import ServiceMetrics
from ntxcp.service.passwords import PasswordVerifier
from ntxcp.service.storage import SYNCHRONOUS, StorageError, now_text
from ntxcp.transport import HandshakeInfo, server_tls_context
from ntxcp.v10.core import RegistrationStatus

__all__ = ["Service", "ServiceError"]

_log = logging.getLogger("ntxcp.service")

_FLUSH_INTERVAL = 0.25  # s between writes of the buffered frame log
_DISK_CHECK_TICKS = 4  # flush intervals between checks of the database size and free disk
_LAG_INTERVAL = 0.05  # s between two measurements of the event loop's lag
_PRUNE_INTERVAL = 3600.0  # s between frame-log retention runs
_STOP_GRACE = 4.0  # s the gateways get to close (spec §6.3: exit within 10 s overall)
_DURABILITY_MEANING = {
    Durability.DISK: "acknowledged data survives a power cut",
    Durability.PROCESS: "acknowledged data survives a crash of the process, not a power cut",
}


class ServiceError(Exception):
    """The service cannot start; the message is meant for the operator.

    Attributes:
        exit_code: the process exit code to use.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


_WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]", "*"})


def exposure_warning(config: ServiceConfig) -> str | None:
    """A warning when gateways may connect from any network without authentication.

    Returns:
        The text to log, or ``None`` when the gateway listener is local or
        authenticated (Basic auth or client certificates, spec §1 profiles).
    """
    if config.host.strip() not in _WILDCARDS:
        return None
    if config.auth is not AuthMode.NONE or config.client_ca is not None:
        return None
    return (
        f"gateways may connect from any network (--host {config.host}) without "
        "authentication (--auth none): anyone who reaches the port can pose as any "
        "gateway; use --auth basic or --client-ca, or listen on a private address"
    )


class Service:
    """The ready-to-run control center: gateways, storage, HTTP API (and demo gateways).

    Args:
        config: the settings (see :class:`ServiceConfig`).

    Raises:
        ServiceError: the TLS certificate, key or CA file cannot be loaded.
    """

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.version = ntxcp.__version__
        self.storage = create_storage(config)
        self.control_center = ControlCenter(
            host=config.host,
            ssl=self._tls_context(),
            call_timeout=config.call_timeout,
            # A hung gateway (no TCP close) is unresponsive after ping_interval +
            # ping_timeout, closed after one more ping_timeout (ntxcp.transport.keepalive).
            ping_interval=config.ping_interval or None,
            ping_timeout=config.ping_timeout,
            max_handshakes=config.max_handshakes,
            accept_rate=config.accept_rate,
        )
        self.metrics = ServiceMetrics(
            lambda: len(self.control_center.gateways()),
            lambda: self.storage.database_bytes,
            lambda: float(self.storage.frame_log_paused),
            lambda: self.control_center.admission,
            lambda: len(self.handler.unresponsive),
        )
        self.commands = CommandRunner(self.control_center, self.storage, self.metrics)
        self.verifier = PasswordVerifier()
        self.authenticator = GatewayAuthenticator(
            self._stored_hash,
            self.verifier,
            on_outcome=lambda outcome: self.metrics.gateway_auth.inc((outcome,)),
        )
        self.events = EventHub()
        self.tokens = TokenRegistry(self.storage, config.api_token, now_text)
        """The named API tokens (loaded by :meth:`start`)."""
        self.fleet = FleetIndex()
        """What the overview filters, sorts and counts (``GET /api/fleet``)."""
        self.handler = GatewayTrafficHandler(
            self.storage,
            self.metrics,
            config.unknown_gateways,
            config.heartbeat_interval,
            self.control_center,
            self.events,
            self.fleet,
        )
        self.cluster: ClusterNode | None = None
        """This process as a node of a cluster (``--cluster``), else ``None``."""
        if config.cluster is not None:
            self.cluster = self._cluster_node(config.cluster)
            self.commands.remote = self.cluster.remote
            self.commands.known = self.cluster.knows
        self.app: web.Application | None = None
        self.api_idle_timeout = DEFAULT_API_IDLE_TIMEOUT
        """Seconds an API connection may stay without a complete request (or idle)."""
        self.api_body_timeout = DEFAULT_API_BODY_TIMEOUT
        """Seconds a request's body may take once its head has arrived (then 408)."""
        self.max_api_connections = DEFAULT_MAX_API_CONNECTIONS
        """API connections open at once (at most an eighth of the open-file limit)."""
        self.api_listener: ApiListener | None = None
        self._api_server_log = MalformedRequestLog(self.metrics.api_bad_requests.inc)
        self.open_file_limit = 0
        """The soft limit of open files after start-up (raised where allowed)."""
        self._runner: web.AppRunner | None = None
        self._api_port = 0
        self._tasks: list[asyncio.Task[Any]] = []
        self._demo: list[Any] = []
        self._started = False
        self.server_key = b""
        """The key of generated gateway secrets (read or created by :meth:`start`)."""

    def _cluster_node(self, url: str) -> ClusterNode:
        """The cluster node of ``--cluster`` (the storage must be PostgreSQL).

        Raises:
            ServiceError: the database is not PostgreSQL (a usage error).
        """
        from ntxcp.service.pg_storage import PostgresStorage

        if not isinstance(self.storage, PostgresStorage):
            raise ServiceError("--cluster needs --db postgresql://... (a shared database)", 2)
        return ClusterNode(
            url,
            self.config.node_id,
            control_center=self.control_center,
            storage=self.storage,
            events=self.events,
            fleet=self.fleet,
            metrics=self.metrics,
            call_timeout=self.config.call_timeout,
        )

    # --- addresses -------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        """Base URL gateways connect to; they append ``/<gatewayId>`` (spec §1)."""
        return self.control_center.url

    @property
    def api_url(self) -> str:
        """Base URL of the HTTP API, ending in ``/``."""
        scheme = "https" if self.config.api_certfile is not None else "http"
        return f"{scheme}://{_url_host(self.config.api_host)}:{self._api_port}/"

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Open the database, then listen for gateways and for API requests.

        Raises:
            ServiceError: the database, a certificate or a port cannot be used; nothing
                is left running.
        """
        if self._started:
            raise RuntimeError("service already started")
        config = self.config
        try:
            self.server_key = load_server_key(config.server_key_path())
        except ServerKeyError as exc:
            raise ServiceError(str(exc)) from None
        try:
            await self.storage.start()
            await self.tokens.load(self.server_key)
        except StorageError as exc:
            raise ServiceError(str(exc)) from None
        if self.cluster is not None:
            try:
                await self.cluster.start()
            except ClusterUnavailableError as exc:
                await self.storage.close()
                raise ServiceError(str(exc), 2) from None
        self.open_file_limit = raise_open_file_limit()
        map_large_blocks()  # scrypt's 16 MiB buffers go back when freed (see .memory)
        warning = exposure_warning(config)
        if warning is not None:
            _log.warning("%s", warning)
        try:
            await self._load_fleet()
            await self._start_listeners()
        except BaseException:
            await self._shutdown()
            raise
        self._started = True
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._flush_loop(), name="ntxcp-flush"),
            loop.create_task(self._prune_loop(), name="ntxcp-prune"),
            loop.create_task(self._trim_loop(), name="ntxcp-trim"),
            loop.create_task(self._count_errors(), name="ntxcp-errors"),
            loop.create_task(self._lag_loop(), name="ntxcp-lag"),
        ]
        if self.storage.backend == "postgresql":  # other processes may share the database
            self._tasks.append(loop.create_task(self._token_loop(), name="ntxcp-tokens"))
        _log.info("gateways: %s/<gatewayId>; API: %s", self.ws_url, self.api_url)
        if self.storage.backend == "sqlite":
            setting = f"SQLite synchronous={SYNCHRONOUS[config.durability]}"
        elif config.durability is Durability.DISK:
            setting = "PostgreSQL synchronous_commit as the server sets it (on by default)"
        else:
            setting = "PostgreSQL synchronous_commit=off for this service"
        _log.info(
            "durability: %s (%s; %s)",
            config.durability.value,
            setting,
            _DURABILITY_MEANING[config.durability],
        )
        if config.demo:
            try:
                await self._start_demo(config.demo)
            except BaseException:
                await self._shutdown()
                raise

    async def _load_fleet(self) -> None:
        """Fill the overview's index from the database (before any gateway connects).

        A cluster node also fills in the gateways other nodes hold now (their session
        rows), and re-reads them later if the database does not answer now.
        """
        storage = self.storage
        gateways = await storage.read(queries.gateways)
        statuses = await storage.read(queries.current_statuses)
        self.fleet.load(storage.gateways, gateways, statuses)
        if self.cluster is not None:
            try:
                await self.cluster.fleet_view.resync()
            except DatabaseUnavailableError:
                self.cluster.fleet_view.resync_soon()

    async def _start_listeners(self) -> None:
        config = self.config
        cc = self.control_center
        cc.set_core_handler(self.handler)
        cc.set_firmware_management_handler(self.handler)
        cc.set_new_gateway_handler(self._gateway_connected)
        cc.set_gateway_disconnected_handler(self._gateway_disconnected)
        cc.set_gateway_responsive_handler(self.handler.on_responsive)
        cc.set_frame_logger(
            FrameRecorder(
                self.storage,
                self.metrics,
                self.events,
                mode=config.frame_log,
                budgets=FrameBudgets(config.frame_log_gateway_budget, config.frame_log_budget),
                accepted=self._accepted,
                fleet=self.fleet,
            )
        )
        if config.auth is AuthMode.BASIC:
            await self.authenticator.start(self.server_key)
            cc.set_async_basic_auth_handler(self.authenticator)  # spec §1 profiles 1/2
        if config.client_ca is not None:
            cc.set_new_gateway_validation_handler(self._check_certificate)  # profile 3
        try:
            await cc.start(config.port, config.path, host=config.host)
        except OSError as exc:
            raise ServiceError(
                f"cannot listen for gateways on {config.host}:{config.port}: {exc.strerror or exc}"
            ) from None
        self.app = create_app(self)
        # Idle or half-sent API connections are closed after the idle timeout (it runs
        # from the moment of connecting), and their number is capped, so API clients
        # never take the file descriptors gateways need (see .api_listener).
        self._runner = web.AppRunner(
            self.app,
            shutdown_timeout=2.0,
            handle_signals=False,
            keepalive_timeout=self.api_idle_timeout,
            lingering_time=API_LINGERING_TIME,
            logger=self._api_server_log,
        )
        await self._runner.setup()
        cap = min(self.max_api_connections, max(16, self.open_file_limit // 8))
        self.api_listener = ApiListener(self._runner, cap)
        try:
            self._api_port = await self.api_listener.start(
                config.api_host, config.api_port, self._api_tls_context()
            )
        except OSError as exc:
            raise ServiceError(
                f"cannot listen for the API on {config.api_host}:{config.api_port}: "
                f"{exc.strerror or exc}"
            ) from None

    def _api_tls_context(self) -> ssl.SSLContext | None:
        """The server TLS context of the HTTP API (HTTPS), if configured.

        Raises:
            ServiceError: the certificate or key cannot be loaded.
        """
        config = self.config
        if config.api_certfile is None:
            return None
        try:
            return server_tls_context(config.api_certfile, config.api_keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ServiceError(f"cannot load the API's TLS certificate or key: {exc}", 2) from None

    def _tls_context(self) -> ssl.SSLContext | None:
        """The server TLS context for ``wss://`` (spec §1 profiles 2/3), if configured.

        Raises:
            ServiceError: the certificate, key or CA file cannot be loaded.
        """
        config = self.config
        if config.certfile is None:
            return None
        try:
            return server_tls_context(config.certfile, config.keyfile, client_ca=config.client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ServiceError(f"cannot load the TLS certificate or key: {exc}", 2) from None

    async def stop(self) -> None:
        """Close every gateway connection with 1001 (spec §6.1), stop the API, close the DB."""
        await self._shutdown()

    async def _shutdown(self) -> None:
        demo, self._demo = self._demo, []
        if demo:
            stops = [asyncio.ensure_future(gateway.stop()) for gateway in demo]
            _, late = await asyncio.wait(stops, timeout=_STOP_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*stops, return_exceptions=True)
        await self.control_center.stop(grace=_STOP_GRACE)
        self.authenticator.close()
        self.events.close()  # ends the event streams, so the API stops at once
        if self.api_listener is not None:
            self.api_listener.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.cluster is not None:
            await self.cluster.close()
        await self.storage.close()
        self._started = False

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- changes that revoke a connection ----------------------------------------------

    async def remove_gateway(self, gateway_id: str) -> bool:
        """Forget a gateway and everything stored about it; close its connection.

        The connection is closed first (it takes no further CALLs), so nothing it sends
        afterwards is stored (spec §1: only admitted gateways may talk).

        Returns:
            ``False`` when no such gateway was known.
        """
        self.control_center.disconnect(gateway_id, "gateway removed")
        removed = await self.storage.delete_gateway(gateway_id)
        self.fleet.forget(gateway_id)
        if removed:
            self.gateways_changed([gateway_id], "gateway removed")
            self.events.publish("gateway", gateway_id, {"change": "removed"})
        return removed

    async def set_gateway_password(self, gateway_id: str, password_hash: str | None) -> None:
        """Register a gateway if needed and set its secret hash; close its connection.

        A connection admitted with the old secret does not outlive it: the gateway must
        connect again with the new one (spec §1 profiles 1/2).
        """
        await self.storage.set_password(gateway_id, password_hash)
        self.control_center.disconnect(gateway_id, "gateway credentials changed")
        self.gateways_changed([gateway_id], "gateway credentials changed")

    def gateways_changed(self, gateway_ids: list[str], disconnect: str | None = None) -> None:
        """Registered gateways were added, changed or removed: tell the other nodes.

        Args:
            gateway_ids: the gateways.
            disconnect: the node holding one of them closes its socket with this reason.
        """
        if self.cluster is not None:
            self.cluster.gateways_changed(gateway_ids, disconnect)

    def new_generated_secret(self) -> tuple[str, str]:
        """A new gateway secret and its stored form.

        The stored form is the keyed fast hash of :mod:`.machine_secrets`; the secret
        itself is shown once and never stored.
        """
        secret = generate_secret()
        return secret, hash_machine_secret(self.server_key, secret)

    # --- hooks of the control center ---------------------------------------------------

    def _gateway_connected(self, connection: GatewayConnection) -> None:
        if self.cluster is not None:  # first: the session row precedes "connected"
            self.cluster.gateway_admitted(connection.id)
        self.handler.on_connected(connection)

    def _gateway_disconnected(self, connection: GatewayConnection) -> None:
        self.handler.on_disconnected(connection)
        if self.cluster is not None:
            self.cluster.gateway_left(connection.id)

    def _stored_hash(self, gateway_id: str) -> str | None:
        """The password hash of a registered gateway (``None``: it cannot log in)."""
        record = self.storage.gateways.get(gateway_id)
        if record is None or not record.registered:
            return None
        return record.password_hash

    def _accepted(self, gateway_id: str) -> bool:
        """Whether a gateway's BootNotification is answered Accepted (spec §4.1)."""
        return self.handler.registration_status(gateway_id) is RegistrationStatus.ACCEPTED

    @staticmethod
    def _check_certificate(gateway_id: str, handshake: HandshakeInfo) -> bool:
        """Spec §1 profile 3: the client certificate's CN must be the gateway id."""
        return handshake.certificate_common_name == gateway_id

    # --- background work -------------------------------------------------------------

    async def _flush_loop(self) -> None:
        ticks = 0
        while True:
            try:
                if ticks % _DISK_CHECK_TICKS == 0:
                    self.storage.check_disk()
                self.storage.flush()
            except Exception:  # keep trying; the data path reports its own
                _log.exception("writing the frame log failed")
            ticks += 1
            await asyncio.sleep(_FLUSH_INTERVAL)

    async def _lag_loop(self) -> None:
        """Measure how late the event loop runs a timer (``ntxcp_event_loop_lag_seconds``).

        Every gateway's frame waits for the loop as long as a timer does: this is the
        service's own share of a gateway's round trip, apart from the network and the
        gateway (bench/fleet_admission.py reads it during a reconnection storm).
        """
        loop = asyncio.get_running_loop()
        observe = self.metrics.loop_lag.observe
        while True:
            due = loop.time() + _LAG_INTERVAL
            await asyncio.sleep(_LAG_INTERVAL)
            observe(max(0.0, loop.time() - due))

    async def _trim_loop(self) -> None:
        """Give memory freed after a burst back to the system (see :mod:`.memory`)."""
        while True:
            await asyncio.sleep(TRIM_INTERVAL)
            try:
                self.storage.release_memory()
            except Exception:  # a busy or closed database: the next round tries again
                _log.debug("releasing the database's cached pages failed", exc_info=True)
            release_free_memory()

    async def _prune_loop(self) -> None:
        while True:
            try:
                deleted = await self.storage.prune(self.config.frame_log_retention)
                if deleted:
                    _log.info("frame log retention: %d old frames deleted", deleted)
            except Exception:  # retention is retried at the next run
                _log.exception("frame log retention failed")
            await asyncio.sleep(_PRUNE_INTERVAL)

    async def _token_loop(self) -> None:
        """Take in the API tokens other processes created or revoked (see .api_tokens)."""
        while True:
            await asyncio.sleep(REFRESH_INTERVAL)
            try:
                await self.tokens.refresh()
            except Exception as exc:  # the database away: the known tokens stay in force
                _log.debug("reading the API tokens failed: %s", exc)

    async def _count_errors(self) -> None:
        async for error in self.control_center.errors():
            self.metrics.endpoint_errors.inc((error.kind,))

    # --- demo gateways -----------------------------------------------------------------

    async def _start_demo(self, count: int) -> None:
        """Run ``count`` simulated gateways ``demo-1`` .. in this process."""
        try:
            from ntxcp.simulator import SimulatedGateway
        except ModuleNotFoundError as exc:
            raise ServiceError(f"--demo needs the gateway simulator: {exc}", 2) from None
        config = self.config
        if config.client_ca is not None:
            raise ServiceError(
                "--demo cannot be combined with --client-ca (no client certificates)", 2
            )
        client_ssl: ssl.SSLContext | None = None
        if config.certfile is not None:
            # In-process demo only: trust our own certificate, whatever names it carries.
            client_ssl = ssl.create_default_context(cafile=config.certfile)
            client_ssl.check_hostname = False
            client_ssl.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a CA-issued leaf too
        for index in range(1, count + 1):
            gateway_id = f"demo-{index}"
            password: str | None = None
            if config.auth is AuthMode.BASIC:
                # A fresh secret each run (a previous run may have registered it).
                password, secret = self.new_generated_secret()
                await self.set_gateway_password(gateway_id, secret)
            gateway = SimulatedGateway(
                gateway_id, self.ws_url, password=password, ssl=client_ssl, meter_interval=5
            )
            self._demo.append(gateway)
        results = await asyncio.gather(
            *(gateway.start() for gateway in self._demo), return_exceptions=True
        )
        for gateway, result in zip(self._demo, results, strict=True):
            if isinstance(result, BaseException):
                _log.warning("demo gateway %s did not start: %s", gateway.gateway_id, result)
        _log.info("%d demo gateways started", count)
