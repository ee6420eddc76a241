"""The simulator's HSFZ gateway on loopback, driven by our link and by a plain socket whose
bytes scapy's HSFZ layer (a model no one here wrote) decodes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.contrib.automotive.bmw.hsfz import HSFZ
from scapy.contrib.automotive.uds import UDS_RDBI, UDS_RDBIPR

from ecuworks.errors import LinkError, TransportNack
from ecuworks.sim.hsfz_server import HsfzServer
from ecuworks.sim.router import StaticRouter
from ecuworks.transport.base import LinkEvent, LinkEventKind
from ecuworks.transport.hsfz import HsfzLink, identify
from ecuworks.wire.hsfz import (
    Acknowledge,
    AliveCheck,
    ControlWord,
    DiagnosticMessage,
    ErrorFrame,
    IdentificationReply,
    IdentificationRequest,
    encode_diagnostic,
)

VIN = "WBA3B1C50DF000001"
EID = bytes.fromhex("001A37A1B2C3")
ECUS = (0x10, 0x12, 0x40)
READ_VIN = bytes.fromhex("22F190")
READ_NAME = bytes.fromhex("22F197")
SLOW = bytes.fromhex("220001")
HOST = "127.0.0.1"


def _name(ecu: int) -> bytes:
    return b"\x62\xf1\x97" + f"ECU{ecu:02X}".encode()


class _Router(StaticRouter):
    """The table below; answers to SLOW wait for ``release`` (``asked`` says it came)."""

    def __init__(self) -> None:
        table = {READ_VIN: [b"\x62\xf1\x90" + VIN.encode()], SLOW: [b"\x62\x00\x01"]}
        super().__init__(
            {ecu: {**table, READ_NAME: [_name(ecu)]} for ecu in ECUS}, vin=VIN, eid=EID
        )
        self.asked = asyncio.Event()
        self.release = asyncio.Event()

    async def request(self, target: int, payload: bytes) -> AsyncIterator[bytes]:
        if payload == SLOW:
            self.asked.set()
            await self.release.wait()
        async for answer in super().request(target, payload):
            yield answer


@contextlib.asynccontextmanager
async def gateway(router: _Router | None = None, **options: Any) -> AsyncIterator[HsfzServer]:
    async with HsfzServer(router or _Router(), port=0, udp_port=0, **options) as server:
        yield server


def _frames(data: bytes) -> list[bytes]:
    """Split a received byte stream into whole HSFZ frames (for scapy, one at a time)."""
    frames = []
    while len(data) >= 6:
        end = 6 + struct.unpack_from(">I", data)[0]
        frames.append(data[:end])
        data = data[end:]
    assert data == b"", "a frame was cut short"
    return frames


class RawTester:
    """A tester on a plain socket: sends any bytes, keeps every frame whole as received."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buffer = b""
        self.pending: deque[bytes] = deque()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def _read(self) -> bytes:
        try:
            return await self.reader.read(65536)
        except ConnectionResetError:
            return b""

    def _split(self) -> None:
        while len(self.buffer) >= 6:
            end = 6 + struct.unpack_from(">I", self.buffer)[0]
            if len(self.buffer) < end:
                return
            self.pending.append(self.buffer[:end])
            self.buffer = self.buffer[end:]

    async def next(self, timeout: float = 5) -> bytes:
        """The next whole frame (EOFError when the gateway closed the socket)."""
        async with asyncio.timeout(timeout):
            while not self.pending:
                chunk = await self._read()
                if not chunk:
                    raise EOFError("the gateway closed the socket")
                self.buffer += chunk
                self._split()
        return self.pending.popleft()

    async def rest(self, timeout: float = 5) -> list[bytes]:
        """Every frame until the gateway closes the socket (TimeoutError if it does not)."""
        async with asyncio.timeout(timeout):
            while chunk := await self._read():
                self.buffer += chunk
        self._split()
        frames, self.pending = list(self.pending), deque()
        assert self.buffer == b"", "a frame was cut short"
        return frames


@contextlib.asynccontextmanager
async def raw(port: int) -> AsyncIterator[RawTester]:
    tester = RawTester(*await asyncio.open_connection(HOST, port))
    try:
        yield tester
    finally:
        tester.writer.close()
        with contextlib.suppress(ConnectionError):
            await tester.writer.wait_closed()


# --- our link ------------------------------------------------------------------------------


