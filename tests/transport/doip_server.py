"""A small DoIP entity on loopback for tests and benchmarks: a gateway with scripted ECUs.

It speaks ISO 13400-2 over TCP (optionally TLS) on ``127.0.0.1`` and an ephemeral port:
routing activation, a positive acknowledge for each diagnostic message, then the answers a
handler produces, sent from the target's address. Tests steer it and observe it:

- ``handler(target, request)`` returns a list of responses or is an async generator; it may
  wait on events the test controls, so answers can be held back and released in any order.
- ``targets`` are the ECUs behind the gateway: a message to any other address gets a
  diagnostic NACK "unknown target address", and the functional address fans out to them.
- ``log`` records every request received and every response sent, in order;
  :meth:`wait_until` waits for a condition on it (no sleeps).
- :meth:`alive_check` asks the tester whether it is still there and returns its answer;
  :meth:`drop` or ``drop_after`` cut the connection; :meth:`send_raw` sends any bytes.
- :func:`self_signed_tls` makes the TLS contexts for both ends.

Only a test double: it trusts the tester, and keeps no per-socket activation state beyond
what the tests need. The simulator (``ecuworks.sim``) is the real server side.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from ecuworks.errors import DoipHeaderError
from ecuworks.wire.doip import (
    DEFAULT_VERSION,
    FUNCTIONAL_ADDRESS,
    TESTER_ADDRESS,
    AliveCheckRequest,
    AliveCheckResponse,
    DiagnosticMessage,
    DiagnosticMessageAck,
    DiagnosticMessageNack,
    DiagnosticNackCode,
    DoipDecoder,
    DoipMessage,
    GenericNack,
    RoutingActivationCode,
    RoutingActivationRequest,
    RoutingActivationResponse,
)

__all__ = ["DoipTestServer", "Handler", "LogEntry", "echo_handler", "self_signed_tls"]

Handler = Callable[[int, bytes], Awaitable[Iterable[bytes]] | AsyncIterator[bytes]]
"""``handler(target, request)``: a coroutine returning the responses, or an async generator."""


async def echo_handler(target: int, request: bytes) -> list[bytes]:
    """Answer every request positively: service id + 0x40, then the request's parameters."""
    return [bytes([request[0] | 0x40]) + request[1:]]


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One diagnostic request received (``"request"``) or response sent (``"response"``)."""

    kind: str
    target: int  # the ECU: the request's target, the response's source
    data: bytes


@dataclass(eq=False)
class _Peer:
    """One accepted tester connection."""

    transport: asyncio.Transport
    received: list[DoipMessage] = field(default_factory=list)
    bytes_received: int = 0
    activated: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class _EntityProtocol(asyncio.Protocol):
    def __init__(self, server: DoipTestServer) -> None:
        self.server = server
        self.decoder = DoipDecoder()
        self.peer: _Peer | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # an ack and an answer go out back to back: Nagle would hold the answer
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.peer = _Peer(transport)
        self.server.peers.append(self.peer)
        self.server._changed()

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        assert peer is not None
        limit = self.server.drop_after
        if limit is not None and peer.bytes_received + len(data) >= limit:
            data = data[: limit - peer.bytes_received]
            peer.transport.abort()
        peer.bytes_received += len(data)
        try:
            messages = self.decoder.feed(data)
        except DoipHeaderError as error:
            peer.transport.write(GenericNack(code=error.code).encode())
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


class DoipTestServer:
    """A DoIP gateway on ``127.0.0.1`` for tests; use as ``async with DoipTestServer() as s``.

    Args:
        handler: produces the ECUs' answers; default :func:`echo_handler`.
        targets: ECU addresses behind the gateway; empty means every address is known.
        functional_targets: the ECUs a functional request reaches; default ``targets``.
        entity_address: the gateway's logical address in the activation response.
        testers: tester addresses the gateway knows; others get activation code 0x00.
        activation_code: the answer to a known tester's routing activation.
        answer_activation: ``False`` leaves routing activation unanswered.
        ack: send a diagnostic positive acknowledge before the answers.
        drop_after: abort a connection once it has received this many bytes.
        ssl: serve TLS with this context.
        version: DoIP protocol version of the frames it sends.
    """

    def __init__(
        self,
        handler: Handler = echo_handler,
        *,
        targets: Iterable[int] = (),
        functional_targets: Iterable[int] | None = None,
        entity_address: int = 0x0010,
        testers: Iterable[int] = (TESTER_ADDRESS,),
        functional_address: int = FUNCTIONAL_ADDRESS,
        activation_code: int = RoutingActivationCode.SUCCESS,
        answer_activation: bool = True,
        ack: bool = True,
        drop_after: int | None = None,
        ssl: ssl.SSLContext | None = None,
        version: int = DEFAULT_VERSION,
    ) -> None:
        self.handler = handler
        self.targets = frozenset(targets)
        self.functional_targets = tuple(
            sorted(self.targets) if functional_targets is None else functional_targets
        )
        self.entity_address = entity_address
        self.testers = frozenset(testers)
        self.functional_address = functional_address
        self.activation_code = activation_code
        self.answer_activation = answer_activation
        self.ack = ack
        self.drop_after = drop_after
        self.ssl = ssl
        self.version = version
        self.peers: list[_Peer] = []
        self.log: list[LogEntry] = []
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> Self:
        """Listen on ``127.0.0.1`` and an ephemeral port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _EntityProtocol(self), "127.0.0.1", 0, ssl=self.ssl
        )
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def host(self) -> str:
        """The address it listens on."""
        return "127.0.0.1"

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        assert self._port is not None, "start() the server first"
        return self._port

    async def close(self) -> None:
        """Stop listening, drop every connection and cancel pending answers."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for peer in self.peers:
            peer.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for peer in self.peers:
            await peer.closed.wait()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- what tests observe and trigger ------------------------------------------------

    @property
    def accepted(self) -> int:
        """How many TCP connections were accepted so far."""
        return len(self.peers)

    @property
    def peer(self) -> _Peer:
        """The latest connection."""
        assert self.peers, "no tester has connected"
        return self.peers[-1]

    def requests(self, target: int | None = None) -> list[bytes]:
        """The diagnostic requests received so far, optionally for one target only."""
        return [
            e.data
            for e in self.log
            if e.kind == "request" and (target is None or e.target == target)
        ]

    async def wait_until(
        self,
        condition: Callable[[], bool],
        timeout: float = 5.0,
    ) -> None:
        """Wait until ``condition()`` holds; it is checked after every server event."""
        if condition():
            return
        waiter = (condition, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter[1]
        finally:
            self._waiters.remove(waiter)

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are on the latest connection."""
        self.peer.transport.write(data)

    def drop(self) -> None:
        """Abort the latest connection, as a gateway that lost power would."""
        self.peer.transport.abort()

    async def alive_check(self, timeout: float = 5.0) -> AliveCheckResponse:
        """Send an alive check request on the latest connection; return the tester's answer."""
        peer = self.peer
        seen = len(peer.received)
        peer.transport.write(AliveCheckRequest(version=self.version).encode())

        def answered() -> bool:
            return any(isinstance(m, AliveCheckResponse) for m in peer.received[seen:])

        await self.wait_until(answered, timeout)
        return next(m for m in peer.received[seen:] if isinstance(m, AliveCheckResponse))

    # -- the entity --------------------------------------------------------------------

    def _changed(self) -> None:
        # Protocol callbacks are synchronous: resolve the waiters whose condition now holds.
        for condition, future in self._waiters:
            if not future.done() and condition():
                future.set_result(None)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _handle(self, peer: _Peer, message: DoipMessage) -> None:
        if isinstance(message, DiagnosticMessage):
            self.log.append(LogEntry("request", message.target, message.data))
        if peer.transport.is_closing():
            return  # dropped: the tester sent it, nobody answers
        if isinstance(message, RoutingActivationRequest):
            if not self.answer_activation:
                return
            code = (
                self.activation_code
                if message.source_address in self.testers
                else RoutingActivationCode.DENIED_UNKNOWN_SOURCE_ADDRESS
            )
            peer.activated = code == RoutingActivationCode.SUCCESS
            response = RoutingActivationResponse(
                tester_address=message.source_address,
                entity_address=self.entity_address,
                code=code,
                version=self.version,
            )
            peer.transport.write(response.encode())
        elif isinstance(message, DiagnosticMessage):
            if not peer.activated:
                self._nack(peer, message, DiagnosticNackCode.INVALID_SOURCE_ADDRESS)
            elif message.target == self.functional_address:
                self._acknowledge(peer, message)
                for target in self.functional_targets:
                    self._spawn(self._answer(peer, target, message.source, message.data))
            elif self.targets and message.target not in self.targets:
                self._nack(peer, message, DiagnosticNackCode.UNKNOWN_TARGET_ADDRESS)
            else:
                self._acknowledge(peer, message)
                self._spawn(self._answer(peer, message.target, message.source, message.data))

    def _acknowledge(self, peer: _Peer, message: DiagnosticMessage) -> None:
        if self.ack:
            ack = DiagnosticMessageAck(
                source=message.target,
                target=message.source,
                previous=message.data[:4],
                version=self.version,
            )
            peer.transport.write(ack.encode())

    def _nack(self, peer: _Peer, message: DiagnosticMessage, code: int) -> None:
        nack = DiagnosticMessageNack(
            source=message.target,
            target=message.source,
            code=code,
            previous=message.data[:4],
            version=self.version,
        )
        peer.transport.write(nack.encode())

    async def _answer(self, peer: _Peer, target: int, tester: int, request: bytes) -> None:
        produced = self.handler(target, request)
        if isinstance(produced, AsyncIterator):
            async for response in produced:
                self._respond(peer, target, tester, response)
        else:
            for response in await produced:
                self._respond(peer, target, tester, response)

    def _respond(self, peer: _Peer, target: int, tester: int, response: bytes) -> None:
        if peer.transport.is_closing():
            return
        frame = DiagnosticMessage(source=target, target=tester, data=response, version=self.version)
        peer.transport.write(frame.encode())
        self.log.append(LogEntry("response", target, response))
        self._changed()


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway certificate for ``127.0.0.1``: ``(server context, client context)``.

    Made with the ``openssl`` command line (Debian's ``openssl`` package), as the test
    environment has no Python certificate library; the client context trusts only it.
    """
    openssl = shutil.which("openssl")
    assert openssl is not None, "the TLS tests need the openssl command (apt-get install openssl)"
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cert)
    return server, client
