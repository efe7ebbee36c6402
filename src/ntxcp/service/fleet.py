"""The fleet index: what the gateways overview filters, sorts and counts, in memory.

With tens of thousands of gateways the overview cannot read every gateway and every
status for each keystroke of its filter. :class:`FleetIndex` keeps, per gateway, what
the overview shows and filters on (boot identity, connection state, last seen, the
current status of each service), loaded once from the database at start (either
backend) and kept current by the service's handlers as frames arrive. One call of
:meth:`FleetIndex.query` answers a page of gateways (filtered, sorted) together with
the fleet's counts, without a database round trip (``GET /api/fleet``).

The set of gateways is the storage's in-memory mirror (``storage.gateways``): a
gateway registered, imported, seen or removed is in the answer at once. The natural
order of the mirror's ids is computed once and reused until the mirror's set of ids
changes; each query checks that with one pass (the pass it makes anyway to count).

Connection states (``state``):

* ``connected``: its WebSocket is open and it answers;
* ``unresponsive``: its WebSocket is open but it missed a pong (see
  :mod:`ntxcp.transport.keepalive`); it is closed if it stays silent;
* ``disconnected``: it was connected once, not now;
* ``never``: registered but never connected.

A gateway *needs attention* when it is unresponsive, or when it has an open
connection and one of its services is ``Faulted`` or reports an ``errorCode`` other
than ``NoError`` (spec §4.1 StatusNotification). The statuses of a gateway without
a connection are only the last ones it reported and do not count.

In cluster mode (:mod:`ntxcp.service.cluster`) the index also knows the gateways held by
the other nodes: :mod:`ntxcp.service.cluster.fleetview` applies their relayed events
(``apply_*`` methods), marks the gateways of a node that is gone disconnected
(:meth:`FleetIndex.node_gone`) and brings everything back in line with the database
after the bus was away (:meth:`FleetIndex.resync`). Each entry then names the node
holding its connection, and the index remembers which gateways each node holds, so
that a node's departure costs the number of its gateways, not the fleet's.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from ntxcp.service.packing import text_ms
from ntxcp.service.storage import ms_text, now_ms
from ntxcp.v10 import core
from ntxcp.v10.types import encode_datetime

__all__ = [
    "SORTS",
    "STATES",
    "FleetEntry",
    "FleetIndex",
    "FleetPage",
    "FleetQuery",
    "natural_key",
    "statuses_by_gateway",
]

State = Literal["connected", "unresponsive", "disconnected", "never"]
STATES: Final[tuple[State, ...]] = ("connected", "unresponsive", "disconnected", "never")
"""The connection states, in the order ``sort=state`` puts them."""
_STATE_RANK: Final = {state: rank for rank, state in enumerate(STATES)}
SORTS: Final = ("id", "lastSeen", "state")
"""What ``GET /api/fleet`` can sort by."""
_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[Any, ...], str]:
    """The natural sort key of an id: ``LOAD-2`` before ``LOAD-10``, case ignored.

    Text and digit runs alternate in the split, so two keys compare text with text and
    number with number; the id itself breaks ties (``a`` and ``A``).
    """
    parts = _DIGITS.split(text.lower())
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), text


class _Record(Protocol):
    """What the index reads of the storage mirror's record (``GatewayRecord``)."""

    registered: bool
    password_hash: str | None
    registration_status: str | None


def _needs_attention(status: Mapping[str, Any]) -> bool:
    error = status.get("errorCode")
    return status.get("status") == "Faulted" or (error is not None and error != "NoError")


