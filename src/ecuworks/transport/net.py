"""Network addresses and the UDP side the links share.

:func:`endpoint` formats ``host:port`` for messages. :func:`require_unicast`,
:func:`resolve_unicast` and :func:`query_datagram` are the UDP side: one request to one
address, one answer. Vehicle identification here is unicast to the gateway's (or the
simulator's) address; ecuworks never sets SO_BROADCAST, and refuses broadcast and multicast
destinations before a socket exists. The TCP side is :mod:`ecuworks.transport.stream`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from typing import Final, Generic, TypeVar

from ecuworks.errors import ConfigError, LinkError, LinkTimeout, ParseError

__all__ = [
    "endpoint",
    "query_datagram",
    "require_unicast",
    "resolve_unicast",
]

T = TypeVar("T")

# The link-local network F-series gateways use when no DHCP server answers; its broadcast
# address is the one a user is most likely to type for "find the car".
_LINK_LOCAL: Final = ipaddress.IPv4Network("169.254.0.0/16")


def endpoint(host: str, port: int) -> str:
    """``host:port`` as messages show it, with IPv6 addresses in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def require_unicast(address: str) -> None:
    """Refuse an IP address that is not one host: broadcast, multicast or unspecified.

    Catches what can be told from the address alone (255.255.255.255, 169.254.255.255,
    224.0.0.0/4, ff00::/8, 0.0.0.0, ::). Another subnet's directed broadcast cannot be told
    without its netmask; the kernel refuses sending there because SO_BROADCAST is never
    set, and :func:`query_datagram` reports that as the same :class:`ConfigError`.

    Raises:
        ConfigError: ``address`` is not a unicast IP address (names are not resolved here).
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("%eth0")
    except ValueError:
        raise ConfigError(f"{address!r} is not an IP address") from None
    if ip.is_multicast:
        kind = "a multicast address"
    elif ip.is_unspecified:
        kind = "the unspecified address"
    elif isinstance(ip, ipaddress.IPv4Address) and (
        ip == ipaddress.IPv4Address("255.255.255.255") or ip == _LINK_LOCAL.broadcast_address
    ):
        kind = "a broadcast address"
    else:
        return
    raise ConfigError(
        f"{address} is {kind}; ecuworks identifies vehicles by unicast only: give the "
        "address of the gateway, the vehicle interface or the simulator, e.g. 127.0.0.1"
    )


async def resolve_unicast(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    """Resolve ``host`` for UDP and refuse it unless it is one host (:func:`require_unicast`).

    Returns:
        The address family and the resolved address, for ``create_datagram_endpoint``.

    Raises:
        ConfigError: the name does not resolve, or it is not a unicast address.
    """
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as error:
        raise ConfigError(f"cannot resolve the address {host!r}: {error}") from error
    family, _, _, _, sockaddr = infos[0]
    address = str(sockaddr[0])
    require_unicast(address)
    return family, address


class _Datagrams(asyncio.DatagramProtocol, Generic[T]):
    """Collects the first accepted answer of one :func:`query_datagram`."""

    def __init__(self, accept: Callable[[bytes], T | None]) -> None:
        loop = asyncio.get_running_loop()
        self.accept = accept
        self.answer: asyncio.Future[T] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.rejected: ParseError | None = None  # the last datagram that did not parse

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if self.answer.done():
            return
        try:
            value = self.accept(data)
        except ParseError as error:
            self.rejected = error  # keep waiting: a proper answer may still come
            return
        if value is not None:
            self.answer.set_result(value)

    def error_received(self, exc: Exception) -> None:
        # On a connected UDP socket this is an ICMP error for our request (port
        # unreachable: nothing listens) or a send the kernel refused.
        if not self.answer.done():
            self.answer.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def query_datagram(
    host: str,
    port: int,
    request: bytes,
    accept: Callable[[bytes], T | None],
    *,
    answer_timeout: float,
    peer: str,
) -> T:
    """Send one UDP datagram to one host and return the first answer ``accept`` takes.

    The socket is connected to the destination, so the kernel drops datagrams from anyone
    else and reports an ICMP "port unreachable" at once instead of a silent timeout.

    Args:
        host: the destination address or name; must resolve to a unicast address.
        port: the destination UDP port.
        request: the datagram to send.
        accept: turns an answer into a value; returns ``None`` to ignore a datagram or
            raises :class:`ParseError` for one that does not decode (also ignored, and
            named in the timeout message).
        answer_timeout: seconds to wait for an answer.
        peer: what answers there, for messages, e.g. ``"the HSFZ gateway"``.

    Raises:
        ConfigError: ``host`` does not resolve, or is a broadcast, multicast or
            unspecified address.
        LinkTimeout: no accepted answer within ``answer_timeout``.
        LinkError: the host reported that nothing listens (ICMP port unreachable).
    """
    where = f"{peer} at {endpoint(host, port)}"
    family, address = await resolve_unicast(host, port)
    loop = asyncio.get_running_loop()
    protocol: _Datagrams[T] = _Datagrams(accept)
    try:
        # Connected, and never given SO_BROADCAST (allow_broadcast stays False).
        transport, _ = await loop.create_datagram_endpoint(
            lambda: protocol, remote_addr=(address, port), family=family
        )
    except PermissionError:
        # Linux refuses to connect a UDP socket to a broadcast address without SO_BROADCAST.
        raise ConfigError(
            f"{host} is a broadcast address; ecuworks identifies vehicles by unicast only: "
            "give the address of the gateway, the vehicle interface or the simulator"
        ) from None
    except OSError as error:
        raise LinkError(f"cannot send to {where}: {error.strerror or error}") from error
    try:
        transport.sendto(request)
        async with asyncio.timeout(answer_timeout):
            value = await protocol.answer
    except TimeoutError:
        why = ""
        if protocol.rejected is not None:
            why = f" (a datagram that did not decode: {protocol.rejected})"
        raise LinkTimeout(
            f"no answer from {where} within {answer_timeout:g} s{why}; is the address right and "
            "the vehicle (or simulator) on?"
        ) from None
    except PermissionError:
        raise ConfigError(
            f"the system refused to send to {host} (a broadcast address?); ecuworks "
            "identifies vehicles by unicast only: give the gateway's own address"
        ) from None
    except OSError as error:
        raise LinkError(
            f"{where} did not take the request: {error.strerror or error}; is it running "
            "and is this its identification port?"
        ) from error
    finally:
        transport.close()
        await protocol.closed  # asyncio releases the socket one loop turn after close()
    return value
