"""The simulator's DoIP entity on loopback, driven by our link, by stock doipclient + udsoncan
(a client no one here wrote) and by a hand-written tester on a plain socket."""

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
import udsoncan
from doipclient import DoIPClient
from doipclient.connectors import DoIPClientUDSConnector
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from udsoncan.client import Client

from ecuworks.errors import LinkError, RoutingActivationDenied, TransportNack
from ecuworks.sim.doip_server import DoipServer
from ecuworks.sim.router import StaticRouter
from ecuworks.transport.base import LinkEvent, LinkEventKind
from ecuworks.transport.discovery import entity_status, identify, power_mode
from ecuworks.transport.doip import DoipLink
from ecuworks.wire.doip import (
    AliveCheckRequest,
    AliveCheckResponse,
    DiagnosticMessage,
    DiagnosticMessageAck,
    DiagnosticMessageNack,
    DoipDecoder,
    DoipMessage,
    EntityStatusRequest,
    EntityStatusResponse,
    GenericNack,
    NodeType,
    PowerMode,
    RoutingActivationRequest,
    RoutingActivationResponse,
    VehicleAnnouncement,
    VehicleIdentificationRequest,
    VehicleIdentificationRequestEid,
    VehicleIdentificationRequestVin,
    parse,
)

VIN = "WBA5A5C55ED000001"
EID = bytes.fromhex("001A37ABCDEF")
ECUS = (0x10, 0x12, 0x18)
TESTER = 0x0EF3
READ_VIN = bytes.fromhex("22F190")
READ_NAME = bytes.fromhex("22F197")
FIRST, SECOND = bytes.fromhex("220001"), bytes.fromhex("220002")
HOST = "127.0.0.1"


def _name(ecu: int) -> bytes:
    return b"\x62\xf1\x97" + f"ECU{ecu:02X}".encode()


def make_router() -> StaticRouter:
    table = {
        READ_VIN: [b"\x62\xf1\x90" + VIN.encode()],
        FIRST: [b"\x62\x00\x01"],
        SECOND: [b"\x62\x00\x02"],
        b"\x3e\x00": [b"\x7e\x00"],
    }
    answers = {ecu: {**table, READ_NAME: [_name(ecu)]} for ecu in ECUS}
    return StaticRouter(answers, vin=VIN, eid=EID, power_mode=PowerMode.READY)


@contextlib.asynccontextmanager
async def entity(router: StaticRouter | None = None, **options: Any) -> AsyncIterator[DoipServer]:
    # Long inactivity timers unless a test is about them: a socket closes only by the
    # rule under test, never because a timer ran out first.
    options.setdefault("initial_inactivity", 60.0)
    async with DoipServer(router or make_router(), port=0, **options) as server:
        yield server


def _frame(payload_type: int, payload: bytes, version: int = 2) -> bytes:
    return struct.pack(">BBHI", version, version ^ 0xFF, payload_type, len(payload)) + payload