@dataclass(slots=True)
class FleetEntry:
    """What the overview shows of one gateway, beyond the storage mirror's record.

    Attributes:
        id: the gateway id.
        vendor: ``dingxGatewayVendor`` of its last BootNotification (spec §4.1).
        model: ``dingxGatewayModel`` of that boot.
        firmware: ``firmwareVersion`` of that boot.
        first_seen: when it first connected (spec §3 text), ``None`` if never.
        last_seen: when it was last heard from, in ms since the epoch.
        state: ``connected``, ``unresponsive`` or ``disconnected`` once seen.
        connected_since: when its connection opened (spec §3 text).
        remote_address: the peer address of its connection.
        tls: whether that connection uses TLS.
        statuses: current status per service id, as ``GET /api/status`` items.
        node: the cluster node holding its connection (``None``: one node, or none).
    """

    id: str
    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None
    first_seen: str | None = None
    last_seen: int | None = None
    state: State = "never"
    connected_since: str | None = None
    remote_address: str | None = None
    tls: bool = False
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    haystack: str = ""
    node: str | None = None
    faulted: int = 0
    """How many of :attr:`statuses` need attention (kept by :meth:`set_status`)."""

    def __post_init__(self) -> None:
        self.reindex()
        self.set_statuses(self.statuses)

    def set_status(self, service_id: str, item: dict[str, Any]) -> None:
        """Make ``item`` the current status of a service (keeps :attr:`faulted`)."""
        previous = self.statuses.get(service_id)
        if previous is not None and _needs_attention(previous):
            self.faulted -= 1
        if _needs_attention(item):
            self.faulted += 1
        self.statuses[service_id] = item

    def set_statuses(self, statuses: dict[str, dict[str, Any]]) -> None:
        """Replace every current status (keeps :attr:`faulted`)."""
        self.statuses = statuses
        self.faulted = sum(1 for status in statuses.values() if _needs_attention(status))

    def reindex(self) -> None:
        """Rebuild the lower-case text the filter searches (id, vendor, model, firmware)."""
        words = (self.id, self.vendor, self.model, self.firmware)
        self.haystack = "\n".join(w for w in words if w).lower()

    @property
    def open(self) -> bool:
        """Whether it has a connection (connected or unresponsive)."""
        return self.state == "connected" or self.state == "unresponsive"

    def attention_services(self) -> int:
        """Services needing attention: faulted or erroring, while connected."""
        return self.faulted if self.state == "connected" or self.state == "unresponsive" else 0

    def needs_attention(self) -> bool:
        """A faulted service while connected, or no answer to the keep-alive."""
        return self.state == "unresponsive" or (self.faulted > 0 and self.open)

    def item(self, record: _Record | None, cluster: bool = False) -> dict[str, Any]:
        """The JSON item of ``GET /api/fleet`` (with ``node`` in cluster mode)."""
        services = sorted(self.statuses.values(), key=lambda s: natural_key(s["serviceId"]))
        attention = self.attention_services()
        item = {
            "id": self.id,
            "registered": bool(record and record.registered),
            "hasPassword": bool(record and record.password_hash is not None),
            "registrationStatus": record.registration_status if record else None,
            "state": self.state,
            "connected": self.open,
            "connectedSince": self.connected_since if self.open else None,
            "remoteAddress": self.remote_address,
            "tls": self.tls,
            "firstSeen": self.first_seen,
            "lastSeen": None if self.last_seen is None else ms_text(self.last_seen),
            "vendor": self.vendor,
            "model": self.model,
            "firmware": self.firmware,
            "services": services,
            "attentionServices": attention,
            "needsAttention": self.needs_attention(),
        }
        if cluster:
            item["node"] = self.node if self.open else None
        return item


@dataclass(frozen=True, slots=True)
class FleetQuery:
    """One request of ``GET /api/fleet``.

    Attributes:
        text: keep gateways whose id, vendor, model or firmware contains this
            (case ignored); empty: all.
        state: keep gateways in this connection state (``None``: all).
        attention: keep gateways that need attention (``True``) or do not
            (``False``); ``None``: all.
        sort: ``id`` (natural order), ``lastSeen`` or ``state`` (ties in natural order).
        descending: reverse the order.
        offset: skip this many matching gateways.
        limit: at most this many items.
    """

    text: str = ""
    state: State | None = None
    attention: bool | None = None
    sort: str = "id"
    descending: bool = False
    offset: int = 0
    limit: int = 100


