"""The simulated gateway's DoIP entity (ISO 13400-2): TCP_DATA and UDP_DISCOVERY on one port.

TCP (:class:`_Connection`, one per tester socket):

- **Generic header handler** (clause 7.1.2, in the standard's order): a wrong pattern or
  an unsupported protocol version is NACK 0x00 and the socket is closed; a payload type
  the entity does not take on TCP is NACK 0x01, a payload over ``max_payload`` NACK 0x02,
  and in both cases the payload is skipped unread and the socket stays open; a length
  that does not fit its type is NACK 0x04 and the socket is closed.
- **Routing activation handler** (clause 7.5): unknown tester address 0x00, unsupported
  activation type 0x06, then the TCP_DATA socket handling below; every refusal closes the
  socket (table 48).
- **Socket handling** (clause 7.5, with the entity's alive check): a socket already
  activated with another address gets 0x02. A tester address registered on another
  socket makes the entity alive-check that socket: an answer there refuses the newcomer
  with 0x03, silence closes the old socket and the newcomer takes its place. With every
  one of ``max_sockets`` registered, all of them are alive-checked at once; the silent
  ones are closed, and if none was, the newcomer gets 0x01.
- **Diagnostic message handler** (clause 7.8): a source address that is not the one
  activated on this socket (or no activation yet) is NACK 0x02 and the socket is closed,
  as AUTOSAR DoIP stacks do; an unknown target is NACK 0x03. Otherwise the positive ACK
  goes out at once, *without* the copy of the request the standard makes optional (keeps
  TransferData acks small; doipclient and our link accept it), and the router's answers
  follow as diagnostic messages from the ECU. Each request runs as its own task: answers
  of one ECU keep their order, different ECUs interleave freely, so a slow ECU never
  holds back another.
- **Timers** (the standard's names): T_TCP_Initial_Inactivity closes a socket that
  sent no routing activation request; T_TCP_General_Inactivity one with no traffic.

UDP (:class:`_Discovery`): vehicle identification (plain, by EID, by VIN: answered only on
a match), entity status and power mode; anything else gets the header NACK of the generic
header handler, and answers from other entities are ignored. Every answer goes back to
the sender (unicast). The vehicle announcements an entity sends at start-up (clause 7.4,
three broadcasts) are **not** sent: ecuworks never broadcasts.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from dataclasses import dataclass
from typing import Final

from ecuworks.errors import DoipHeaderError, ParseError
from ecuworks.sim.router import Router
from ecuworks.sim.server_base import (
    DatagramResponder,
    DropBudget,
    ProtocolServer,
    RequestChains,
)
from ecuworks.wire.doip import (
    DEFAULT_VERSION,
    FUNCTIONAL_ADDRESS,
    HEADER,
    HEADER_SIZE,
    ActivationType,
    AliveCheckRequest,
    AliveCheckResponse,
    DiagnosticMessage,
    DiagnosticMessageAck,
    DiagnosticMessageNack,
    DiagnosticNackCode,
    DoipMessage,
    EntityStatusRequest,
    EntityStatusResponse,
    GenericNack,
    HeaderNackCode,
    NodeType,
    PayloadType,
    PowerModeRequest,
    PowerModeResponse,
    RoutingActivationCode,
    RoutingActivationRequest,
    RoutingActivationResponse,
    VehicleAnnouncement,
    VehicleIdentificationRequest,
    VehicleIdentificationRequestEid,
    VehicleIdentificationRequestVin,
    encode_diagnostic,
    parse,
)

__all__ = ["DEFAULT_MAX_PAYLOAD", "DoipServer"]

_log = logging.getLogger(__name__)

# ECUs grant blocks of at most 64 KiB; a megabyte is ample and bounds what one socket
# can make the entity buffer.
DEFAULT_MAX_PAYLOAD: Final = 1024 * 1024
# Protocol versions taken on receipt: the 2010 DIS, 2012 and 2019 editions share layouts.
_VERSIONS: Final = frozenset({0x01, 0x02, 0x03})
# What a tester may send on TCP_DATA (table 17), plus its generic NACKs, which are noted
# and never answered, and alive check requests, which some testers (doipclient) send.
_TCP_TYPES: Final = frozenset(
    {
        PayloadType.GENERIC_NACK,
        PayloadType.ROUTING_ACTIVATION_REQUEST,
        PayloadType.ALIVE_CHECK_REQUEST,
        PayloadType.ALIVE_CHECK_RESPONSE,
        PayloadType.DIAGNOSTIC_MESSAGE,
    }
)
_ACTIVATION_TYPES: Final = frozenset({ActivationType.DEFAULT, ActivationType.WWH_OBD})
_CLOSING_HEADER_CODES: Final = frozenset(
    {HeaderNackCode.INCORRECT_PATTERN, HeaderNackCode.INVALID_PAYLOAD_LENGTH}
)
_ADDRESSES: Final = struct.Struct(">HH")
_TESTER_RANGE: Final = range(0x0E00, 0x1000)  # external test equipment (table 13)
_PORT_ATTEMPTS: Final = 8  # port 0: tries to find a number free for both TCP and UDP


@dataclass(frozen=True, slots=True)
class _HeaderFault:
    """A generic header NACK to send in stream order, then maybe close."""

    code: int
    close: bool


class DoipServer(ProtocolServer):
    """A DoIP entity (gateway) serving a :class:`~ecuworks.sim.router.Router`.

    Args:
        router: the vehicle behind the gateway.
        host: the address to listen on (loopback in tests).
        port: the TCP and UDP port; 0 picks a free one (see :attr:`port`).
        tester_addresses: tester addresses allowed to activate routing; ``None`` allows
            every external test equipment address, 0x0E00-0x0FFF.
        max_sockets: concurrently registered tester sockets.
        alive_check_timeout: seconds a tester has to answer an alive check.
        general_inactivity: T_TCP_General_Inactivity, seconds.
        initial_inactivity: T_TCP_Initial_Inactivity, seconds.
        version: the protocol version byte of what the entity sends.
        max_payload: larger payloads are refused with header NACK 0x02.
        drops: the vehicle's drop fault, shared with its other servers.
    """

    protocol = "DoIP"

    def __init__(
        self,
        router: Router,
        *,
        host: str = "127.0.0.1",
        port: int = 13400,
        tester_addresses: frozenset[int] | None = None,
        max_sockets: int = 2,
        alive_check_timeout: float = 0.5,
        general_inactivity: float = 300.0,
        initial_inactivity: float = 2.0,
        version: int = DEFAULT_VERSION,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        drops: DropBudget | None = None,
    ) -> None:
        super().__init__(drops=drops)
        self.router = router
        self.host = host
        self.requested_port = port
        self.tester_addresses = tester_addresses
        self.max_sockets = max_sockets
        self.alive_check_timeout = alive_check_timeout
        self.general_inactivity = general_inactivity
        self.initial_inactivity = initial_inactivity
        self.version = version
        self.max_payload = max_payload
        self.connections: set[_Connection] = set()
        self.registered: dict[int, _Connection] = {}  # tester address -> its socket
        self._registry_lock = asyncio.Lock()
        self._port: int | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port actually served (the real one when constructed with 0)."""
        if self._port is None:
            raise RuntimeError("the DoIP server is not started")
        return self._port

    async def start(self) -> None:
        """Listen on TCP and UDP; with port 0, on a number free for both."""
        loop = asyncio.get_running_loop()
        attempts = _PORT_ATTEMPTS if self.requested_port == 0 else 1
        for attempt in range(attempts):
            server = await loop.create_server(
                lambda: _Connection(self), self.host, self.requested_port
            )
            port: int = server.sockets[0].getsockname()[1]
            try:
                udp, _ = await loop.create_datagram_endpoint(
                    lambda: DatagramResponder(self.answer_datagram, "DoIP"),
                    local_addr=(self.host, port),
                )
            except OSError:
                server.close()
                if attempt + 1 == attempts:
                    raise
                continue
            # ISO 13400-2 has the entity announce itself three times by broadcast now
            # (clause 7.4); ecuworks never broadcasts, so testers ask by unicast instead.
            self._server, self._udp, self._port = server, udp, port
            return

    def accepts(self, tester: int) -> bool:
        """Whether ``tester`` may activate routing."""
        if self.tester_addresses is None:
            return tester in _TESTER_RANGE
        return tester in self.tester_addresses

    async def register(self, connection: _Connection, tester: int) -> RoutingActivationCode:
        """TCP_DATA socket handling of routing activation (clause 7.5)."""
        async with self._registry_lock:
            if connection.tester is not None:
                if connection.tester == tester:
                    return RoutingActivationCode.SUCCESS  # activated again: fine
                return RoutingActivationCode.DENIED_SOURCE_ADDRESS_MISMATCH
            other = self.registered.get(tester)
            if other is not None:
                if await other.alive():
                    return RoutingActivationCode.DENIED_SOURCE_ADDRESS_IN_USE
                other.abort()
            if len(self.registered) >= self.max_sockets:
                sockets = list(self.registered.values())
                answers = await asyncio.gather(*(s.alive() for s in sockets))
                for silent in (
                    s for s, answered in zip(sockets, answers, strict=True) if not answered
                ):
                    silent.abort()
                if len(self.registered) >= self.max_sockets:
                    return RoutingActivationCode.DENIED_ALL_SOCKETS_ACTIVE
            if connection.closed:
                return RoutingActivationCode.DENIED_ALL_SOCKETS_ACTIVE  # gone meanwhile
            connection.tester = tester
            self.registered[tester] = connection
            return RoutingActivationCode.SUCCESS

    def forget(self, connection: _Connection) -> None:
        """Drop a closed socket from the tables."""
        self.connections.discard(connection)
        tester = connection.tester
        if tester is not None and self.registered.get(tester) is connection:
            del self.registered[tester]

    # -- UDP ---------------------------------------------------------------------------

    def answer_datagram(self, data: bytes) -> bytes | None:
        """The UDP answer to one datagram, or None for no answer."""
        try:
            message = parse(data)
        except DoipHeaderError as error:
            return GenericNack(code=error.code, version=self.version).encode()
        except ParseError:  # truncated or trailing bytes, a VIN that is not ASCII
            nack = HeaderNackCode.INVALID_PAYLOAD_LENGTH
            return GenericNack(code=nack, version=self.version).encode()
        return self._answer_udp(message)

    def _answer_udp(self, message: DoipMessage) -> bytes | None:  # noqa: PLR0911
        router = self.router
        if isinstance(message, VehicleIdentificationRequestEid):
            return self._announcement() if message.eid == router.eid else None
        if isinstance(message, VehicleIdentificationRequestVin):
            return self._announcement() if message.vin == router.vin else None
        if isinstance(message, VehicleIdentificationRequest):
            return self._announcement()
        if isinstance(message, EntityStatusRequest):
            return EntityStatusResponse(
                node_type=NodeType.GATEWAY,
                max_sockets=min(self.max_sockets, 0xFF),
                open_sockets=min(len(self.connections), 0xFF),
                max_data_size=self.max_payload,
                version=self.version,
            ).encode()
        if isinstance(message, PowerModeRequest):
            return PowerModeResponse(mode=router.power_mode(), version=self.version).encode()
        if isinstance(
            message,
            GenericNack | VehicleAnnouncement | EntityStatusResponse | PowerModeResponse,
        ):
            return None  # never answer an answer: two entities would talk forever
        return GenericNack(code=HeaderNackCode.UNKNOWN_PAYLOAD_TYPE, version=self.version).encode()

    def _announcement(self) -> bytes:
        router = self.router
        return VehicleAnnouncement(
            vin=router.vin,
            logical_address=router.logical_address,
            eid=router.eid,
            gid=router.gid,
            version=self.version,
        ).encode()


