"""DoipLink against a DoIP gateway on loopback: what a tester sees when it talks to a car."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.transport.doip_server import DoipTestServer, LogEntry, echo_handler, self_signed_tls

from ecuworks.errors import (
    LinkClosed,
    LinkError,
    LinkTimeout,
    RoutingActivationDenied,
    TransportNack,
)
from ecuworks.transport.base import LinkEvent, LinkEventKind
from ecuworks.transport.doip import DoipLink
from ecuworks.wire.doip import (
    DiagnosticMessage,
    DiagnosticNackCode,
    GenericNack,
    HeaderNackCode,
    RoutingActivationRequest,
)

ECUS = [0x10, 0x12, 0x18, 0x29, 0x30, 0x40, 0x60, 0x63, 0x64, 0x72]
READ_VIN = b"\x22\xf1\x90"


def _events(link: DoipLink) -> list[LinkEventKind]:
    kinds: list[LinkEventKind] = []

    def record(event: LinkEvent) -> None:
        kinds.append(event.kind)

    link.subscribe(record)
    return kinds


async def test_open_activates_routing_once_and_close_is_idempotent() -> None:
    async with DoipTestServer(entity_address=0x0010) as server:
        link = DoipLink(server.host, server.port)
        events = _events(link)
        await link.open()
        await link.open()  # already open: no second connection
        assert link.is_open
        assert link.entity_address == 0x0010
        assert server.accepted == 1
        assert server.peer.received == [RoutingActivationRequest(source_address=0x0EF3)]
        assert await link.request(0x12, READ_VIN, timeout=5) == b"\x62\xf1\x90"

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
        DoipTestServer(handler, targets=ECUS) as server,
        DoipLink(server.host, server.port) as link,
    ):
        answers = asyncio.gather(*(link.request(ecu, READ_VIN, timeout=10) for ecu in ECUS))
        await server.wait_until(lambda: len(server.requests()) == len(ECUS))
        for ecu in reversed(ECUS):  # release one by one, last asked first answered
            release[ecu].set()
            await server.wait_until(
                lambda ecu=ecu: (
                    LogEntry("response", ecu, b"\x62\xf1\x90" + bytes([ecu])) in server.log
                )
            )
        results = await asyncio.wait_for(answers, 5)

    assert results == [b"\x62\xf1\x90" + bytes([ecu]) for ecu in ECUS]
    sent_order = [entry.target for entry in server.log if entry.kind == "response"]
    assert sent_order == list(reversed(ECUS))
    assert server.accepted == 1


async def test_second_request_to_the_same_ecu_waits_for_the_first_answer() -> None:
    release_first = asyncio.Event()

    async def handler(target: int, request: bytes) -> list[bytes]:
        if request == b"\x22\x00\x01":
            await release_first.wait()
        return await echo_handler(target, request)

    async with DoipTestServer(handler) as server, DoipLink(server.host, server.port) as link:
        both = asyncio.gather(
            link.request(0x12, b"\x22\x00\x01", timeout=10),
            link.request(0x12, b"\x22\x00\x02", timeout=10),
        )
        await server.wait_until(lambda: server.requests() == [b"\x22\x00\x01"])
        # A full round trip to another ECU behind it: had the link sent the second request
        # to 0x12 without waiting, TCP would have delivered it before this one.
        assert await link.request(0x18, b"\x3e\x00", timeout=5) == b"\x7e\x00"
        release_first.set()
        assert await asyncio.wait_for(both, 5) == [b"\x62\x00\x01", b"\x62\x00\x02"]

    assert server.log == [
        LogEntry("request", 0x12, b"\x22\x00\x01"),
        LogEntry("request", 0x18, b"\x3e\x00"),
        LogEntry("response", 0x18, b"\x7e\x00"),
        LogEntry("response", 0x12, b"\x62\x00\x01"),
        LogEntry("request", 0x12, b"\x22\x00\x02"),
        LogEntry("response", 0x12, b"\x62\x00\x02"),
    ]


async def test_response_pending_frames_reach_the_caller_one_by_one() -> None:
    erase = b"\x31\x01\xff\x00"

    async def handler(target: int, request: bytes) -> AsyncIterator[bytes]:
        yield b"\x7f\x31\x78"
        yield b"\x7f\x31\x78"
        yield b"\x71\x01\xff\x00\x00"

    async with DoipTestServer(handler) as server, DoipLink(server.host, server.port) as link:
        async with link.lock(0x12):
            await link.send(0x12, erase)
            received = [await link.receive(0x12, timeout=5) for _ in range(3)]
        # request() hands over the first frame: NRC 0x78 is the UDS layer's to interpret.
        assert await link.request(0x12, erase, timeout=5) == b"\x7f\x31\x78"

    assert received == [b"\x7f\x31\x78", b"\x7f\x31\x78", b"\x71\x01\xff\x00\x00"]


@pytest.mark.parametrize("how", ["gateway drops after the request", "drop in mid-request"])
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

    # Routing activation is 15 bytes; cut the 64 KiB transfer after its first kilobyte.
    drop_after = 15 + 1024 if how == "drop in mid-request" else None
    request = transfer if drop_after else erase
    async with DoipTestServer(handler, drop_after=drop_after) as server:
        link = DoipLink(server.host, server.port)
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
            assert isinstance(server.peer.received[0], RoutingActivationRequest)
        finally:
            await link.close()


async def test_diagnostic_nack_fails_only_that_ecu() -> None:
    async with (
        DoipTestServer(targets={0x10, 0x12}) as server,
        DoipLink(server.host, server.port) as link,
    ):
        with pytest.raises(TransportNack, match="unknown target address") as caught:
            await link.request(0x99, READ_VIN, timeout=5)
        assert caught.value.target == 0x99
        assert caught.value.code == DiagnosticNackCode.UNKNOWN_TARGET_ADDRESS
        assert link.is_open
        assert await link.request(0x12, READ_VIN, timeout=5) == b"\x62\xf1\x90"


async def test_tester_answers_the_gateways_alive_check() -> None:
    async with DoipTestServer() as server, DoipLink(server.host, server.port) as link:
        events = _events(link)
        answer = await server.alive_check()
        assert answer.source_address == 0x0EF3
        assert events == [LinkEventKind.ALIVE_CHECK]
        assert await link.request(0x12, READ_VIN, timeout=5) == b"\x62\xf1\x90"


@pytest.mark.parametrize(
    ("server_code", "tester", "code", "reason"),
    [
        (0x10, 0x0E80, 0x00, "does not know this tester address"),
        (0x03, 0x0EF3, 0x03, "another connection already uses this tester address"),
        (0x07, 0x0EF3, 0x07, "requires TLS"),
    ],
)
async def test_refused_routing_activation_says_why(
    server_code: int, tester: int, code: int, reason: str
) -> None:
    async with DoipTestServer(activation_code=server_code) as server:
        link = DoipLink(server.host, server.port, tester_address=tester)
        with pytest.raises(RoutingActivationDenied, match=reason) as caught:
            await link.open()
        assert caught.value.code == code
        assert f"0x{tester:04X}" in str(caught.value)
        assert not link.is_open
        await asyncio.wait_for(server.peer.closed.wait(), 5)  # the tester hung up


async def test_functional_request_collects_every_ecus_answer() -> None:
    async with (
        DoipTestServer(targets={0x10, 0x12, 0x40}) as server,
        DoipLink(server.host, server.port) as link,
    ):
        answers = await asyncio.wait_for(
            link.request_functional(b"\x3e\x00", timeout=30, expected=3), 5
        )
    assert sorted(answers) == [(0x10, b"\x7e\x00"), (0x12, b"\x7e\x00"), (0x40, b"\x7e\x00")]
    assert server.requests() == [b"\x3e\x00"]
    assert server.log[0].target == 0xE400


async def test_nothing_listening_is_a_link_error_that_says_what_to_check() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    link = DoipLink("127.0.0.1", port)
    with pytest.raises(LinkError, match=f"127.0.0.1:{port}.*simulator running"):
        await link.open()
    assert not link.is_open


async def test_unanswered_routing_activation_times_out() -> None:
    async with DoipTestServer(answer_activation=False) as server:
        link = DoipLink(server.host, server.port, activation_timeout=0.2)
        with pytest.raises(LinkTimeout, match="did not answer routing activation"):
            await link.open()
        assert not link.is_open
        await asyncio.wait_for(server.peer.closed.wait(), 5)


async def test_tls_link_talks_to_a_tls_gateway(tmp_path: Path) -> None:
    server_tls, client_tls = self_signed_tls(tmp_path)
    async with (
        DoipTestServer(ssl=server_tls) as server,
        DoipLink(server.host, server.port, ssl=client_tls) as link,
    ):
        assert await link.request(0x12, READ_VIN, timeout=5) == b"\x62\xf1\x90"
        assert await server.alive_check()


async def test_tls_gateway_with_an_untrusted_certificate_is_refused(tmp_path: Path) -> None:
    server_tls, _ = self_signed_tls(tmp_path)
    (tmp_path / "other").mkdir()
    _, other_trust = self_signed_tls(tmp_path / "other")  # trusts a different certificate
    async with DoipTestServer(ssl=server_tls) as server:
        link = DoipLink(server.host, server.port, ssl=other_trust)
        with pytest.raises(LinkError, match=r"TLS handshake .* failed"):
            await link.open()
        assert not link.is_open


@pytest.mark.parametrize(
    ("garbage", "message"),
    [
        (b"\x00" * 8, "not DoIP"),
        (GenericNack(code=HeaderNackCode.INVALID_PAYLOAD_LENGTH).encode(), "invalid payload"),
    ],
    ids=["garbage", "header NACK"],
)
async def test_broken_stream_fails_waiting_requests_and_closes_the_link(
    garbage: bytes, message: str
) -> None:
    never = asyncio.Event()

    async def silent(target: int, request: bytes) -> list[bytes]:
        await never.wait()
        return []

    async with DoipTestServer(silent) as server, DoipLink(server.host, server.port) as link:
        waiting = asyncio.ensure_future(link.request(0x12, READ_VIN, timeout=30))
        await server.wait_until(lambda: server.requests() == [READ_VIN])
        server.send_raw(garbage)
        with pytest.raises(LinkError, match=message) as caught:
            await asyncio.wait_for(waiting, 5)
        assert not isinstance(caught.value, LinkTimeout)
        assert not link.is_open
        await asyncio.wait_for(server.peer.closed.wait(), 5)
        if garbage == b"\x00" * 8:
            # The tester tells the gateway why it hangs up (generic header NACK 0x00).
            assert GenericNack(code=HeaderNackCode.INCORRECT_PATTERN) in server.peer.received


async def test_garbage_after_a_good_answer_closes_without_waiting_for_more_bytes() -> None:
    never = asyncio.Event()

    async def silent(target: int, request: bytes) -> list[bytes]:
        await never.wait()
        return []

    answer = DiagnosticMessage(source=0x12, target=0x0EF3, data=b"\x50\x03").encode()
    async with DoipTestServer(silent) as server, DoipLink(server.host, server.port) as link:
        waiting = asyncio.ensure_future(link.request(0x12, b"\x10\x03", timeout=30))
        await server.wait_until(lambda: server.requests() == [b"\x10\x03"])
        server.send_raw(answer + b"\xff" * 8)
        assert await asyncio.wait_for(waiting, 5) == b"\x50\x03"
        await asyncio.wait_for(server.peer.closed.wait(), 5)
        assert not link.is_open


async def test_sending_waits_while_the_gateway_does_not_read() -> None:
    block = b"\x36\x01" + bytes(64 * 1024)

    async def handler(target: int, request: bytes) -> list[bytes]:
        return [b"\x76\x01"]

    async with DoipTestServer(handler) as server, DoipLink(server.host, server.port) as link:
        connection = link._connection
        assert connection is not None
        assert connection.transport is not None
        transport = connection.transport
        # Small socket buffers, so that the kernel fills up after a few blocks.
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        server.peer.transport.pause_reading()
        paused = asyncio.Event()
        pause_writing = connection.pause_writing

        def record_pause() -> None:
            pause_writing()
            paused.set()

        connection.pause_writing = record_pause  # type: ignore[method-assign]
        buffered: list[int] = []

        async def flash() -> None:
            for _ in range(200):
                await link.send(0x12, block)
                buffered.append(transport.get_write_buffer_size())

        flashing = asyncio.ensure_future(flash())
        await asyncio.wait_for(paused.wait(), 5)
        assert not flashing.done()  # held back while the gateway reads nothing
        server.peer.transport.resume_reading()
        await asyncio.wait_for(flashing, 10)
        await server.wait_until(lambda: len(server.requests(0x12)) == 200)

    high_water = transport.get_write_buffer_limits()[1]
    assert max(buffered) <= high_water + len(block) + 12
