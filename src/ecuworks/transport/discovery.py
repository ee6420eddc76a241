"""DoIP identification, entity status and power mode over UDP, unicast only.

ISO 13400-2 lets a tester find vehicles by broadcasting a vehicle identification request.
ecuworks never broadcasts or multicasts: the tester asks the one address it was given (the
vehicle interface's or the simulator's), so discovery cannot disturb other vehicles on a
workshop network. An entity answers each request to the sender's address and port.
"""

from __future__ import annotations

import asyncio
from typing import Final, Generic, TypeVar

from ecuworks.errors import ConfigError, LinkError, LinkTimeout, ParseError
from ecuworks.transport.net import endpoint, resolve_unicast
from ecuworks.wire.doip import (
    DEFAULT_VERSION,
    UDP_PORT,
    EntityStatusRequest,
    EntityStatusResponse,
    GenericNack,
    HeaderNackCode,
    PowerModeRequest,
    PowerModeResponse,
    VehicleAnnouncement,
    VehicleIdentificationRequest,
    VehicleIdentificationRequestEid,
    VehicleIdentificationRequestVin,
    parse,
)

__all__ = ["entity_status", "identify", "power_mode"]

_CHECK_SETUP: Final = "is the vehicle interface connected and the simulator running?"

_Answer = TypeVar("_Answer", VehicleAnnouncement, EntityStatusResponse, PowerModeResponse)


class _Collector(asyncio.DatagramProtocol, Generic[_Answer]):
    """Collects the answers of one type that arrive on one connected UDP socket."""

    def __init__(self, kind: type[_Answer], expected: int | None, where: str) -> None:
        loop = asyncio.get_running_loop()
        self.kind: type[_Answer] = kind
        self.expected = expected
        self.where = where
        self.answers: list[_Answer] = []
        self.done: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            message = parse(data)
        except ParseError:
            return  # one datagram is one message: a bad one spoils nothing else
        if isinstance(message, GenericNack):
            try:
                reason = HeaderNackCode(message.code).name.lower().replace("_", " ")
            except ValueError:
                reason = f"code 0x{message.code:02X}"
            self._finish(
                LinkError(f"the DoIP entity at {self.where} rejected the request: {reason}")
            )
        elif isinstance(message, self.kind) and message not in self.answers:
            self.answers.append(message)
            if self.expected is not None and len(self.answers) >= self.expected:
                self._finish(None)

    def error_received(self, exc: Exception) -> None:
        # On a connected UDP socket an ICMP "port unreachable" arrives here: nothing listens.
        self._finish(LinkError(f"no DoIP entity at {self.where} (UDP): {exc}; {_CHECK_SETUP}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def _finish(self, error: LinkError | None) -> None:
        if self.done.done():
            return
        if error is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(error)


async def _exchange(
    host: str,
    port: int,
    request: bytes,
    kind: type[_Answer],
    *,
    timeout: float,
    expected: int | None,
) -> list[_Answer]:
    """Send one datagram to ``host:port``; collect answers of ``kind`` until ``timeout``."""
    family, address = await resolve_unicast(host, port)
    where = endpoint(host, port)
    loop = asyncio.get_running_loop()
    # A connected socket: only the entity's answers reach it, and ICMP errors are reported.
    # It is never given SO_BROADCAST (allow_broadcast stays False).
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Collector(kind, expected, where), remote_addr=(address, port), family=family
    )
    try:
        transport.sendto(request)
        try:
            async with asyncio.timeout(timeout):
                await protocol.done  # raises the LinkError of a rejection
        except TimeoutError:
            pass  # collecting until the deadline is the normal end without ``expected``
    finally:
        transport.close()
        await protocol.lost
    if not protocol.answers:
        raise LinkTimeout(
            f"no {kind.__name__} from {where} (UDP) within {timeout:g} s; {_CHECK_SETUP}"
        )
    return protocol.answers


async def identify(
    host: str,
    port: int = UDP_PORT,
    *,
    vin: str | None = None,
    eid: bytes | None = None,
    timeout: float = 1.0,
    expected: int | None = 1,
    version: int = DEFAULT_VERSION,
) -> list[VehicleAnnouncement]:
    """Ask the DoIP entities at one address to identify themselves (ISO 13400-2).

    Sends one vehicle identification request by UDP unicast, filtered by VIN or EID when
    given, and collects the vehicle announcements that answer it.

    Args:
        host: the vehicle interface's or simulator's address; never a broadcast address.
        port: the UDP port, 13400.
        vin: ask only the entities of the vehicle with this VIN.
        eid: ask only the entity with this EID (its 6-byte MAC address).
        timeout: how long to collect answers, in seconds.
        expected: return as soon as this many different entities answered; ``None``
            collects for the whole ``timeout``.
        version: the DoIP protocol version byte of the request.

    Returns:
        The announcements in arrival order, without duplicates.

    Raises:
        ConfigError: ``host`` is a broadcast or multicast address, cannot be resolved, or
            both ``vin`` and ``eid`` are given.
        LinkTimeout: no entity answered within ``timeout``.
        LinkError: the entity rejected the request or nothing listens on the port.
    """
    if vin is not None and eid is not None:
        raise ConfigError("identify by VIN or by EID, not both")
    if vin is not None:
        frame = VehicleIdentificationRequestVin(vin=vin, version=version).encode()
    elif eid is not None:
        frame = VehicleIdentificationRequestEid(eid=eid, version=version).encode()
    else:
        frame = VehicleIdentificationRequest(version=version).encode()
    return await _exchange(
        host, port, frame, VehicleAnnouncement, timeout=timeout, expected=expected
    )


async def entity_status(
    host: str,
    port: int = UDP_PORT,
    *,
    timeout: float = 1.0,
    version: int = DEFAULT_VERSION,
) -> EntityStatusResponse:
    """Ask the DoIP entity at ``host`` for its status: node type and sockets in use.

    Raises:
        ConfigError: ``host`` is a broadcast or multicast address or cannot be resolved.
        LinkTimeout: no answer within ``timeout`` seconds.
        LinkError: the entity rejected the request or nothing listens on the port.
    """
    frame = EntityStatusRequest(version=version).encode()
    answers = await _exchange(host, port, frame, EntityStatusResponse, timeout=timeout, expected=1)
    return answers[0]


async def power_mode(
    host: str,
    port: int = UDP_PORT,
    *,
    timeout: float = 1.0,
    version: int = DEFAULT_VERSION,
) -> PowerModeResponse:
    """Ask the DoIP entity at ``host`` whether the vehicle is ready for diagnostics.

    Returns:
        The answer; its ``mode`` is a :class:`~ecuworks.wire.doip.PowerMode` value.

    Raises:
        ConfigError: ``host`` is a broadcast or multicast address or cannot be resolved.
        LinkTimeout: no answer within ``timeout`` seconds.
        LinkError: the entity rejected the request or nothing listens on the port.
    """
    frame = PowerModeRequest(version=version).encode()
    answers = await _exchange(host, port, frame, PowerModeResponse, timeout=timeout, expected=1)
    return answers[0]