@dataclass(frozen=True, slots=True)
class FleetPage:
    """The answer of :meth:`FleetIndex.query`.

    Attributes:
        total: gateways known.
        states: gateways per connection state (every state present, zeros too).
        attention_gateways: gateways needing attention.
        attention_services: services needing attention (of connected gateways).
        matched: gateways the filters kept.
        items: the page of them, as JSON items.
    """

    total: int
    states: dict[str, int]
    attention_gateways: int
    attention_services: int
    matched: int
    items: list[dict[str, Any]]

    def json(self, query: FleetQuery) -> dict[str, Any]:
        """The JSON body of ``GET /api/fleet``."""
        return {
            "total": self.total,
            "states": self.states,
            "attention": {
                "gateways": self.attention_gateways,
                "services": self.attention_services,
            },
            "matched": self.matched,
            "offset": query.offset,
            "items": self.items,
        }


class FleetIndex:
    """The fleet's overview data, in memory (see the module's description).

    Until :meth:`load` it knows no gateway.

    Attributes:
        node_id: this node's id in a cluster (``None``: a single node); the
            connections opened here are held by it.
    """

    def __init__(self) -> None:
        self.mirror: Mapping[str, _Record] = {}
        self.node_id: str | None = None
        self._entries: dict[str, FleetEntry] = {}
        # Cluster mode: the gateways whose connection each node holds.
        self._held: dict[str, set[str]] = {}
        # The mirror's ids in natural order, their keys in the same order, and the set.
        self._order: list[str] = []
        self._keys: list[tuple[tuple[Any, ...], str]] = []
        self._ordered: set[str] = set()
        # The entries in that order (None: to be made again, see _fleet_in_order).
        self._in_order: list[FleetEntry] | None = None

    # --- loading ------------------------------------------------------------------------

    def load(
        self,
        mirror: Mapping[str, _Record],
        gateways: Iterable[Mapping[str, Any]],
        statuses: Iterable[Mapping[str, Any]],
    ) -> None:
        """Fill the index from the database at start.

        Args:
            mirror: the storage's mirror of known gateways (id → record): the set of
                gateways the index answers about; read, never changed.
            gateways: items of ``queries.gateways``.
            statuses: items of ``queries.current_statuses``.
        """
        entries: dict[str, FleetEntry] = {}
        for item in gateways:
            boot_info = item.get("bootInfo")
            boot: Mapping[str, Any] = boot_info if isinstance(boot_info, dict) else {}
            first_seen = item.get("firstSeen")
            entries[item["id"]] = FleetEntry(
                item["id"],
                vendor=boot.get("dingxGatewayVendor"),
                model=boot.get("dingxGatewayModel"),
                firmware=boot.get("firmwareVersion"),
                first_seen=first_seen,
                last_seen=_ms(item.get("lastSeen")),
                # Nothing is connected before the service listens.
                state="never" if first_seen is None else "disconnected",
                remote_address=item.get("remoteAddress"),
                tls=bool(item.get("tls")),
            )
        for gateway_id, services in statuses_by_gateway(statuses).items():
            entry = entries.get(gateway_id)
            if entry is not None:
                entry.set_statuses(services)
        self.mirror = mirror
        self._entries = entries
        self._in_order = None
        self._held = {}
        self._order, self._keys, self._ordered = [], [], set()

    # --- updates from the handlers ------------------------------------------------------

    def _entry(self, gateway_id: str) -> FleetEntry:
        entry = self._entries.get(gateway_id)
        if entry is None:
            entry = self._entries[gateway_id] = FleetEntry(gateway_id)
            self._in_order = None
        return entry

    def _hold(self, entry: FleetEntry, node: str | None) -> None:
        """Record which node holds an entry's connection (nothing to do on one node)."""
        held = entry.node
        if held == node:
            return
        if held is not None:
            self._held.get(held, set()).discard(entry.id)
        if node is not None:
            self._held.setdefault(node, set()).add(entry.id)
        entry.node = node

    def _open(
        self, entry: FleetEntry, node: str | None, at: str | None, address: str | None, tls: bool
    ) -> None:
        entry.state = "connected"
        entry.connected_since = at
        entry.first_seen = entry.first_seen or at
        entry.remote_address = address
        entry.tls = tls
        self._hold(entry, node)

    def _close(self, entry: FleetEntry) -> None:
        entry.state = "disconnected" if entry.first_seen else "never"
        entry.connected_since = None
        self._hold(entry, None)

    def connected(self, gateway_id: str, at: str, remote_address: str | None, tls: bool) -> None:
        """A gateway's connection opened here (spec §6.1)."""
        entry = self._entry(gateway_id)
        self._open(entry, self.node_id, at, remote_address, tls)
        entry.last_seen = now_ms()

    def disconnected(self, gateway_id: str) -> None:
        """A gateway's connection here closed (not one another node holds now)."""
        entry = self._entry(gateway_id)
        if entry.node == self.node_id:
            self._close(entry)

    def responsive(self, gateway_id: str, answers: bool) -> None:
        """A connected gateway missed a pong (``False``) or was heard again (``True``)."""
        entry = self._entries.get(gateway_id)
        if entry is not None and entry.open and entry.node == self.node_id:
            entry.state = "connected" if answers else "unresponsive"

    def seen(self, gateway_id: str, time_ms: int) -> None:
        """A frame came in from a gateway (the hot path: one dictionary look-up)."""
        entry = self._entries.get(gateway_id)
        if entry is not None:
            entry.last_seen = time_ms

    def boot(self, gateway_id: str, request: core.BootNotificationRequest) -> None:
        """A BootNotification was stored (spec §4.1)."""
        entry = self._entry(gateway_id)
        entry.vendor = request.dingx_gateway_vendor
        entry.model = request.dingx_gateway_model
        entry.firmware = request.firmware_version
        entry.reindex()

    def status(
        self, gateway_id: str, request: core.StatusNotificationRequest, received_at: str
    ) -> None:
        """A StatusNotification was stored; a late one never replaces a newer status.

        The rule is the storage's (``status_current``): replace unless both have a
        timestamp and the stored one is newer.
        """
        timestamp = None if request.timestamp is None else encode_datetime(request.timestamp)
        self._status(
            gateway_id,
            {
                "serviceId": request.service_id,
                "status": request.status.value,
                "errorCode": request.error_code.value,
                "info": request.info,
                "vendorId": request.vendor_id,
                "vendorErrorCode": request.vendor_error_code,
                "timestamp": timestamp,
                "receivedAt": received_at,
            },
        )

    def _status(self, gateway_id: str, item: dict[str, Any]) -> None:
        entry = self._entry(gateway_id)
        current = entry.statuses.get(item["serviceId"])
        stored = None if current is None else current["timestamp"]
        timestamp = item["timestamp"]
        if timestamp is not None and stored is not None and timestamp < stored:
            return
        entry.set_status(item["serviceId"], item)

    def may_add_service(self, gateway_id: str, service_id: str, most: int) -> bool:
        """Whether a status of ``service_id`` fits: a service already known, or room."""
        entry = self._entries.get(gateway_id)
        return entry is None or service_id in entry.statuses or len(entry.statuses) < most

    def forget(self, gateway_id: str) -> None:
        """A gateway was removed: a later one with its id starts afresh."""
        entry = self._entries.pop(gateway_id, None)
        self._in_order = None
        if entry is not None:
            self._hold(entry, None)

    # --- cluster mode: the other nodes' gateways ----------------------------------------

    def apply_connection(self, node: str, gateway_id: str, data: Mapping[str, Any]) -> None:
        """Another node's ``connection`` event (see :mod:`ntxcp.service.events`).

        A connection opened there replaces what is known unless a newer one is held
        elsewhere (the later ``connectedSince`` wins, as the later admission wins a
        takeover); the other states apply only while that node holds the gateway.
        """
        entry = self._entry(gateway_id)
        state = data.get("state")
        at = data.get("at")
        if state == "connected" and "remoteAddress" in data and isinstance(at, str):
            newer = entry.connected_since
            if entry.open and entry.node != node and newer is not None and newer > at:
                return  # an older session's news, arriving late
            self._open(entry, node, at, data.get("remoteAddress"), bool(data.get("tls")))
            self._later(entry, _ms(at))
        elif entry.node != node:
            return
        elif state == "disconnected":
            self._close(entry)
        elif state in ("connected", "unresponsive") and entry.open:
            entry.state = state

    def apply_boot(self, gateway_id: str, boot_info: Mapping[str, Any]) -> None:
        """Another node's ``boot`` event: the boot identity (spec §4.1)."""
        entry = self._entry(gateway_id)
        entry.vendor = boot_info.get("dingxGatewayVendor")
        entry.model = boot_info.get("dingxGatewayModel")
        entry.firmware = boot_info.get("firmwareVersion")
        entry.reindex()

    def apply_status(self, gateway_id: str, data: Mapping[str, Any]) -> None:
        """Another node's ``status`` event (a StatusNotification's wire payload)."""
        self._status(gateway_id, _status_item(data))

    def apply_seen(self, gateway_id: str, time_ms: int) -> None:
        """Another node heard from a gateway (a ``seen`` event); never goes back."""
        entry = self._entries.get(gateway_id)
        if entry is not None:
            self._later(entry, time_ms)

    @staticmethod
    def _later(entry: FleetEntry, time_ms: int | None) -> None:
        if time_ms is not None and (entry.last_seen is None or time_ms > entry.last_seen):
            entry.last_seen = time_ms

    def holders(self) -> list[str]:
        """The nodes other than this one that hold some gateway's connection."""
        return [node for node, ids in self._held.items() if ids and node != self.node_id]

    def node_gone(self, node: str) -> int:
        """A node is gone: the connections it held are closed. How many there were."""
        ids = self._held.pop(node, set())
        for gateway_id in ids:
            entry = self._entries.get(gateway_id)
            if entry is not None:
                entry.node = None  # already out of the holders
                self._close(entry)
        return len(ids)

    def resync(
        self,
        gateways: Iterable[Mapping[str, Any]],
        statuses: Mapping[str, dict[str, dict[str, Any]]],
        holder: Callable[[str, bool], str | None],
    ) -> None:
        """Bring the other nodes' gateways in line with the database.

        The gateways held here are left as they are (this node knows them first
        hand); for the others the connection, boot identity and statuses are the
        database's, and ``last seen`` the later of the two.

        Args:
            gateways: items of ``queries.gateways``.
            statuses: the current statuses per gateway (:func:`statuses_by_gateway`).
            holder: for a gateway id and whether the database says it is connected,
                the node holding it (``None``: nobody, or this node, which knows
                better); called for every gateway.
        """
        for item in gateways:
            gateway_id = item["id"]
            entry = self._entry(gateway_id)
            self._later(entry, _ms(item.get("lastSeen")))
            if entry.node == self.node_id and entry.open:
                continue
            boot_info = item.get("bootInfo")
            if isinstance(boot_info, dict):
                self.apply_boot(gateway_id, boot_info)
            entry.set_statuses(statuses.get(gateway_id, {}))
            entry.first_seen = item.get("firstSeen")
            node = holder(gateway_id, bool(item.get("connected")))
            if node is None or node == self.node_id:
                self._close(entry)
            elif not (entry.open and entry.node == node):  # keep "unresponsive"
                self._open(
                    entry,
                    node,
                    item.get("connectedSince"),
                    item.get("remoteAddress"),
                    bool(item.get("tls")),
                )

    def state(self, gateway_id: str) -> str | None:
        """The connection state of a gateway (``None``: not in the index)."""
        entry = self._entries.get(gateway_id)
        return None if entry is None else entry.state

    # --- the query ------------------------------------------------------------------------

    def _natural_order(self) -> list[str]:
        """The mirror's ids in natural order, brought up to date with the mirror.

        Checking costs one set comparison. Gateways removed are filtered out; a few
        added are inserted in place (binary search); many added sort everything again.
        """
        ids = self.mirror.keys()
        ordered = self._ordered
        if ordered == ids:
            return self._order
        removed = ordered - ids
        if removed:
            kept = [
                (k, i) for k, i in zip(self._keys, self._order, strict=True) if i not in removed
            ]
            self._keys = [k for k, _ in kept]
            self._order = [i for _, i in kept]
            for gateway_id in removed:
                self._entries.pop(gateway_id, None)
        added = ids - ordered
        if len(added) > len(self._order) // 8:
            pairs = sorted([*zip(self._keys, self._order, strict=True),
                            *((natural_key(i), i) for i in added)])  # fmt: skip
            self._keys = [k for k, _ in pairs]
            self._order = [i for _, i in pairs]
        else:
            for gateway_id in added:
                key = natural_key(gateway_id)
                at = bisect.bisect(self._keys, key)
                self._keys.insert(at, key)
                self._order.insert(at, gateway_id)
        self._ordered = set(ids)
        self._in_order = None
        return self._order

    def _fleet_in_order(self) -> list[FleetEntry]:
        """Every gateway's entry in natural order (a copy).

        Made again only after a change of the ids or of which entry object holds an
        id: a status or a "seen" changes an entry, not the list.
        """
        order = self._natural_order()
        if self._in_order is None:
            entries = self._entries
            for gateway_id in order:
                if gateway_id not in entries:  # known, never connected: nothing yet
                    entries[gateway_id] = FleetEntry(gateway_id)
            self._in_order = [entries[gateway_id] for gateway_id in order]
        return list(self._in_order)

    def query(self, query: FleetQuery) -> FleetPage:
        """A page of the gateways the query keeps, and the fleet's counts.

        The order is kept up to date with the mirror's ids first (see
        :meth:`_natural_order`). At 50,000 gateways every query passes over the whole
        fleet, so each pass is one the interpreter runs in C (``map``, ``Counter``,
        comprehensions with one test): the counts by state, the few gateways with a
        faulted service, then the filters, narrowest data first.
        """
        mirror = self.mirror
        fleet = self._fleet_in_order()
        counted = Counter(map(_state_of, fleet))
        states: dict[str, int] = {state: counted[state] for state in STATES}
        faulted = [entry for entry in fleet if entry.faulted and entry.open]
        attention_services = sum(entry.faulted for entry in faulted)
        attention_gateways = len(faulted)  # and the unresponsive ones not counted there
        if states["unresponsive"]:
            attention_gateways += sum(
                1 for entry in fleet if entry.state == "unresponsive" and not entry.faulted
            )
        matches = fleet
        text = query.text.lower()
        if text:
            matches = [entry for entry in matches if text in entry.haystack]
        if query.state is not None:
            wanted = query.state
            matches = [entry for entry in matches if entry.state == wanted]
        if query.attention is not None:
            keep = query.attention
            matches = [entry for entry in matches if entry.needs_attention() == keep]
        if query.sort == "lastSeen":
            matches.sort(key=_last_seen, reverse=query.descending)
        elif query.sort == "state":
            matches.sort(key=_state_rank, reverse=query.descending)
        elif query.descending:
            matches.reverse()
        window = matches[query.offset : query.offset + query.limit]
        cluster = self.node_id is not None
        return FleetPage(
            total=len(fleet),
            states=states,
            attention_gateways=attention_gateways,
            attention_services=attention_services,
            matched=len(matches),
            items=[entry.item(mirror.get(entry.id), cluster) for entry in window],
        )


