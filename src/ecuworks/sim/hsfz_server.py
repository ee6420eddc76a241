"""The simulated F-series gateway's HSFZ server: diagnostics on TCP, identification on UDP.

HSFZ has no public standard; the layouts are those of :mod:`ecuworks.wire.hsfz` and its
sources (scapy's layer, EdiabasLib, DOMAIN.md). What this gateway does with each frame
from a tester:

- **diagnostic** (0x0001): from another tester address than the configured one, error
  word 0x0040 with the expected and the received address; to an address the router does
  not know (and not the functional 0xDF), 0x0043. Otherwise the acknowledge (0x0002)
  echoing the request's source, target and first five payload bytes, then the router's
  answers as diagnostic frames from the ECU. As with DoIP, each ECU's answers keep their
  order and different ECUs interleave: a slow ECU never holds back another.
- an **unknown control word** is 0x0041, a frame whose data does not fit its control
  word 0x0042, a frame over ``max_frame_data`` 0x0044 (its data is skipped unread). The
  socket stays open in all three cases (decided here): HSFZ's length field still frames
  the stream, so nothing is lost by carrying on, and a tester learns more from the error
  word than from a reset.
- the **alive check reply** (0x0013) answers the gateway's alive check: with
  ``alive_check_interval`` set, the gateway sends ``0012 <gateway> <tester>`` that often
  and closes a socket whose tester does not reply within ``alive_check_timeout``.
- **identification** (0x0011, empty) is answered on TCP as on UDP; ignition status
  (0x0010) and error words from a tester are noted and ignored.

Several testers may be connected at once, as real gateways allow. UDP 6811 answers an
identification request to its sender with ``DIAGADR<addr>BMWMAC<eid>BMWVIN<vin>``; other
datagrams are ignored (HSFZ has no UDP error reply).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Final

from ecuworks.errors import ParseError
from ecuworks.sim.router import Router
from ecuworks.sim.server_base import (
    DatagramResponder,
    DropBudget,
    ProtocolServer,
    RequestChains,
)
from ecuworks.wire.hsfz import (
    FUNCTIONAL_ADDRESS,
    HEADER,
    HEADER_SIZE,
    TESTER_ADDRESS,
    Acknowledge,
    AliveCheck,
    AliveCheckReply,
    ControlWord,
    ErrorFrame,
    HsfzMessage,
    IdentificationReply,
    IdentificationRequest,
    encode_diagnostic,
    parse,
)

__all__ = ["DEFAULT_MAX_FRAME_DATA", "HsfzServer"]

_log = logging.getLogger(__name__)

# Addresses plus a 1 MiB payload: far beyond any ECU's block length (64 KiB at most).
DEFAULT_MAX_FRAME_DATA: Final = 1024 * 1024 + 2
_ECHO: Final = 5  # payload bytes an acknowledge echoes (gateways echo up to five)
_CONTROL_WORDS: Final = frozenset(int(word) for word in ControlWord)


class HsfzServer(ProtocolServer):
    """An F-series gateway (ZGW) speaking HSFZ for a :class:`~ecuworks.sim.router.Router`.

    Args:
        router: the vehicle behind the gateway.
        host: the address to listen on (loopback in tests).
        port: the diagnostic TCP port; 0 picks a free one (see :attr:`port`).
        udp_port: the identification UDP port; 0 picks a free one (:attr:`udp_port`).
        tester_address: the one tester address the gateway accepts.
        alive_check_interval: seconds between alive checks; ``None`` sends none.
        alive_check_timeout: seconds a tester has to reply to an alive check.
        max_frame_data: longer frames are refused with 0x0044 and skipped.
        drops: the vehicle's drop fault, shared with its other servers.
    """

    protocol = "HSFZ"

    def __init__(
        self,
        router: Router,
        *,
        host: str = "127.0.0.1",
        port: int = 6801,
        udp_port: int = 6811,
        tester_address: int = TESTER_ADDRESS,
        alive_check_interval: float | None = None,
        alive_check_timeout: float = 1.0,
        max_frame_data: int = DEFAULT_MAX_FRAME_DATA,
        drops: DropBudget | None = None,
    ) -> None:
        super().__init__(drops=drops)
        self.router = router
        self.host = host
        self.requested_ports = (port, udp_port)
        self.tester_address = tester_address
        self.alive_check_interval = alive_check_interval
        self.alive_check_timeout = alive_check_timeout
        self.max_frame_data = max_frame_data
        self.connections: set[_Connection] = set()
        self._ports: tuple[int, int] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port actually served."""
        if self._ports is None:
            raise RuntimeError("the HSFZ server is not started")
        return self._ports[0]

    @property
    def udp_port(self) -> int:
        """The UDP port actually served."""
        if self._ports is None:
            raise RuntimeError("the HSFZ server is not started")
        return self._ports[1]

    async def start(self) -> None:
        """Listen on TCP and UDP."""
        loop = asyncio.get_running_loop()
        port, udp_port = self.requested_ports
        server = await loop.create_server(lambda: _Connection(self), self.host, port)
        try:
            udp, _ = await loop.create_datagram_endpoint(
                lambda: DatagramResponder(self.answer_datagram, "HSFZ"),
                local_addr=(self.host, udp_port),
            )
        except OSError:
            server.close()
            raise
        self._server, self._udp = server, udp
        self._ports = (server.sockets[0].getsockname()[1], udp.get_extra_info("sockname")[1])

    def answer_datagram(self, data: bytes) -> bytes | None:
        """The UDP answer to one datagram: the identification, to a request for it.

        Raises:
            ParseError: not HSFZ (HSFZ has no error reply on UDP).
        """
        return self.identification() if isinstance(parse(data), IdentificationRequest) else None

    def identification(self) -> bytes:
        """The identification frame: gateway address, MAC (the EID) and VIN."""
        router = self.router
        reply = IdentificationReply.build(
            diag_address=router.logical_address, mac=router.eid.hex().upper(), vin=router.vin
        )
        return reply.encode()