async def test_our_link_talks_to_three_ecus_and_gets_error_words() -> None:
    async with gateway() as server, HsfzLink(HOST, server.port) as link:
        answers = await asyncio.gather(*(link.request(ecu, READ_NAME, 5) for ecu in ECUS))
        assert answers == [_name(ecu) for ecu in ECUS]
        with pytest.raises(TransportNack) as unknown:
            await link.request(0x77, READ_VIN, 5)
        assert unknown.value.code == ControlWord.INCORRECT_DESTINATION_ADDRESS
        assert await link.request(0x12, READ_VIN, 5) == b"\x62\xf1\x90" + VIN.encode()
        async with HsfzLink(HOST, server.port, tester_address=0xF5) as stranger:
            with pytest.raises(TransportNack, match=r"expects 0xF4, got 0xF5") as wrong:
                await stranger.request(0x12, READ_VIN, 5)
        assert wrong.value.code == ControlWord.INCORRECT_TESTER_ADDRESS


async def test_a_functional_request_reaches_every_ecu() -> None:
    async with gateway() as server, HsfzLink(HOST, server.port) as link:
        answers = await link.request_functional(READ_NAME, 5, expected=len(ECUS))
    assert sorted(answers) == [(ecu, _name(ecu)) for ecu in ECUS]


async def test_a_slow_ecu_does_not_hold_back_another() -> None:
    router = _Router()
    async with gateway(router) as server, HsfzLink(HOST, server.port) as link:
        slow = asyncio.create_task(link.request(0x12, SLOW, 5))
        await router.asked.wait()
        assert await link.request(0x40, READ_NAME, 5) == _name(0x40)
        assert not slow.done()
        router.release.set()
        assert await slow == b"\x62\x00\x01"


async def test_our_link_answers_the_alive_checks_and_stays_connected() -> None:
    async with (
        gateway(alive_check_interval=0.02, alive_check_timeout=2) as server,
        HsfzLink(HOST, server.port) as link,
    ):
        checked = asyncio.Event()

        def record(event: LinkEvent) -> None:
            if event.kind is LinkEventKind.ALIVE_CHECK:
                checked.set()

        link.subscribe(record)
        await asyncio.wait_for(checked.wait(), 5)
        checked.clear()
        # the gateway checks again only once the first check was answered
        await asyncio.wait_for(checked.wait(), 5)
        assert await link.request(0x12, READ_NAME, 5) == _name(0x12)


async def test_a_tester_silent_to_the_alive_check_is_dropped() -> None:
    async with (
        gateway(alive_check_interval=0.02, alive_check_timeout=0.05) as server,
        raw(server.port) as silent,
    ):
        assert await silent.rest() == [AliveCheck(source=0x10, target=0xF4).encode()]


async def test_drop_after_cuts_the_connection_once() -> None:
    router = _Router()
    async with gateway(router) as server:
        async with HsfzLink(HOST, server.port) as link:
            server.drop_after(4)
            with pytest.raises(LinkError):
                await link.request(0x12, READ_VIN, 5)
        assert router.requests == []
        async with HsfzLink(HOST, server.port) as link:
            assert await link.request(0x12, READ_NAME, 5) == _name(0x12)


# --- scapy reads what the gateway sends ----------------------------------------------------------


@pytest.mark.interop
async def test_scapy_decodes_acknowledge_answer_and_error_words() -> None:
    async with gateway() as server, raw(server.port) as tester:
        await tester.send(encode_diagnostic(0xF4, 0x12, READ_VIN))
        ack, answer = HSFZ(await tester.next()), HSFZ(await tester.next())
        assert (ack.control, ack.source, ack.target, ack.length) == (0x02, 0xF4, 0x12, 5)
        assert ack[UDS_RDBI].identifiers == [0xF190]
        assert (answer.control, answer.source, answer.target) == (0x01, 0x12, 0xF4)
        assert answer[UDS_RDBIPR].dataIdentifier == 0xF190
        assert answer[UDS_RDBIPR].load == VIN.encode()

        await tester.send(encode_diagnostic(0xF5, 0x12, READ_VIN))
        wrong = HSFZ(await tester.next())
        assert (wrong.control, wrong.expected, wrong.received) == (0x40, 0xF4, 0xF5)
        await tester.send(encode_diagnostic(0xF4, 0x77, READ_VIN))
        assert HSFZ(await tester.next()).control == 0x43


@pytest.mark.interop
async def test_udp_identification_read_by_our_client_and_by_scapy() -> None:
    async with gateway() as server:
        reply = await identify(HOST, server.udp_port)
        assert (reply.diag_address, reply.mac, reply.vin) == (0x10, EID.hex().upper(), VIN)

        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, (HOST, server.udp_port))
            await loop.sock_sendall(sock, bytes(HSFZ(control=0x11, length=0)))
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
        pkt = HSFZ(data)
        assert pkt.control == 0x11
        assert (
            pkt.identification_string == f"DIAGADR10BMWMAC{EID.hex().upper()}BMWVIN{VIN}".encode()
        )


