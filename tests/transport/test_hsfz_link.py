"""HsfzLink against an HSFZ gateway on loopback: what a tester sees when it talks to an F-series."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from tests.transport.hsfz_server import (
    HsfzTestServer,
    IdentificationResponder,
    LogEntry,
    echo_handler,
)

from ecuworks.errors import ConfigError, LinkClosed, LinkError, LinkTimeout, TransportNack
from ecuworks.transport.base import LinkEvent, LinkEventKind
from ecuworks.transport.hsfz import HsfzLink, identify
from ecuworks.wire.hsfz import Acknowledge, ControlWord, IdentificationReply

ECUS = [0x10, 0x12, 0x18, 0x29, 0x30, 0x40, 0x60, 0x63, 0x64, 0x72]
READ_VIN = b"\x22\xf1\x90"
VIN = "WBA3B1C50FK123456"


def _events(link: HsfzLink) -> list[LinkEventKind]:
    kinds: list[LinkEventKind] = []

    def record(event: LinkEvent) -> None:
        kinds.append(event.kind)

    link.subscribe(record)
    return kinds


async def test_open_connects_once_and_close_is_idempotent() -> None:
    async with HsfzTestServer() as server:
        link = HsfzLink(server.host, server.port)
        events = _events(link)
        await link.open()
        await link.open()  # already open: no second connection
        assert link.is_open
        assert server.accepted == 1
        assert await link.request(0x12, READ_VIN, timeout=5) == b"\x62\xf1\x90"
        # No routing activation in HSFZ: the request is the first thing on the wire.
        assert bytes(server.peer.raw) == bytes.fromhex("00000005 0001 F4 12 22F190")

        await link.close()
        await link.close()
        assert not link.is_open
        await asyncio.wait_for(server.peer.closed.wait(), 5)
        assert events == [LinkEventKind.CONNECTED, LinkEventKind.DISCONNECTED]
        with pytest.raises(LinkClosed, match="was closed"):
            await link.request(0x12, READ_VIN, timeout=5)


async def test_ten_ecus_answer_out_of_order_over_one_connection() -> None:
    release = {ecu: asyncio.Event() for ecu in ECUS}

    async def handler(target: int, request: bytes) -> list[bytes]:
        await release[target].wait()
        return [b"\x62\xf1\x90" + bytes([target])]

    async with (
        HsfzTestServer(handler, targets=ECUS) as server,
        HsfzLink(server.host, server.port) as link,
    ):
        answers = asyncio.gather(*(link.request(ecu, READ_VIN, timeout=10) for ecu in ECUS))
        await server.wait_until(lambda: len(server.requests()) == len(ECUS))
        for ecu in reversed(ECUS):  # release one by one, last asked first answered
            release[ecu].set()
            answer = LogEntry("response", ecu, b"\x62\xf1\x90" + bytes([ecu]))
            await server.wait_until(lambda: answer in server.log)  # noqa: B023 - awaited here
        results = await asyncio.wait_for(answers, 5)

    assert results == [b"\x62\xf1\x90" + bytes([ecu]) for ecu in ECUS]
    sent_order = [entry.target for entry in server.log if entry.kind == "response"]
    assert sent_order == list(reversed(ECUS))
    assert server.accepted == 1


async def test_acknowledged_request_with_response_pending_arrives_as_two_answers() -> None:
    erased = asyncio.Event()
    erase = b"\x31\x01\xff\x00"

    async def handler(target: int, request: bytes) -> AsyncIterator[bytes]:
        yield b"\x7f\x31\x78"
        await erased.wait()
        yield b"\x71\x01\xff\x00\x00"

    async with HsfzTestServer(handler) as server, HsfzLink(server.host, server.port) as link:
        async with link.lock(0x12):
            await link.send(0x12, erase)
            assert await link.receive(0x12, timeout=5) == b"\x7f\x31\x78"
            erased.set()
            assert await link.receive(0x12, timeout=5) == b"\x71\x01\xff\x00\x00"
        # The gateway acknowledged before answering, and the link took the acknowledge as
        # what it is, not as an answer.
        raw = bytes(server.peer.raw)
        assert raw == bytes.fromhex("00000006 0001 F4 12 3101FF00")
        assert link._connection is not None
        assert not link._connection.unacked  # every request's acknowledge was matched


async def test_acknowledge_of_another_request_fails_that_request_at_once() -> None:
    never = asyncio.Event()

    async def silent(target: int, request: bytes) -> list[bytes]:
        await never.wait()
        return []

    async with (
        HsfzTestServer(silent, ack=False) as server,
        HsfzLink(server.host, server.port) as link,
    ):
        waiting = asyncio.ensure_future(link.request(0x12, READ_VIN, timeout=30))
        await server.wait_until(lambda: server.requests() == [READ_VIN])
        server.send_raw(Acknowledge(source=0xF4, target=0x18, echo=READ_VIN).encode())
        with pytest.raises(LinkError, match=r"acknowledged .* not the request") as caught:
            await asyncio.wait_for(waiting, 5)
        assert not isinstance(caught.value, LinkTimeout)
        assert link.is_open  # one confused frame; the connection itself is fine


async def test_gateway_that_never_acknowledges_still_works() -> None:
    async with (
        HsfzTestServer(ack=False) as server,
        HsfzLink(server.host, server.port) as link,
    ):
        for ecu in ECUS:
            assert await link.request(ecu, READ_VIN, timeout=5) == b"\x62\xf1\x90"
        assert link._connection is not None
        assert not link._connection.unacked  # each answer retired its request


async def test_gateway_error_word_fails_only_that_request() -> None:
    held = asyncio.Event()

    async def handler(target: int, request: bytes) -> list[bytes]:
        await held.wait()
        return await echo_handler(target, request)

    async with (
        HsfzTestServer(handler, targets={0x10, 0x12}) as server,
        HsfzLink(server.host, server.port) as link,
    ):
        # A request to a known ECU is in flight: the error frame (which names no address)
        # must still be pinned on the request to the unknown one.
        pending = asyncio.ensure_future(link.request(0x12, READ_VIN, timeout=10))
        await server.wait_until(lambda: server.requests() == [READ_VIN])
        with pytest.raises(TransportNack, match="incorrect destination address 0x99") as caught:
            await link.request(0x99, READ_VIN, timeout=5)
        assert caught.value.target == 0x99
        assert caught.value.code == ControlWord.INCORRECT_DESTINATION_ADDRESS
        assert link.is_open
        held.set()
        assert await asyncio.wait_for(pending, 5) == b"\x62\xf1\x90"
        assert await link.request(0x10, READ_VIN, timeout=5) == b"\x62\xf1\x90"


async def test_wrong_tester_address_error_says_which_address_the_gateway_wants() -> None:
    async with (
        HsfzTestServer(tester=0xF4) as server,
        HsfzLink(server.host, server.port, tester_address=0xF5) as link,
    ):
        with pytest.raises(TransportNack, match=r"expects 0xF4, got 0xF5") as caught:
            await link.request(0x12, READ_VIN, timeout=5)
        assert caught.value.code == ControlWord.INCORRECT_TESTER_ADDRESS


async def test_tester_answers_the_gateways_alive_check() -> None:
    async with HsfzTestServer() as server, HsfzLink(server.host, server.port) as link:
        events = _events(link)
        answer = await server.alive_check()
        assert answer.tester == 0xF4
        assert bytes(server.peer.raw) == bytes.fromhex("00000002 0013 00F4")
        assert events == [LinkEventKind.ALIVE_CHECK]
        assert await link.request(0x12, READ_VIN, timeout=5) == b"\x62\xf1\x90"


@pytest.mark.parametrize("how", ["drop while waiting", "drop in mid-request"])
async def test_dropped_connection_fails_the_waiting_request_at_once_and_reconnect_recovers(
    how: str,
) -> None:
    erase = b"\x31\x01\xff\x00"
    transfer = b"\x36\x01" + bytes(64 * 1024)

    async def handler(target: int, request: bytes) -> list[bytes]:
        if request == erase:
            server.drop()
            return []
        return await echo_handler(target, request)

    # Cut the 64 KiB transfer after its first kilobyte.
    drop_after = 1024 if how == "drop in mid-request" else None
    request = transfer if drop_after else erase
    async with HsfzTestServer(handler, drop_after=drop_after) as server:
        link = HsfzLink(server.host, server.port)
        events = _events(link)
        await link.open()
        try:
            with pytest.raises(LinkClosed, match=r"127\.0\.0\.1:\d+ dropped"):
                # The request's own timeout is 30 s: the drop must end it long before.
                await asyncio.wait_for(link.request(0x12, request, timeout=30), 5)
            assert not link.is_open
            assert events[-1] is LinkEventKind.DISCONNECTED
            with pytest.raises(LinkClosed):
                await link.send(0x12, b"\x3e\x00")

            server.drop_after = None
            await link.reconnect()
            assert link.is_open
            assert await link.request(0x12, READ_VIN, timeout=5) == b"\x62\xf1\x90"
            assert server.accepted == 2
            assert events[-1] is LinkEventKind.CONNECTED
        finally:
            await link.close()


async def test_functional_request_collects_every_ecus_answer() -> None:
    async with (
        HsfzTestServer(targets={0x10, 0x12, 0x40}) as server,
        HsfzLink(server.host, server.port) as link,
    ):
        answers = await asyncio.wait_for(
            link.request_functional(b"\x3e\x00", timeout=30, expected=3), 5
        )
    assert sorted(answers) == [(0x10, b"\x7e\x00"), (0x12, b"\x7e\x00"), (0x40, b"\x7e\x00")]
    assert server.log[0] == LogEntry("request", 0xDF, b"\x3e\x00")


async def test_nothing_listening_is_a_link_error_that_says_what_to_check() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))  # bound, not listening: a connection is refused
        port = probe.getsockname()[1]
        link = HsfzLink("127.0.0.1", port)
        with pytest.raises(LinkError, match=rf"127\.0\.0\.1:{port}.*Ethernet cable") as caught:
            await link.open()
    assert "HSFZ gateway" in str(caught.value)
    assert not link.is_open


async def test_stream_that_is_not_hsfz_fails_waiting_requests_and_closes_the_link() -> None:
    never = asyncio.Event()

    async def silent(target: int, request: bytes) -> list[bytes]:
        await never.wait()
        return []

    async with HsfzTestServer(silent) as server, HsfzLink(server.host, server.port) as link:
        answered = asyncio.ensure_future(link.request(0x12, b"\x10\x03", timeout=30))
        waiting = asyncio.ensure_future(link.request(0x18, READ_VIN, timeout=30))
        await server.wait_until(lambda: len(server.requests()) == 2)
        answer = bytes.fromhex("00000004 0001 12 F4 5003")
        # An unknown control word right behind a good answer, and nothing after it: the
        # link must not wait for more bytes to notice.
        server.send_raw(answer + bytes.fromhex("00000000 0777"))
        assert await asyncio.wait_for(answered, 5) == b"\x50\x03"
        with pytest.raises(LinkError, match=r"not HSFZ.*0x0777") as caught:
            await asyncio.wait_for(waiting, 5)
        assert not isinstance(caught.value, LinkTimeout)
        assert not link.is_open
        await asyncio.wait_for(server.peer.closed.wait(), 5)


async def test_sending_waits_while_the_gateway_does_not_read() -> None:
    block = b"\x36\x01" + bytes(64 * 1024)

    async def handler(target: int, request: bytes) -> list[bytes]:
        return [b"\x76\x01"]

    async with HsfzTestServer(handler) as server, HsfzLink(server.host, server.port) as link:
        connection = link._connection
        assert connection is not None
        assert connection.transport is not None
        transport = connection.transport
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        server.peer.transport.pause_reading()
        paused = asyncio.Event()
        pause_writing = connection.pause_writing

        def record_pause() -> None:
            pause_writing()
            paused.set()

        connection.pause_writing = record_pause  # type: ignore[method-assign]
        sent = 0

        async def flash() -> None:
            nonlocal sent
            for _ in range(200):
                await link.send(0x12, block)
                sent += 1

        flashing = asyncio.ensure_future(flash())
        # The gateway reads nothing: the link must stop queueing at the high-water mark.
        await asyncio.wait_for(paused.wait(), 5)
        assert not flashing.done()
        high_water = transport.get_write_buffer_limits()[1]
        assert transport.get_write_buffer_size() <= high_water + len(block) + 8
        server.peer.transport.resume_reading()
        await asyncio.wait_for(flashing, 10)
        await server.wait_until(lambda: len(server.requests(0x12)) == 200)
    assert sent == 200


# -- identification over UDP ---------------------------------------------------------------


async def test_identification_is_read_from_a_unicast_answer() -> None:
    reply = IdentificationReply.build(diag_address=0x10, mac="001A37C0FFEE", vin=VIN)
    async with IdentificationResponder(reply) as responder:
        found = await identify(responder.host, responder.port, timeout=5)
    assert (found.diag_address, found.mac, found.vin) == (0x10, "001A37C0FFEE", VIN)
    assert found.text == f"DIAGADR10BMWMAC001A37C0FFEEBMWVIN{VIN}"
    assert responder.received == [bytes.fromhex("00000000 0011")]


async def test_identification_without_an_answer_times_out() -> None:
    async with IdentificationResponder(None) as responder:
        with pytest.raises(LinkTimeout, match=r"127\.0\.0\.1:\d+ within 0\.2 s"):
            await identify(responder.host, responder.port, timeout=0.2)
        assert len(responder.received) == 1


async def test_identification_garbage_is_named_when_no_proper_answer_follows() -> None:
    async with IdentificationResponder(b"\x00\x00\x00\x03\x00\x11abc") as responder:
        with pytest.raises(LinkTimeout, match="did not decode"):
            await identify(responder.host, responder.port, timeout=0.2)


async def test_identification_with_nothing_listening_fails_at_once() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(LinkError, match="did not take the request") as caught:
        await identify("127.0.0.1", port, timeout=5)
    assert not isinstance(caught.value, LinkTimeout)


@pytest.mark.parametrize(
    "address", ["255.255.255.255", "169.254.255.255", "224.0.0.1", "ff02::1", "0.0.0.0"]
)
async def test_identification_refuses_broadcast_and_multicast(address: str) -> None:
    with pytest.raises(ConfigError, match="unicast only"):
        await identify(address, timeout=0.2)