class _Connection(asyncio.Protocol):
    """One tester socket: framing, acknowledges and error words, its ECU tasks."""

    def __init__(self, server: HsfzServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._skip = 0  # data bytes of a refused over-long frame still to discard
        self._reply: asyncio.Future[bool] | None = None  # True: the tester replied
        self._requests = RequestChains(server, self.send, encode_diagnostic)

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:  # an acknowledge and an answer go out back to back
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self)
        if self.server.alive_check_interval is not None:
            self.server.spawn(self._check_alive(self.server.alive_check_interval))

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        keep = self.server.cut_point(len(data))
        if keep is None:
            self._receive(data)
        else:  # the drop fault: take what came before the cut, then cut
            self._receive(data[:keep])
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        if self._reply is not None and not self._reply.done():
            self._reply.set_result(False)

    # -- socket ------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """Write one frame unless the socket is going away."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def abort(self) -> None:
        """Close at once, dropping unsent data."""
        self.closed = True
        self.server.connections.discard(self)
        if self.transport is not None:
            self.transport.abort()

    async def _check_alive(self, interval: float) -> None:
        """Alive-check the tester every ``interval`` seconds; drop it when it is silent."""
        server = self.server
        check = AliveCheck(source=server.router.logical_address, target=server.tester_address)
        loop = asyncio.get_running_loop()
        while not self.closed:
            await asyncio.sleep(interval)
            if self.closed:
                return
            self._reply = reply = loop.create_future()
            self.send(check.encode())
            try:
                async with asyncio.timeout(server.alive_check_timeout):
                    answered = await reply
            except TimeoutError:
                answered = False
            if not answered:
                if not self.closed:
                    _log.info("HSFZ: the tester did not answer the alive check; closing")
                    self.abort()
                return

    # -- framing -----------------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        if self._skip:
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            data = data[skipped:]
        buffer = self._buffer
        buffer += data
        offset = 0
        while len(buffer) - offset >= HEADER_SIZE and not self.closed:
            length, control = HEADER.unpack_from(buffer, offset)
            if length > self.server.max_frame_data:
                self._error(ControlWord.MESSAGE_TOO_LARGE)
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
            start = offset + HEADER_SIZE
            offset = end
            if control == ControlWord.DIAGNOSTIC and length >= 2:  # the hot path
                payload = bytes(buffer[start + 2 : end])
                self._diagnostic(buffer[start], buffer[start + 1], payload)
                continue
            try:
                message = parse(bytes(buffer[start - HEADER_SIZE : end]))
            except ParseError:
                self._error(
                    ControlWord.INCORRECT_FORMAT
                    if control in _CONTROL_WORDS
                    else ControlWord.INCORRECT_CONTROL_WORD
                )
                continue
            self._dispatch(message)
        del buffer[:offset]

    def _error(self, word: ControlWord, data: bytes = b"") -> None:
        self.send(ErrorFrame(control=word, data=data).encode())

    def _dispatch(self, message: HsfzMessage) -> None:
        if isinstance(message, AliveCheckReply):
            if self._reply is not None and not self._reply.done():
                self._reply.set_result(True)
        elif isinstance(message, IdentificationRequest):
            self.send(self.server.identification())
        elif isinstance(message, Acknowledge | IdentificationReply | AliveCheck):
            # the gateway's own frames: not something a tester sends it
            self._error(ControlWord.INCORRECT_CONTROL_WORD)
        else:  # ignition status, a tester's error word
            _log.info("HSFZ: ignored %r from the tester", message)

    # -- diagnostics -------------------------------------------------------------------

    def _diagnostic(self, source: int, target: int, payload: bytes) -> None:
        server = self.server
        router = server.router
        if source != server.tester_address:
            self._error(
                ControlWord.INCORRECT_TESTER_ADDRESS, bytes([server.tester_address, source])
            )
            return
        functional = target == FUNCTIONAL_ADDRESS and not router.knows(target)
        if not functional and not router.knows(target):
            self._error(ControlWord.INCORRECT_DESTINATION_ADDRESS)
            return
        self.send(Acknowledge(source=source, target=target, echo=payload[:_ECHO]).encode())
        self._requests.submit(router, source, target, payload, functional=functional)
