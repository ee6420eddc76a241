"""The DoIP client link: one TCP (or TLS) connection to a DoIP entity, many ECUs behind it.

ISO 13400-2 lets one tester socket carry diagnostic messages to every ECU behind the
gateway; the target address in each message picks the ECU. :class:`DoipLink` opens the
socket, activates routing (routing activation request/response) and then multiplexes: the
base :class:`~ecuworks.transport.base.Link` matches each answer to its ECU by the answer's
source address, so exchanges with different ECUs overlap on the one connection.

The I/O is an :class:`asyncio.Protocol`, not streams: received bytes go straight into the
sans-I/O :class:`~ecuworks.wire.doip.DoipDecoder` and each diagnostic message straight to
the waiting request, with no reader task and no extra buffering in between.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import struct
from typing import Final

from ecuworks.errors import (
    ConfigError,
    DoipHeaderError,
    LinkClosed,
    LinkError,
    LinkTimeout,
    ParseError,
    RoutingActivationDenied,
    TransportNack,
)
from ecuworks.transport.base import LinkEventKind
from ecuworks.transport.stream import StreamConnection, StreamLink
from ecuworks.wire.doip import (
    DEFAULT_VERSION,
    FUNCTIONAL_ADDRESS,
    TCP_PORT,
    TESTER_ADDRESS,
    ActivationType,
    AliveCheckRequest,
    AliveCheckResponse,
    DiagnosticMessage,
    DiagnosticMessageAck,
    DiagnosticMessageNack,
    DiagnosticNackCode,
    DoipDecoder,
    DoipMessage,
    GenericNack,
    HeaderNackCode,
    RoutingActivationCode,
    RoutingActivationRequest,
    RoutingActivationResponse,
    UnknownPayload,
    encode_diagnostic,
)

__all__ = ["DoipLink"]

_CHECK_SETUP: Final = "is the vehicle interface connected and the simulator running?"


def _code_name(enum_type: type[HeaderNackCode] | type[DiagnosticNackCode], code: int) -> str:
    try:
        return enum_type(code).name.lower().replace("_", " ")
    except ValueError:
        return "reserved or manufacturer-specific code"


class _Connection(StreamConnection):
    """One TCP connection of a :class:`DoipLink`; a reconnect makes a new one.

    Everything that belongs to one socket lives here (decoder, activation, flow control),
    so a late callback of an old socket cannot disturb the link's next connection.
    """

    def __init__(self, link: DoipLink) -> None:
        super().__init__()
        self.link = link
        self.decoder = DoipDecoder()
        loop = asyncio.get_running_loop()
        self.activation: asyncio.Future[RoutingActivationResponse] = loop.create_future()

    # -- StreamConnection --------------------------------------------------------------

    def received(self, data: memoryview) -> None:
        try:
            self.decode(self.decoder, data, self._dispatch)
        except ParseError as error:
            self._header_error(error)

    def dropped(self, exc: Exception | None) -> None:
        link = self.link
        reason = f": {exc}" if exc is not None else ""
        error = LinkClosed(
            f"the connection to the DoIP entity at {link.address} dropped{reason}; "
            "reconnect to go on"
        )
        if not self.activation.done():
            self.activation.set_exception(error)
            self.activation.exception()  # retrieved here if open() is no longer waiting
        if not self.closing and link._connection is self:
            link._fail_all(error)

    # -- DoIP --------------------------------------------------------------------------

    def _dispatch(self, message: DoipMessage) -> None:
        link = self.link
        if isinstance(message, DiagnosticMessage):  # the hot path first
            if message.target == link.tester_address:
                link._deliver(message.source, message.data)
        elif isinstance(message, DiagnosticMessageAck):
            pass  # the gateway took the request; the ECU's answer is what counts
        elif isinstance(message, DiagnosticMessageNack):
            # The NACK's source is the address the refused request was sent to. A NACK of
            # a functional request fails no single exchange: the collection just ends
            # with fewer answers.
            if message.source != link.functional_address:
                reason = _code_name(DiagnosticNackCode, message.code)
                link._fail(
                    message.source,
                    TransportNack(
                        f"gateway refused the message to 0x{message.source:04X}: {reason} "
                        f"(diagnostic NACK 0x{message.code:02X})",
                        target=message.source,
                        code=message.code,
                    ),
                )
        elif isinstance(message, AliveCheckRequest):
            # The entity probes its sockets to free those of testers that are gone; answer
            # at once with our address or it closes this one (ISO 13400-2, alive check).
            self.write(
                AliveCheckResponse(
                    source_address=link.tester_address, version=link.version
                ).encode()
            )
            link._emit(LinkEventKind.ALIVE_CHECK, f"DoIP entity at {link.address}")
        elif isinstance(message, RoutingActivationResponse):
            if not self.activation.done():
                self.activation.set_result(message)
        elif isinstance(message, GenericNack):
            reason = _code_name(HeaderNackCode, message.code)
            self.fail(
                LinkError(
                    f"the DoIP entity at {link.address} rejected a message of this tester: "
                    f"{reason} (generic header NACK 0x{message.code:02X}); check the DoIP "
                    f"protocol version (0x{link.version:02X}) and message sizes"
                )
            )
        elif isinstance(message, UnknownPayload):
            # ISO 13400-2: an unknown payload type is answered with a header NACK and
            # discarded; the socket stays open.
            nack = GenericNack(code=HeaderNackCode.UNKNOWN_PAYLOAD_TYPE, version=link.version)
            self.write(nack.encode())
        # Anything else (identification traffic on TCP, our own request types) means
        # nothing to a tester and is ignored.

    def _header_error(self, error: ParseError) -> None:
        # The stream has lost its framing: tell the entity why, then close (ISO 13400-2,
        # generic header handling).
        if isinstance(error, DoipHeaderError):
            self.write(GenericNack(code=error.code, version=self.link.version).encode())
        self.fail(
            LinkError(
                f"the DoIP entity at {self.link.address} sent data that is not DoIP: "
                f"{error}; the connection was closed"
            )
        )

    def fail(self, error: LinkError) -> None:
        """Close this connection because of ``error``, which every waiter receives."""
        if not self.activation.done():
            self.activation.set_exception(error)
            self.activation.exception()
        if self.link._connection is self:
            self.link._fail_all(error)
        self.close()


class DoipLink(StreamLink[_Connection]):
    """A UDS link to the ECUs behind one DoIP entity (ISO 13400-2), over TCP or TLS.

    Args:
        host: the DoIP entity's (gateway's or simulator's) address or name.
        port: its TCP port; 13400, or 3496 for TLS.
        tester_address: this tester's logical address (0x0E00-0x0FFF for test equipment).
        functional_address: the address a gateway fans out to every ECU.
        activation_type: the routing activation type to request.
        ssl: a TLS context to connect with TLS; ``None`` for plain TCP.
        server_hostname: the name to check the entity's certificate against (TLS only);
            defaults to ``host``.
        version: the DoIP protocol version byte, 0x02 (2012) or 0x03 (2019).
        connect_timeout: seconds for the TCP connection and TLS handshake.
        activation_timeout: seconds to wait for the routing activation response.

    Attributes:
        entity_address: the DoIP entity's logical address from the routing activation
            response, or ``None`` before the first successful :meth:`open`.
    """

    scheme = "doip"
    peer = "the DoIP entity"
    hint = _CHECK_SETUP

    def __init__(
        self,
        host: str,
        port: int = TCP_PORT,
        *,
        tester_address: int = TESTER_ADDRESS,
        functional_address: int = FUNCTIONAL_ADDRESS,
        activation_type: int = ActivationType.DEFAULT,
        ssl: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        version: int = DEFAULT_VERSION,
        connect_timeout: float = 5.0,
        activation_timeout: float = 2.0,
    ) -> None:
        super().__init__(
            host,
            port,
            tester_address=tester_address,
            functional_address=functional_address,
            connect_timeout=connect_timeout,
            ssl=ssl,
            server_hostname=server_hostname,
        )
        self.activation_type = activation_type
        self.version = version
        self.activation_timeout = activation_timeout
        self.entity_address: int | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def _new_connection(self) -> _Connection:
        return _Connection(self)

    async def _handshake(self, connection: _Connection) -> None:
        """Activate routing for this tester (ISO 13400-2, routing activation).

        Raises:
            LinkTimeout: no routing activation response in time.
            RoutingActivationDenied: the entity refused; ``code`` says why.
            LinkError: a header NACK, or activation for another tester address.
        """
        response = await self._activate(connection)
        self.entity_address = response.entity_address

    async def _activate(self, connection: _Connection) -> RoutingActivationResponse:
        request = RoutingActivationRequest(
            source_address=self.tester_address,
            activation_type=self.activation_type,
            version=self.version,
        )
        connection.write(request.encode())
        try:
            async with asyncio.timeout(self.activation_timeout):
                response = await connection.activation
        except TimeoutError:
            raise LinkTimeout(
                f"the DoIP entity at {self.address} did not answer routing activation "
                f"within {self.activation_timeout:g} s; check that it is a DoIP gateway "
                "and that no other tester holds it"
            ) from None
        if response.code == RoutingActivationCode.SUCCESS:
            if response.tester_address != self.tester_address:
                raise LinkError(
                    f"the DoIP entity at {self.address} activated routing for tester "
                    f"0x{response.tester_address:04X}, not for this tester "
                    f"(0x{self.tester_address:04X})"
                )
            return response
        try:
            reason = RoutingActivationCode(response.code).description
        except ValueError:
            reason = "reserved or manufacturer-specific code"
        raise RoutingActivationDenied(
            f"the DoIP entity at {self.address} refused routing activation for tester "
            f"0x{self.tester_address:04X}: {reason} (code 0x{response.code:02X})",
            code=response.code,
        )

    # -- sending -----------------------------------------------------------------------

    async def _transmit(self, target: int, payload: bytes) -> None:
        try:
            frame = encode_diagnostic(self.tester_address, target, payload, self.version)
        except struct.error:
            raise ConfigError(f"0x{target:X} is no DoIP logical address (2 bytes)") from None
        await self._send_frame(self._up_connection(), frame)