def _state_of(entry: FleetEntry) -> str:
    return entry.state


def _last_seen(entry: FleetEntry) -> int:
    return -1 if entry.last_seen is None else entry.last_seen


def _state_rank(entry: FleetEntry) -> int:
    return _STATE_RANK[entry.state]


def statuses_by_gateway(
    statuses: Iterable[Mapping[str, Any]],
) -> dict[str, dict[str, dict[str, Any]]]:
    """Items of ``queries.current_statuses`` per gateway id, then per service id."""
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    for status in statuses:
        current = {k: v for k, v in status.items() if k != "gatewayId"}
        grouped.setdefault(status["gatewayId"], {})[status["serviceId"]] = current
    return grouped


def _status_item(data: Mapping[str, Any]) -> dict[str, Any]:
    """A current status as ``GET /api/status`` shows it, from a ``status`` event."""
    return {
        "serviceId": data["serviceId"],
        "status": data["status"],
        "errorCode": data["errorCode"],
        "info": data.get("info"),
        "vendorId": data.get("vendorId"),
        "vendorErrorCode": data.get("vendorErrorCode"),
        "timestamp": data.get("timestamp"),
        "receivedAt": data.get("receivedAt"),
    }


def _ms(text: str | None) -> int | None:
    """Milliseconds since the epoch of a stored spec §3 time text (``None``: none)."""
    return None if text is None else text_ms(text)
