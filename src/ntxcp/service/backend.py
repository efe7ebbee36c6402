"""The storage interface of the control center service, and the choice of backend.

The service, the HTTP API, the dashboard and the CLI reach the database only through
what :class:`StorageBackend` lists. Two backends implement it:

* :class:`ntxcp.service.storage.Storage`: one SQLite file (the embedded default);
* :class:`ntxcp.service.pg_storage.PostgresStorage`: a PostgreSQL database, chosen
  by a ``postgresql://`` URL in ``--db`` (needs the ``postgresql`` extra: asyncpg).

Both keep the same guarantees: a ``record_*`` method returns only once its data is
committed (so the CALLRESULT follows the commit), writes of many gateways share one
transaction (group commit), a re-sent CALL (same gateway, action and ``uniqueId``,
spec §6.2) is stored once, the schema is migrated at start-up, old frames are pruned
and the frame log keeps to its budgets.

Reads name a query function of :mod:`ntxcp.service.queries`
(``storage.read(queries.gateways, ...)``); the PostgreSQL backend runs its own
version of the same query (:mod:`ntxcp.service.pg_queries`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ntxcp.service.config import Durability

if TYPE_CHECKING:
    from ntxcp.service.config import ServiceConfig
    from ntxcp.service.storage import FrameHandle, GatewayRecord
    from ntxcp.v10 import core, firmware

__all__ = [
    "DatabaseUnavailableError",
    "StorageBackend",
    "create_storage",
    "is_database_url",
]

T = TypeVar("T")

_URL_SCHEMES = ("postgresql://", "postgres://")


class DatabaseUnavailableError(Exception):
    """The database server cannot be reached now (the API answers 503 with the reason).

    Nothing of the failed write is acknowledged: a gateway whose message met it is
    disconnected without an answer and sends the message again (spec §6.2).
    """


def is_database_url(db: str) -> bool:
    """Whether ``--db`` names a PostgreSQL server (a URL) rather than a SQLite file."""
    return db.startswith(_URL_SCHEMES)


class StorageBackend(Protocol):
    """What the service needs from its database (see the module's description)."""

    durability: Durability
    gateways: dict[str, GatewayRecord]
    alarms: tuple[str, ...]
    database_bytes: int
    samples_stored: int
    duplicates: int

    backend: str
    """``"sqlite"`` or ``"postgresql"``."""

    @property
    def is_open(self) -> bool:
        """Whether the database is open."""

    @property
    def unreachable(self) -> str | None:
        """Why the database cannot be reached now (``None``: it can)."""

    @property
    def frame_log_paused(self) -> bool:
        """Whether the frame log is stopped by the storage alarm."""

    async def start(self) -> None:
        """Open and migrate the database, load the gateways (raises ``StorageError``)."""

    async def close(self) -> None:
        """Write what is queued and close."""

    def check_disk(self) -> tuple[str, ...]:
        """Measure the database; raise or clear the storage alarm."""

    def flush(self) -> None:
        """Have the buffered frames and times written with the next batch."""

    def release_memory(self) -> None:
        """Give the database connections' cached pages back (after a burst of writes)."""

    async def sync(self) -> None:
        """Wait until every write queued so far is committed."""

    async def read(self, query: Callable[..., T], *args: Any) -> T:
        """Run a query of :mod:`ntxcp.service.queries` after the queued writes."""

    async def read_long(self, query: Callable[..., T], *args: Any) -> T:
        """Run a query that reads a long range without stopping the event loop meanwhile."""

    async def fetch(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of a read-only SQL statement (``?`` placeholders), for tools and tests."""

    async def execute(self, statement: str, *args: Any) -> None:
        """Run one write statement (``?`` placeholders) in the next batch; wait for it."""

    def post_execute(self, statement: str, *args: Any) -> None:
        """Run one write statement with the next batch, without waiting for it."""

    def ensure_gateway(self, gateway_id: str) -> GatewayRecord:
        """The record of a gateway, created unregistered when first seen."""

    async def register_gateway(self, gateway_id: str, password_hash: str | None) -> bool:
        """Register a gateway; ``False`` when a registered one exists."""

    async def set_password(self, gateway_id: str, password_hash: str | None) -> None:
        """Register if needed and set (or clear) a gateway's secret hash."""

    async def register_gateways(self, entries: Sequence[tuple[str, str | None]]) -> list[str]:
        """Register many gateways (id, secret hash) in one transaction: all or none.

        Returns:
            The ids already registered (nothing is stored then); empty on success.
        """

    async def delete_gateway(self, gateway_id: str) -> bool:
        """Delete a gateway and its data; ``False`` when unknown."""

    def set_connected(
        self,
        gateway_id: str,
        connected: bool,
        *,
        remote_address: str | None = None,
        tls: bool = False,
    ) -> None:
        """Record a connection or a disconnection (spec §6.1)."""

    def touch(self, gateway_id: str, time_ms: int) -> None:
        """Note that a gateway was heard from."""

    async def record_boot(
        self, gateway_id: str, request: core.BootNotificationRequest, status: str
    ) -> None:
        """Store a BootNotification (spec §4.1)."""

    async def record_status(
        self, gateway_id: str, unique_id: str | None, request: core.StatusNotificationRequest
    ) -> bool:
        """Store a StatusNotification; ``False`` for a duplicate."""

    async def record_meter_values(
        self, gateway_id: str, unique_id: str | None, request: core.MeterValuesRequest
    ) -> int | None:
        """Store a MeterValues; the samples stored, ``None`` for a duplicate."""

    async def record_firmware_status(
        self, gateway_id: str, unique_id: str | None, status: firmware.FirmwareStatus
    ) -> bool:
        """Store a FirmwareStatusNotification; ``False`` for a duplicate."""

    async def record_diagnostics_status(
        self, gateway_id: str, unique_id: str | None, status: firmware.DiagnosticsStatus
    ) -> bool:
        """Store a DiagnosticsStatusNotification; ``False`` for a duplicate."""

    async def record_data_transfer(
        self, gateway_id: str, unique_id: str | None, request: core.DataTransferRequest
    ) -> bool:
        """Store a DataTransfer; ``False`` for a duplicate."""

    def log_frame(
        self,
        gateway_id: str,
        direction: str,
        time_ms: int,
        message_type: int | None,
        action: str | None,
        unique_id: str | None,
        raw: bytes,
        size: int | None = None,
    ) -> FrameHandle:
        """Buffer one frame of the frame log."""

    def shorten_frame(self, handle: FrameHandle, raw: bytes, size: int) -> bool:
        """Replace a buffered frame by an excerpt, if still buffered."""

    async def command_started(
        self, gateway_id: str, action: str, request_json: str, token_name: str | None = None
    ) -> int:
        """Record a C→G request sent through the API (and the token that sent it)."""

    async def command_finished(
        self,
        command_id: int,
        outcome: str,
        duration: float,
        *,
        response_json: str | None = None,
        error_code: str | None = None,
        error_description: str | None = None,
        error_details_json: str | None = None,
    ) -> None:
        """Record a command's outcome."""

    async def prune(self, frame_days: float) -> int:
        """Delete frames older than ``frame_days`` days; the number deleted."""


def create_storage(config: ServiceConfig) -> StorageBackend:
    """The backend ``config.db`` names: a PostgreSQL URL, else a SQLite file.

    Raises:
        StorageError: PostgreSQL is asked for and its driver is not installed.
    """
    if is_database_url(config.db):
        from ntxcp.service.pg_storage import PostgresStorage

        return PostgresStorage(config.db, config.durability, max_db_size=config.max_db_size)
    from ntxcp.service.storage import Storage

    return Storage(
        config.db,
        config.durability,
        max_db_size=config.max_db_size,
        min_free_disk=config.min_free_disk,
    )
