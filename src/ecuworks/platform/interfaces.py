"""The interface manager: the vehicle interfaces (VCIs) a workstation knows, their status,
and their reservations.

The interfaces a workstation knows live in the platform database (table ``interfaces``).
Their status and reservation live on each VCI itself, asked through its management API
(:class:`~ecuworks.transport.vci.VciAdmin`): the VCI is the single arbiter of who holds it,
so of two workstations reserving at once exactly one wins, whatever each one's database
says. Discovery asks one address at a time by UDP unicast (ISO 13400-2 vehicle
identification, :mod:`ecuworks.transport.discovery`); it never broadcasts.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

import httpx
from sqlalchemy import select

from ecuworks.errors import ConfigError, InterfaceReserved, LinkError
from ecuworks.platform.db import Database
from ecuworks.platform.models import Interface
from ecuworks.transport import discovery
from ecuworks.transport.net import endpoint
from ecuworks.transport.url import parse_vci_url
from ecuworks.transport.vci import VciAdmin

__all__ = [
    "DEFAULT_LEASE_S",
    "Discovery",
    "FoundVehicle",
    "InterfaceStatus",
    "KnownInterface",
    "add_interface",
    "discover",
    "ensure_configured",
    "get_interface",
    "list_interfaces",
    "release",
    "remove_interface",
    "reservation_owner",
    "reserve",
    "status",
    "time_left",
]

DEFAULT_LEASE_S: Final = 900.0
_ADMIN_TIMEOUT_S: Final = 3.0
_NAME_MAX: Final = 64
_URL_MAX: Final = 256

State = Literal["free", "reserved", "offline", "unmanaged"]


@dataclass(frozen=True, slots=True, kw_only=True)
class KnownInterface:
    """A vehicle interface the workstation knows.

    Attributes:
        id: its row id.
        name: the name people call it by, unique.
        vci_url: its vehicle link (``doip://…``, ``hsfz://…``, ``can://…``).
        admin_url: its management API (``http://…``), or None when it has none.
    """

    id: int
    name: str
    vci_url: str
    admin_url: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class InterfaceStatus:
    """What a VCI reports now.

    Attributes:
        interface: the interface asked.
        state: ``free``, ``reserved``, ``offline`` (did not answer) or ``unmanaged`` (no
            management address to ask).
        owner: who holds the reservation, when reserved.
        lease_left: seconds left of that lease, when reserved.
        firmware: the VCI's firmware version, when it answered.
        vin: the VIN of the connected vehicle, when it answered.
        battery_volts: the battery voltage it measures, when it answered.
        reason: why it is offline or unmanaged.
    """

    interface: KnownInterface
    state: State
    owner: str | None = None
    lease_left: float | None = None
    firmware: str | None = None
    vin: str | None = None
    battery_volts: float | None = None
    reason: str = ""

    def describe(self) -> str:
        """One line for a person: ``reserved by ada@ws1, 12 min left``, ``free``, …"""
        if self.state == "reserved":
            return f"reserved by {self.owner}, {time_left(self.lease_left)}"
        if self.state in ("offline", "unmanaged"):
            return f"{self.state}: {self.reason}"
        return "free"


@dataclass(frozen=True, slots=True, kw_only=True)
class FoundVehicle:
    """A DoIP entity that answered a vehicle identification request.

    Attributes:
        vin: the vehicle's VIN.
        logical_address: the entity's DoIP logical address (the gateway's).
        url: the VCI URL to reach it (``doip://HOST:PORT``).
    """

    vin: str
    logical_address: int
    url: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Discovery:
    """What one discovery found.

    Attributes:
        found: the vehicles that answered, in the order of the addresses asked.
        unanswered: for each address without an answer, ``(host:port, why)``.
    """

    found: tuple[FoundVehicle, ...]
    unanswered: tuple[tuple[str, str], ...]


def reservation_owner(user: str, workstation: str) -> str:
    """The owner name a reservation is held under: ``user@workstation``."""
    return f"{user}@{workstation}"[:64]


def time_left(seconds: float | None) -> str:
    """``12 min left`` or ``40 s left``: a lease's remaining time, rounded up."""
    if seconds is None:
        return "lease unknown"
    if seconds >= 60:
        return f"{math.ceil(seconds / 60)} min left"
    return f"{math.ceil(seconds)} s left"


def _known(row: Interface) -> KnownInterface:
    return KnownInterface(id=row.id, name=row.name, vci_url=row.vci_url, admin_url=row.admin_url)


def _check_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= _NAME_MAX or not name.isprintable():
        raise ConfigError(
            f"an interface name is 1 to {_NAME_MAX} printable characters, got {name!r}"
        )
    return name


def _check_admin_url(url: str | None) -> str | None:
    if url is None or not url.strip():
        return None
    url = url.strip()
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"the management address {url!r} is not a URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host or len(url) > _URL_MAX:
        raise ConfigError(
            f"the management address must look like http://127.0.0.1:8765, got {url!r}"
        )
    return url.rstrip("/")


def add_interface(
    database: Database, name: str, vci_url: str, admin_url: str | None
) -> KnownInterface:
    """Make an interface known to the workstation.

    Raises:
        ConfigError: the name is taken or invalid, or a URL cannot be used.
    """
    name = _check_name(name)
    link = str(parse_vci_url(vci_url))
    if len(link) > _URL_MAX:
        raise ConfigError(f"the VCI URL is longer than {_URL_MAX} characters")
    admin = _check_admin_url(admin_url)
    with database.session() as session:
        if session.scalars(select(Interface).where(Interface.name == name)).first():
            raise ConfigError(f"an interface named {name!r} exists already; choose another name")
        row = Interface(name=name, vci_url=link, admin_url=admin, created_at=datetime.now(UTC))
        session.add(row)
        session.flush()
        return _known(row)


def list_interfaces(database: Database) -> list[KnownInterface]:
    """Every known interface, by name."""
    with database.session() as session:
        return [_known(r) for r in session.scalars(select(Interface).order_by(Interface.name))]


def get_interface(database: Database, interface_id: int) -> KnownInterface | None:
    """The interface with this id, or None."""
    with database.session() as session:
        row = session.get(Interface, interface_id)
        return _known(row) if row is not None else None


def remove_interface(database: Database, interface_id: int) -> KnownInterface | None:
    """Forget an interface; returns what was removed, or None if it was not known."""
    with database.session() as session:
        row = session.get(Interface, interface_id)
        if row is None:
            return None
        known = _known(row)
        session.delete(row)
        return known


def ensure_configured(
    database: Database, configured: Iterable[tuple[str, str, str | None]]
) -> list[KnownInterface]:
    """Add each ``(name, vci_url, admin_url)`` not yet known by name (``serve --interface``).

    Returns:
        The interfaces added.

    Raises:
        ConfigError: one of them cannot be used.
    """
    known = {i.name for i in list_interfaces(database)}
    added: list[KnownInterface] = []
    for name, vci_url, admin_url in configured:
        if name.strip() not in known:
            added.append(add_interface(database, name, vci_url, admin_url))
            known.add(added[-1].name)
    return added


async def discover(addresses: Sequence[tuple[str, int]], timeout: float = 1.0) -> Discovery:
    """Ask each ``(host, port)`` by UDP unicast which vehicles answer (ISO 13400-2).

    Every address is asked at once, and for the whole ``timeout`` so that every entity
    behind it can answer; an address that does not answer is reported, not raised.
    """
    answers = await asyncio.gather(
        *(
            discovery.identify(host, port, timeout=timeout, expected=None)
            for host, port in addresses
        ),
        return_exceptions=True,
    )
    found: list[FoundVehicle] = []
    unanswered: list[tuple[str, str]] = []
    for (host, port), answer in zip(addresses, answers, strict=True):
        if isinstance(answer, ConfigError | OSError):  # LinkError is an OSError too
            unanswered.append((endpoint(host, port), str(answer)))
        elif isinstance(answer, BaseException):
            raise answer
        else:
            url = str(parse_vci_url(f"doip://{endpoint(host, port)}"))
            found.extend(
                FoundVehicle(vin=a.vin, logical_address=a.logical_address, url=url) for a in answer
            )
    return Discovery(found=tuple(found), unanswered=tuple(unanswered))


def _admin(interface: KnownInterface) -> VciAdmin:
    if interface.admin_url is None:
        raise ConfigError(
            f"the interface {interface.name!r} has no management address, so it cannot be "
            "reserved; an admin can add it again with one (http://HOST:PORT)"
        )
    return VciAdmin(interface.admin_url, timeout=_ADMIN_TIMEOUT_S)


async def status(interface: KnownInterface) -> InterfaceStatus:
    """What the interface reports now; never raises: one that does not answer is offline."""
    if interface.admin_url is None:
        return InterfaceStatus(
            interface=interface, state="unmanaged", reason="no management address"
        )
    try:
        async with _admin(interface) as admin:
            info = await admin.info()
    except (ConfigError, LinkError) as exc:
        return InterfaceStatus(interface=interface, state="offline", reason=str(exc))
    return InterfaceStatus(
        interface=interface,
        state="free" if info.owner is None else "reserved",
        owner=info.owner,
        lease_left=info.lease_expires_in,
        firmware=info.firmware,
        vin=info.vin,
        battery_volts=info.battery_volts,
    )


def _refused(interface: KnownInterface, busy: InterfaceReserved) -> InterfaceReserved:
    return InterfaceReserved(
        f"{interface.name} is reserved by {busy.owner}, {time_left(busy.expires_in)}; wait "
        f"for its release or ask {busy.owner} to release it",
        owner=busy.owner,
        expires_in=busy.expires_in,
    )


async def reserve(interface: KnownInterface, owner: str, lease_s: float = DEFAULT_LEASE_S) -> float:
    """Reserve the interface for ``owner`` (or renew its lease) on the VCI itself.

    Returns:
        Seconds until the lease runs out unless renewed.

    Raises:
        InterfaceReserved: another owner holds it (its name and time left in the message).
        ConfigError: the interface has no management address.
        LinkError: the VCI does not answer.
    """
    async with _admin(interface) as admin:
        try:
            return await admin.reserve(owner, lease_s)
        except InterfaceReserved as busy:
            raise _refused(interface, busy) from busy


async def release(interface: KnownInterface, owner: str) -> bool:
    """Give the interface back; False if ``owner`` no longer held it (the lease ran out).

    Raises:
        InterfaceReserved: another owner holds it.
        ConfigError: the interface has no management address.
        LinkError: the VCI does not answer.
    """
    async with _admin(interface) as admin:
        try:
            return await admin.release(owner)
        except InterfaceReserved as busy:
            raise _refused(interface, busy) from busy