class RawTester:
    """A tester on a plain socket: sends any bytes, sees every frame the entity sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = DoipDecoder()
        self.pending: deque[DoipMessage] = deque()

    @classmethod
    async def connect(cls, port: int) -> RawTester:
        return cls(*await asyncio.open_connection(HOST, port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def _read(self) -> bytes:
        try:
            return await self.reader.read(65536)
        except ConnectionResetError:
            return b""

    async def next(self, timeout: float = 5) -> DoipMessage:
        """The next frame from the entity (EOFError when it closed the socket)."""
        async with asyncio.timeout(timeout):
            while not self.pending:
                chunk = await self._read()
                if not chunk:
                    raise EOFError("the entity closed the socket")
                self.pending.extend(self.decoder.feed(chunk))
        return self.pending.popleft()

    async def rest(self, timeout: float = 5) -> list[DoipMessage]:
        """Every frame until the entity closes the socket (TimeoutError if it does not)."""
        messages = list(self.pending)
        self.pending.clear()
        async with asyncio.timeout(timeout):
            while chunk := await self._read():
                messages.extend(self.decoder.feed(chunk))
        return messages

    async def activate(self, tester: int = TESTER, activation_type: int = 0) -> int:
        request = RoutingActivationRequest(source_address=tester, activation_type=activation_type)
        await self.send(request.encode())
        response = await self.next()
        assert isinstance(response, RoutingActivationResponse)
        assert response.tester_address == tester
        return response.code

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def raw(port: int) -> AsyncIterator[RawTester]:
    tester = await RawTester.connect(port)
    try:
        yield tester
    finally:
        await tester.close()


def _alive_checked(link: DoipLink) -> asyncio.Event:
    """An event set when the entity alive-checks ``link``."""
    checked = asyncio.Event()

    def record(event: LinkEvent) -> None:
        if event.kind is LinkEventKind.ALIVE_CHECK:
            checked.set()

    link.subscribe(record)
    return checked


# --- our link ----------------------------------------------------------------------------


async def test_our_link_activates_and_three_ecus_answer_over_one_socket() -> None:
    async with entity() as server, DoipLink(HOST, server.port) as link:
        answers = await asyncio.gather(*(link.request(ecu, READ_NAME, 5) for ecu in ECUS))
        assert answers == [_name(ecu) for ecu in ECUS]
        assert link.entity_address == 0x0010
        with pytest.raises(TransportNack) as refused:
            await link.request(0x77, READ_VIN, 5)
        assert refused.value.code == 0x03  # unknown target address
        assert await link.request(0x12, READ_VIN, 5) == b"\x62\xf1\x90" + VIN.encode()


async def test_a_functional_request_reaches_every_ecu() -> None:
    router = make_router()
    async with entity(router) as server, DoipLink(HOST, server.port) as link:
        answers = await link.request_functional(READ_NAME, 5, expected=len(ECUS))
    assert sorted(answers) == [(ecu, _name(ecu)) for ecu in ECUS]
    assert router.requests == [(None, READ_NAME)]


class _FirstIsSlow(StaticRouter):
    """Holds every answer to FIRST until ``release`` is set; ``asked`` says it arrived."""

    def __init__(self) -> None:
        super().__init__(make_router().answers)
        self.asked = asyncio.Event()
        self.release = asyncio.Event()

    async def request(self, target: int, payload: bytes) -> AsyncIterator[bytes]:
        if payload == FIRST:
            self.asked.set()
            await self.release.wait()
        async for answer in super().request(target, payload):
            yield answer


async def test_a_slow_ecu_does_not_hold_back_another() -> None:
    router = _FirstIsSlow()
    async with entity(router) as server, DoipLink(HOST, server.port) as link:
        slow = asyncio.create_task(link.request(0x12, FIRST, 5))
        await router.asked.wait()
        assert await link.request(0x18, READ_NAME, 5) == _name(0x18)
        assert not slow.done()
        router.release.set()
        assert await slow == b"\x62\x00\x01"


async def test_answers_of_one_ecu_keep_the_order_of_its_requests() -> None:
    router = _FirstIsSlow()
    async with entity(router) as server, raw(server.port) as tester:
        assert await tester.activate() == 0x10
        for target, payload in ((0x12, FIRST), (0x12, SECOND), (0x18, READ_NAME)):
            await tester.send(
                DiagnosticMessage(source=TESTER, target=target, data=payload).encode()
            )
        acks = [await tester.next() for _ in range(3)]
        assert [type(ack) for ack in acks] == [DiagnosticMessageAck] * 3
        # 0x18 answers while 0x12's first request is held; its second waits for the first
        assert await tester.next() == DiagnosticMessage(
            source=0x18, target=TESTER, data=_name(0x18)
        )
        router.release.set()
        assert await tester.next() == DiagnosticMessage(
            source=0x12, target=TESTER, data=b"\x62\x00\x01"
        )
        assert await tester.next() == DiagnosticMessage(
            source=0x12, target=TESTER, data=b"\x62\x00\x02"
        )


# --- the socket rules of routing activation -----------------------------------------------


async def test_same_tester_address_while_the_first_answers_alive_checks_is_refused() -> None:
    async with (
        entity(alive_check_timeout=2) as server,
        DoipLink(HOST, server.port) as first,
    ):
        checked = _alive_checked(first)
        with pytest.raises(RoutingActivationDenied) as denied:
            await DoipLink(HOST, server.port).open()
        assert denied.value.code == 0x03
        assert checked.is_set()
        assert await first.request(0x12, READ_NAME, 5) == _name(0x12)


async def test_same_tester_address_while_the_first_is_silent_replaces_it() -> None:
    async with entity(alive_check_timeout=0.05) as server, raw(server.port) as silent:
        assert await silent.activate() == 0x10
        async with DoipLink(HOST, server.port) as second:
            assert await second.request(0x12, READ_NAME, 5) == _name(0x12)
        assert await silent.rest() == [AliveCheckRequest()]  # asked, then closed


async def test_all_sockets_answering_refuses_a_newcomer_with_0x01() -> None:
    async with (
        entity(max_sockets=1, alive_check_timeout=2) as server,
        DoipLink(HOST, server.port) as first,
    ):
        checked = _alive_checked(first)
        with pytest.raises(RoutingActivationDenied) as denied:
            await DoipLink(HOST, server.port, tester_address=0x0EF4).open()
        assert denied.value.code == 0x01
        assert checked.is_set()
        assert await first.request(0x12, READ_NAME, 5) == _name(0x12)


async def test_all_sockets_taken_frees_the_silent_one_for_a_newcomer() -> None:
    async with entity(max_sockets=1, alive_check_timeout=0.05) as server, raw(server.port) as old:
        assert await old.activate(0x0EF4) == 0x10
        async with DoipLink(HOST, server.port) as newcomer:
            assert await newcomer.request(0x18, READ_NAME, 5) == _name(0x18)
        assert await old.rest() == [AliveCheckRequest()]


@pytest.mark.parametrize(
    ("tester", "activation_type", "code"),
    [(0x0001, 0x00, 0x00), (0x1000, 0x00, 0x00), (TESTER, 0xE0, 0x06)],
    ids=["ecu-address", "outside-tester-range", "central-security"],
)
async def test_refused_activation_closes_the_socket(
    tester: int, activation_type: int, code: int
) -> None:
    async with entity() as server, raw(server.port) as raw_tester:
        assert await raw_tester.activate(tester, activation_type) == code
        assert await raw_tester.rest() == []


async def test_a_configured_tester_list_is_honoured() -> None:
    async with entity(tester_addresses=frozenset({0x0EF4})) as server:
        with pytest.raises(RoutingActivationDenied) as denied:
            await DoipLink(HOST, server.port).open()
        assert denied.value.code == 0x00
        async with DoipLink(HOST, server.port, tester_address=0x0EF4) as link:
            assert await link.request(0x12, READ_NAME, 5) == _name(0x12)


async def test_another_address_on_an_activated_socket_is_0x02_and_closes() -> None:
    async with entity() as server, raw(server.port) as tester:
        assert await tester.activate(TESTER) == 0x10
        assert await tester.activate(TESTER) == 0x10  # the same address again is fine
        assert await tester.activate(0x0EF4) == 0x02
        assert await tester.rest() == []


async def test_diagnostics_before_activation_or_from_another_address_are_nacked_0x02() -> None:
    request = DiagnosticMessage(source=TESTER, target=0x12, data=READ_VIN)
    nack = DiagnosticMessageNack(source=0x12, target=TESTER, code=0x02)
    async with entity() as server:
        async with raw(server.port) as tester:
            await tester.send(request.encode())
            assert await tester.rest() == [nack]
        async with raw(server.port) as tester:
            assert await tester.activate(0x0EF4) == 0x10
            await tester.send(request.encode())
            assert await tester.rest() == [nack]


# --- timers and faults ------------------------------------------------------------------


async def test_a_socket_without_routing_activation_is_closed_after_initial_inactivity() -> None:
    async with entity(initial_inactivity=0.05) as server, raw(server.port) as tester:
        assert await tester.rest() == []


async def test_a_silent_activated_socket_is_closed_after_general_inactivity() -> None:
    async with entity(general_inactivity=0.05) as server, raw(server.port) as tester:
        assert await tester.activate() == 0x10
        assert await tester.rest() == []


async def test_drop_after_cuts_the_connection_mid_frame_once() -> None:
    router = make_router()
    async with entity(router) as server:
        async with DoipLink(HOST, server.port) as link:
            server.drop_after(5)  # of a 15-byte frame
            with pytest.raises(LinkError):
                await link.request(0x12, READ_VIN, 5)
        async with DoipLink(HOST, server.port) as link:  # one-shot: the next is served
            assert await link.request(0x12, READ_NAME, 5) == _name(0x12)
    assert router.requests == [(0x12, READ_NAME)]  # the cut frame reached no ECU


async def test_a_frame_complete_before_the_cut_still_reaches_its_ecu() -> None:
    router = _FirstIsSlow()
    router.release.set()
    async with entity(router) as server, DoipLink(HOST, server.port) as link:
        server.drop_after(15)  # exactly the request's frame
        with pytest.raises(LinkError):
            await link.request(0x12, FIRST, 5)
        await asyncio.wait_for(router.asked.wait(), 5)


# --- generic header handling ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x02\x02\x00\x05\x00\x00\x00\x07", 0x00),  # inverse version wrong
        (_frame(0x0005, bytes(7), version=0x07), 0x00),  # unsupported version
        (_frame(0x0008, b"\x0e\xf3\x00"), 0x04),  # alive check response is 2 bytes
        (_frame(0x0005, bytes(8)), 0x04),  # routing activation is 7 or 11 bytes
        (_frame(0x8001, b"\x0e\xf3\x00\x12"), 0x04),  # diagnostic without user data
    ],
    ids=["pattern", "version", "alive-length", "activation-length", "empty-diagnostic"],
)
async def test_header_errors_that_close_the_socket(frame: bytes, code: int) -> None:
    async with entity() as server, raw(server.port) as tester:
        await tester.send(frame)
        assert await tester.rest() == [GenericNack(code=code)]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (_frame(0x1234, b"abc"), 0x01),  # unknown payload type
        (_frame(0x4001, b""), 0x01),  # entity status is UDP only
        (_frame(0x8001, bytes(100)), 0x02),  # over max_payload
    ],
    ids=["unknown-type", "udp-only-type", "too-large"],
)
async def test_header_errors_that_discard_the_message_and_keep_serving(
    frame: bytes, code: int
) -> None:
    async with entity(max_payload=64) as server, raw(server.port) as tester:
        await tester.send(frame[:20])  # the rest later: it is skipped as it arrives
        assert await tester.next() == GenericNack(code=code)
        await tester.send(frame[20:])
        assert await tester.activate() == 0x10
        await tester.send(DiagnosticMessage(source=TESTER, target=0x18, data=READ_NAME).encode())
        assert isinstance(await tester.next(), DiagnosticMessageAck)
        assert await tester.next() == DiagnosticMessage(
            source=0x18, target=TESTER, data=_name(0x18)
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
    logger = logging.getLogger("ecuworks.sim.doip_server")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


async def _garbage_then_good_tester(garbage: bytes) -> None:
    async with entity(max_payload=4096) as server:
        with _errors_logged() as errors:
            async with raw(server.port) as tester:
                await tester.send(garbage)
                tester.writer.write_eof()
                for message in await tester.rest():  # framed DoIP only, then closed
                    assert isinstance(
                        message,
                        GenericNack
                        | RoutingActivationResponse
                        | DiagnosticMessageAck
                        | DiagnosticMessageNack
                        | DiagnosticMessage
                        | AliveCheckResponse,
                    )
            async with DoipLink(HOST, server.port) as link:
                assert await link.request(0x12, READ_NAME, 5) == _name(0x12)
        assert errors == []


_HEADERS = st.builds(
    lambda version, payload_type, length: struct.pack(
        ">BBHI", version, version ^ 0xFF, payload_type, length
    ),
    st.sampled_from([0x02, 0x03, 0xFF]),
    st.sampled_from([0x0000, 0x0001, 0x0005, 0x0007, 0x0008, 0x4001, 0x8001, 0x8002, 0xBEEF]),
    st.integers(0, 70000),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(st.binary(max_size=300), st.tuples(_HEADERS, st.binary(max_size=300)).map(b"".join))
)
def test_garbage_on_tcp_gets_a_nack_or_a_close_and_the_entity_keeps_serving(
    garbage: bytes,
) -> None:
    asyncio.run(_garbage_then_good_tester(garbage))


# --- UDP ------------------------------------------------------------------------------------


async def test_identification_entity_status_and_power_mode_by_unicast_udp() -> None:
    async with entity(max_sockets=3) as server, DoipLink(HOST, server.port):
        announcements = await identify(HOST, server.port)
        assert announcements == [
            VehicleAnnouncement(vin=VIN, logical_address=0x10, eid=EID, gid=bytes(6))
        ]
        assert await identify(HOST, server.port, vin=VIN) == announcements
        assert await identify(HOST, server.port, eid=EID) == announcements
        status = await entity_status(HOST, server.port)
        assert (status.node_type, status.max_sockets, status.open_sockets) == (
            NodeType.GATEWAY,
            3,
            1,
        )
        assert status.max_data_size == server.max_payload
        assert (await power_mode(HOST, server.port)).mode == PowerMode.READY


class _Udp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received.put_nowait(data)


async def test_udp_garbage_is_nacked_a_vin_mismatch_is_silent_and_discovery_goes_on() -> None:
    rng = random.Random(13400)
    garbage = [rng.randbytes(rng.randrange(0, 64)) for _ in range(50)]
    garbage += [_frame(0x0005, bytes(7)), _frame(0x0003, b"\xff" * 17), b"\x02\xfd\x00"]
    loop = asyncio.get_running_loop()
    async with entity() as server:
        transport, udp = await loop.create_datagram_endpoint(
            _Udp, remote_addr=(HOST, server.port), family=socket.AF_INET
        )
        try:
            for datagram in garbage:
                transport.sendto(datagram)
            for _ in garbage:  # one header NACK per datagram, in order
                answer = parse(await asyncio.wait_for(udp.received.get(), 5))
                assert isinstance(answer, GenericNack)
            # no answer for another car's VIN or another entity's EID: loopback UDP keeps
            # order, so the next datagram to arrive answers the status request
            transport.sendto(VehicleIdentificationRequestVin(vin="WBA00000000000000").encode())
            transport.sendto(VehicleIdentificationRequestEid(eid=bytes(6)).encode())
            transport.sendto(EntityStatusRequest().encode())
            answer = parse(await asyncio.wait_for(udp.received.get(), 5))
            assert isinstance(answer, EntityStatusResponse)
            transport.sendto(VehicleIdentificationRequest().encode())
            answer = parse(await asyncio.wait_for(udp.received.get(), 5))
            assert isinstance(answer, VehicleAnnouncement)
            assert answer.vin == VIN
        finally:
            transport.close()


# --- stock doipclient + udsoncan ---------------------------------------------------------------


def _doipclient_session(port: int) -> dict[str, Any]:
    """Everything a doipclient user would do, synchronously (runs in a worker thread)."""
    client = DoIPClient(HOST, 0x12, tcp_port=port, udp_port=port, client_logical_address=0x0E00)
    try:
        names = {}
        for ecu in ECUS:
            client.send_diagnostic_to_address(ecu, bytearray(READ_NAME))  # waits for the ACK
            message = client.read_doip()
            names[ecu] = (message.source_address, bytes(message.user_data))
        try:
            client.send_diagnostic_to_address(0x77, bytearray(READ_NAME))
            refused = None
        except OSError as error:
            refused = str(error)
        config = dict(udsoncan.configs.default_client_config)
        config["data_identifiers"] = {0xF190: udsoncan.AsciiCodec(17)}
        with Client(DoIPClientUDSConnector(client), config=config) as uds:
            vin = uds.read_data_by_identifier(0xF190).service_data.values[0xF190]
        return {
            "names": names,
            "refused": refused,
            "vin": vin,
            "identification": client.request_vehicle_identification(),
            "status": client.request_entity_status(),
            "power": client.request_diagnostic_power_mode(),
            "alive": client.request_alive_check(),
        }
    finally:
        client.close()


@pytest.mark.interop
async def test_stock_doipclient_and_udsoncan_talk_to_the_entity() -> None:
    async with entity() as server:
        session = await asyncio.to_thread(_doipclient_session, server.port)
    assert session["names"] == {ecu: (ecu, _name(ecu)) for ecu in ECUS}
    assert session["refused"].endswith("negative acknowledge code: 3")  # unknown target
    assert session["vin"] == VIN
    identification = session["identification"]
    assert (identification.vin, identification.logical_address, identification.eid) == (
        VIN,
        0x10,
        EID,
    )
    assert session["status"].node_type == NodeType.GATEWAY
    assert session["status"].currently_open_sockets == 1
    assert session["power"].diagnostic_power_mode == PowerMode.READY
    assert session["alive"].source_address == 0x10
