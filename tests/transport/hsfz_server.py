"""A small HSFZ gateway on loopback for tests: TCP diagnostics and UDP identification.

It speaks HSFZ on ``127.0.0.1`` and ephemeral ports: an acknowledge (echo of the request's
addresses and first payload bytes) for each diagnostic frame, then the answers a handler
produces, sent from the target's address. Tests steer it and observe it:

- ``handler(target, request)`` returns a list of responses or is an async generator; it may
  wait on events the test controls, so answers can be held back and released in any order.
- ``targets`` are the ECUs behind the gateway: a frame to any other address gets the error
  word "incorrect destination address" instead of an acknowledge, and the functional
  address fans out to them. A frame from another tester address gets "incorrect tester
  address".
- ``log`` records every request received and every response sent, in order; each peer's
  ``raw`` keeps the exact bytes received; :meth:`wait_until` waits for a condition (no
  sleeps).
- :meth:`alive_check` asks the tester whether it is still there; :meth:`drop` or
  ``drop_after`` cut the connection; :meth:`send_raw` sends any bytes.
- :class:`IdentificationResponder` answers UDP identification requests (or stays silent).

Only a test double; the simulator (``ecuworks.sim``) is the real server side.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self, cast

from tests.transport.server_base import (
    Handler,
    LogEntry,
    LoopbackTestServer,
    echo_handler,
)

from ecuworks.errors import ParseError
from ecuworks.wire.hsfz import (
    FUNCTIONAL_ADDRESS,
    TESTER_ADDRESS,
    Acknowledge,
    AliveCheck,
    AliveCheckReply,
    ControlWord,
    DiagnosticMessage,
    ErrorFrame,
    HsfzDecoder,
    HsfzMessage,
    IdentificationReply,
    IdentificationRequest,
    parse,
)

__all__ = [
    "Handler",
    "HsfzTestServer",
    "IdentificationResponder",
    "LogEntry",
    "echo_handler",
]


@dataclass(eq=False)
class _Peer:
    """One accepted tester connection."""

    transport: asyncio.Transport
    received: list[HsfzMessage] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class _GatewayProtocol(asyncio.Protocol):
    def __init__(self, server: HsfzTestServer) -> None:
        self.server = server
        self.decoder = HsfzDecoder()
        self.peer: _Peer | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        # An acknowledge and the answer right behind it: Nagle must not hold the answer.
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.peer = _Peer(transport)
        self.server.peers.append(self.peer)
        self.server._changed()

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        assert peer is not None
        limit = self.server.drop_after
        if limit is not None and len(peer.raw) + len(data) >= limit:
            data = data[: limit - len(peer.raw)]
            peer.transport.abort()
        peer.raw += data
        try:
            messages = self.decoder.feed(data)
        except ParseError:
            peer.transport.close()
            return
        for message in messages:
            peer.received.append(message)
            self.server._handle(peer, message)
        self.server._changed()

    def connection_lost(self, exc: Exception | None) -> None:
        assert self.peer is not None
        self.peer.closed.set()
        self.server._changed()


class HsfzTestServer(LoopbackTestServer[_Peer]):
    """An HSFZ gateway on ``127.0.0.1`` for tests; use as ``async with HsfzTestServer() as s``.

    Args:
        handler: produces the ECUs' answers; default :func:`echo_handler`.
        targets: ECU addresses behind the gateway; empty means every address is known.
        functional_targets: the ECUs a functional request reaches; default ``targets``.
        tester: the tester address the gateway accepts.
        functional_address: the address that fans out to ``functional_targets``.
        ack: acknowledge each diagnostic frame before the answers.
        echo_length: how many payload bytes an acknowledge echoes.
        drop_after: abort a connection once it has received this many bytes.
    """

    _alive_reply = AliveCheckReply

    def __init__(
        self,
        handler: Handler = echo_handler,
        *,
        targets: Iterable[int] = (),
        functional_targets: Iterable[int] | None = None,
        tester: int = TESTER_ADDRESS,
        functional_address: int = FUNCTIONAL_ADDRESS,
        ack: bool = True,
        echo_length: int = 5,
        drop_after: int | None = None,
    ) -> None:
        super().__init__(handler)
        self.targets = frozenset(targets)
        self.functional_targets = tuple(
            sorted(self.targets) if functional_targets is None else functional_targets
        )
        self.tester = tester
        self.functional_address = functional_address
        self.ack = ack
        self.echo_length = echo_length
        self.drop_after = drop_after

    # -- lifecycle ---------------------------------------------------------------------

    def _protocol(self) -> asyncio.Protocol:
        return _GatewayProtocol(self)

    # -- the gateway -------------------------------------------------------------------

    def _handle(self, peer: _Peer, message: HsfzMessage) -> None:
        if not isinstance(message, DiagnosticMessage):
            return  # alive check replies and the like: recorded in ``received`` only
        self.log.append(LogEntry("request", message.target, message.payload))
        if peer.transport.is_closing():
            return  # dropped: the tester sent it, nobody answers
        if message.source != self.tester:
            data = bytes([self.tester, message.source])
            self._refuse(peer, ControlWord.INCORRECT_TESTER_ADDRESS, data)
        elif message.target == self.functional_address:
            self._acknowledge(peer, message)
            for target in self.functional_targets:
                self._spawn(self._answer(peer, target, message.source, message.payload))
        elif self.targets and message.target not in self.targets:
            data = bytes([message.source, message.target])
            self._refuse(peer, ControlWord.INCORRECT_DESTINATION_ADDRESS, data)
        else:
            self._acknowledge(peer, message)
            self._spawn(self._answer(peer, message.target, message.source, message.payload))

    def _acknowledge(self, peer: _Peer, message: DiagnosticMessage) -> None:
        if self.ack:
            ack = Acknowledge(
                source=message.source,
                target=message.target,
                echo=message.payload[: self.echo_length],
            )
            peer.transport.write(ack.encode())

    def _refuse(self, peer: _Peer, word: ControlWord, data: bytes) -> None:
        peer.transport.write(ErrorFrame(control=word, data=data).encode())

    def _alive_check_request(self) -> bytes:
        return AliveCheck().encode()

    def _frame_answer(self, target: int, tester: int, response: bytes) -> bytes:
        return DiagnosticMessage(source=target, target=tester, payload=response).encode()


class IdentificationResponder(asyncio.DatagramProtocol):
    """Answers HSFZ identification requests on UDP ``127.0.0.1``, like a gateway on 6811.

    Use as ``async with IdentificationResponder(reply) as r``; ``reply=None`` keeps it
    silent (a request that goes unanswered). ``received`` holds every datagram it got.

    Args:
        reply: the answer, as an identification or as raw bytes; ``None`` for silence.
    """

    def __init__(self, reply: IdentificationReply | bytes | None) -> None:
        self.reply = reply.encode() if isinstance(reply, IdentificationReply) else reply
        self.received: list[bytes] = []
        self._transport: asyncio.DatagramTransport | None = None
        self._closed: asyncio.Future[None] | None = None

    @property
    def host(self) -> str:
        """The address it listens on."""
        return "127.0.0.1"

    @property
    def port(self) -> int:
        """The UDP port it listens on."""
        assert self._transport is not None, "enter the responder first"
        port: int = self._transport.get_extra_info("sockname")[1]
        return port

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._transport is not None
        assert self._closed is not None
        self._transport.close()
        await self._closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport does not subclass DatagramTransport (3.11).
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.append(data)
        try:
            request = parse(data)
        except ParseError:
            return
        if isinstance(request, IdentificationRequest) and self.reply is not None:
            assert self._transport is not None
            self._transport.sendto(self.reply, addr)

    def connection_lost(self, exc: Exception | None) -> None:
        assert self._closed is not None
        if not self._closed.done():
            self._closed.set_result(None)