class _Connection(asyncio.Protocol):
    """One tester socket: framing, its registration (clause 7.5) and its ECU tasks.

    Received messages are handled in order by one task per socket (a routing activation
    may wait for alive checks, and what follows it must wait too); alive check responses
    are taken at once, since the socket they answer for may be the one waiting.
    """

    def __init__(self, server: DoipServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.tester: int | None = None  # the tester address activated on this socket
        self.closed = False
        self._buffer = bytearray()
        self._skip = 0  # payload bytes still to discard after NACK 0x01 or 0x02
        self._broken = False  # framing lost: nothing more is read
        self._inbox: asyncio.Queue[DoipMessage | _HeaderFault | None] = asyncio.Queue()
        self._alive: asyncio.Future[bool] | None = None
        self._greeted = False  # a routing activation request arrived
        self._opened = self._last_activity = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._requests = RequestChains(
            server,
            self.send,
            lambda ecu, tester, answer: encode_diagnostic(ecu, tester, answer, server.version),
        )

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:  # an ACK and an answer go out back to back: no Nagle delay
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server = self.server
        server.connections.add(self)
        loop = asyncio.get_running_loop()
        self._opened = self._last_activity = loop.time()
        self._timer = loop.call_later(server.initial_inactivity, self._check_idle)
        server.spawn(self._run())

    def data_received(self, data: bytes) -> None:
        if self._broken or self.closed:
            return
        keep = self.server.cut_point(len(data))
        if keep is None:
            self._receive(data)
        else:  # the drop fault: take what came before the cut, then cut
            self._receive(data[:keep])
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.forget(self)
        if self._timer is not None:
            self._timer.cancel()
        if self._alive is not None and not self._alive.done():
            self._alive.set_result(False)
        self._inbox.put_nowait(None)  # _run handles what arrived, then ends

    # -- socket ------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """Write one frame unless the socket is going away."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(frame)
            self._last_activity = asyncio.get_running_loop().time()

    def close(self) -> None:
        """Close after what was written is sent (a refusal's answer, a NACK)."""
        self.closed = True
        self.server.forget(self)
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping unsent data (a silent tester, the drop fault)."""
        self.closed = True
        self.server.forget(self)
        if self.transport is not None:
            self.transport.abort()

    async def alive(self) -> bool:
        """The entity's alive check: whether the tester answers it in time."""
        if self.closed:
            return False
        if self._alive is None or self._alive.done():
            self._alive = asyncio.get_running_loop().create_future()
            self.send(AliveCheckRequest(version=self.server.version).encode())
        try:
            async with asyncio.timeout(self.server.alive_check_timeout):
                return await asyncio.shield(self._alive)
        except TimeoutError:
            return False

    def _check_idle(self) -> None:
        server = self.server
        if self._greeted:
            limit, since, name = server.general_inactivity, self._last_activity, "general"
        else:
            limit, since, name = server.initial_inactivity, self._opened, "initial"
        remaining = since + limit - asyncio.get_running_loop().time()
        if remaining > 0:
            self._timer = asyncio.get_running_loop().call_later(remaining, self._check_idle)
            return
        _log.info("DoIP: closing a tester socket after T_TCP_%s_Inactivity", name.title())
        self.close()

    # -- generic header handler (clause 7.1.2) -----------------------------------------

    def _receive(self, data: bytes) -> None:
        self._last_activity = asyncio.get_running_loop().time()
        if self._skip:
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            data = data[skipped:]
        buffer = self._buffer
        buffer += data
        offset = 0
        while len(buffer) - offset >= HEADER_SIZE:
            version, inverse, payload_type, length = HEADER.unpack_from(buffer, offset)
            if inverse != version ^ 0xFF or version not in _VERSIONS:
                self._fail(HeaderNackCode.INCORRECT_PATTERN)
                return
            if payload_type not in _TCP_TYPES or length > self.server.max_payload:
                code = (
                    HeaderNackCode.UNKNOWN_PAYLOAD_TYPE
                    if payload_type not in _TCP_TYPES
                    else HeaderNackCode.MESSAGE_TOO_LARGE
                )
                self._inbox.put_nowait(_HeaderFault(code, close=False))
                available = len(buffer) - offset - HEADER_SIZE
                if available < length:  # discard the rest of it as it arrives
                    self._skip = length - available
                    offset = len(buffer)
                    break
                offset += HEADER_SIZE + length
                continue
            end = offset + HEADER_SIZE + length
            if len(buffer) < end:
                break
            if payload_type == PayloadType.DIAGNOSTIC_MESSAGE and length >= 5:  # hot path
                source, target = _ADDRESSES.unpack_from(buffer, offset + HEADER_SIZE)
                data_start = offset + HEADER_SIZE + 4
                message: DoipMessage = DiagnosticMessage(
                    source=source, target=target, data=bytes(buffer[data_start:end])
                )
            else:
                try:
                    message = parse(bytes(buffer[offset:end]))
                except DoipHeaderError as error:
                    self._fail(error.code)
                    return
                except ParseError:
                    self._fail(HeaderNackCode.INVALID_PAYLOAD_LENGTH)
                    return
            offset = end
            self._accept(message)
        del buffer[:offset]

    def _fail(self, code: int) -> None:
        """A header error that ends the stream: NACK (in order), then close."""
        self._broken = True
        self._buffer.clear()
        self._inbox.put_nowait(_HeaderFault(code, close=code in _CLOSING_HEADER_CODES))

    def _accept(self, message: DoipMessage) -> None:
        if isinstance(message, AliveCheckResponse):
            if self._alive is not None and not self._alive.done():
                self._alive.set_result(True)
            return
        if isinstance(message, RoutingActivationRequest) and not self._greeted:
            self._greeted = True  # from now on T_TCP_General_Inactivity applies
            if self._timer is not None:
                self._timer.cancel()
            self._check_idle()
        self._inbox.put_nowait(message)

    # -- handlers, in arrival order ----------------------------------------------------

    async def _run(self) -> None:
        while (item := await self._inbox.get()) is not None:
            try:
                await self._handle(item)
            except Exception:  # a bug must cost this socket, never the entity
                _log.exception("DoIP: failed on %r; closing the socket", item)
                self.abort()

    async def _handle(self, item: DoipMessage | _HeaderFault) -> None:
        version = self.server.version
        if isinstance(item, DiagnosticMessage):
            self._diagnostic(item)
        elif isinstance(item, _HeaderFault):
            self.send(GenericNack(code=item.code, version=version).encode())
            if item.close:
                self.close()
        elif isinstance(item, RoutingActivationRequest):
            await self._activate(item)
        elif isinstance(item, AliveCheckRequest):
            # Entity to tester only in the standard; doipclient asks anyway. Answering
            # with the entity's address costs nothing.
            address = self.server.router.logical_address
            self.send(AliveCheckResponse(source_address=address, version=version).encode())
        elif isinstance(item, GenericNack):
            _log.info("DoIP: the tester sent header NACK 0x%02X", item.code)

    async def _activate(self, request: RoutingActivationRequest) -> None:
        """Routing activation handler (clause 7.5)."""
        if self.closed:
            return
        server = self.server
        tester = request.source_address
        if not server.accepts(tester):
            code = RoutingActivationCode.DENIED_UNKNOWN_SOURCE_ADDRESS
        elif request.activation_type not in _ACTIVATION_TYPES:
            code = RoutingActivationCode.DENIED_UNSUPPORTED_ACTIVATION_TYPE
        else:
            code = await server.register(self, tester)
        response = RoutingActivationResponse(
            tester_address=tester,
            entity_address=server.router.logical_address,
            code=code,
            version=server.version,
        )
        self.send(response.encode())
        if not code.activated:
            self.close()

    def _diagnostic(self, message: DiagnosticMessage) -> None:
        """Diagnostic message handler (clause 7.8)."""
        server = self.server
        router = server.router
        tester, target = self.tester, message.target
        if tester is None or message.source != tester:
            self._nack(message, DiagnosticNackCode.INVALID_SOURCE_ADDRESS)
            self.close()
            return
        functional = target == FUNCTIONAL_ADDRESS and not router.knows(target)
        if not functional and not router.knows(target):
            self._nack(message, DiagnosticNackCode.UNKNOWN_TARGET_ADDRESS)
            return
        ack = DiagnosticMessageAck(source=target, target=tester, version=server.version)
        self.send(ack.encode())
        self._requests.submit(router, tester, target, message.data, functional=functional)

    def _nack(self, message: DiagnosticMessage, code: DiagnosticNackCode) -> None:
        nack = DiagnosticMessageNack(
            source=message.target, target=message.source, code=code, version=self.server.version
        )
        self.send(nack.encode())
