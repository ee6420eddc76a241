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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.transport.server_base import (
    Handler,
    LogEntry,
    LoopbackTestServer,
    echo_handler,
)

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


class DoipTestServer(LoopbackTestServer[_Peer]):
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

    _alive_reply = AliveCheckResponse

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
        super().__init__(handler)
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

    # -- lifecycle ---------------------------------------------------------------------

    def _tls(self) -> ssl.SSLContext | None:
        return self.ssl

    def _protocol(self) -> asyncio.Protocol:
        return _EntityProtocol(self)

    # -- the entity --------------------------------------------------------------------

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

    def _alive_check_request(self) -> bytes:
        return AliveCheckRequest(version=self.version).encode()

    def _frame_answer(self, target: int, tester: int, response: bytes) -> bytes:
        return DiagnosticMessage(
            source=target, target=tester, data=response, version=self.version
        ).encode()


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