# --- malformed input ---------------------------------------------------------------------------


def _error(word: ControlWord, data: bytes = b"") -> bytes:
    return ErrorFrame(control=word, data=data).encode()


async def test_bad_frames_get_error_words_and_the_socket_keeps_serving() -> None:
    async with gateway(max_frame_data=64) as server, raw(server.port) as tester:
        too_long = struct.pack(">IH", 100, 0x0001) + bytes(100)
        await tester.send(too_long[:30])  # the rest later: it is skipped as it arrives
        assert await tester.next() == _error(ControlWord.MESSAGE_TOO_LARGE)
        await tester.send(too_long[30:])
        steps = [
            (struct.pack(">IH", 2, 0x0099) + b"ab", _error(ControlWord.INCORRECT_CONTROL_WORD)),
            (struct.pack(">IH", 1, 0x0001) + b"\xf4", _error(ControlWord.INCORRECT_FORMAT)),
            (struct.pack(">IH", 3, 0x0013) + b"\x00\xf4\x00", _error(ControlWord.INCORRECT_FORMAT)),
            (
                Acknowledge(source=0xF4, target=0x12).encode(),
                _error(ControlWord.INCORRECT_CONTROL_WORD),
            ),
            (
                IdentificationRequest().encode(),
                IdentificationReply.build(mac=EID.hex(), vin=VIN).encode(),
            ),
        ]
        for frame, expected in steps:
            await tester.send(frame)
            assert await tester.next() == expected
        await tester.send(encode_diagnostic(0xF4, 0x40, READ_NAME))
        assert await tester.next() == Acknowledge(source=0xF4, target=0x40, echo=READ_NAME).encode()
        assert (
            await tester.next()
            == DiagnosticMessage(source=0x40, target=0xF4, payload=_name(0x40)).encode()
        )


class _Errors(logging.Handler):
    """Records what the server logs at ERROR or above: a handler or a task that failed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _errors_logged() -> Iterator[list[logging.LogRecord]]:
    handler = _Errors()
    logger = logging.getLogger("ecuworks.sim.hsfz_server")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


async def _garbage_then_good_tester(garbage: bytes) -> None:
    async with gateway(max_frame_data=4096) as server:
        with _errors_logged() as errors:
            async with raw(server.port) as tester:
                await tester.send(garbage)
                tester.writer.write_eof()
                for frame in await tester.rest():  # whole frames of known words, then closed
                    assert HSFZ(frame).control in (0x01, 0x02, 0x11, 0x40, 0x41, 0x42, 0x43, 0x44)
            async with HsfzLink(HOST, server.port) as link:
                assert await link.request(0x12, READ_NAME, 5) == _name(0x12)
        assert errors == []


_HEADERS = st.builds(
    lambda length, control: struct.pack(">IH", length, control),
    st.integers(0, 9000),
    st.sampled_from([0x01, 0x02, 0x10, 0x11, 0x12, 0x13, 0x40, 0x45, 0xFF, 0x1234]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(st.binary(max_size=300), st.tuples(_HEADERS, st.binary(max_size=300)).map(b"".join))
)
def test_garbage_on_tcp_never_stops_the_gateway(garbage: bytes) -> None:
    asyncio.run(_garbage_then_good_tester(garbage))


class _Udp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received.put_nowait(data)


async def test_udp_garbage_is_ignored_and_identification_still_answered() -> None:
    rng = random.Random(6811)
    garbage = [rng.randbytes(rng.randrange(0, 64)) for _ in range(50)]
    garbage += [AliveCheck().encode(), struct.pack(">IH", 5, 0x0011) + b"DIAGA", b"\x00\x00"]
    loop = asyncio.get_running_loop()
    async with gateway() as server:
        transport, udp = await loop.create_datagram_endpoint(
            _Udp, remote_addr=(HOST, server.udp_port), family=socket.AF_INET
        )
        try:
            for datagram in garbage:
                transport.sendto(datagram)
            for _ in range(2):
                transport.sendto(IdentificationRequest().encode())
                answer = await asyncio.wait_for(udp.received.get(), 5)
                assert HSFZ(answer).identification_string.endswith(VIN.encode())
            # Loopback UDP keeps order, so every earlier answer arrived before the second
            # one: had any garbage been answered, it would be waiting here.
            assert udp.received.empty()
        finally:
            transport.close()
