"""The VCI's D-CAN bridge against python-can's stock socketcand client, a peer no one here wrote.

python-can's client is blocking, so it runs in a worker thread (``asyncio.to_thread``) while
the bridge serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import can
import pytest
from can.interfaces.socketcand.socketcand import (
    convert_ascii_message_to_can_message,
    convert_can_message_to_ascii_message,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecuworks.errors import ConfigError, ParseError
from ecuworks.sim.socketcand import (
    HI,
    OK,
    BcMode,
    Echo,
    ElementSplitter,
    Open,
    RawMode,
    Send,
    SocketcandServer,
    format_error,
    format_frame,
    parse_command,
)

T0 = 1_700_000_000.25
FRAMES = [
    (0x6F1, bytes.fromhex("1202100300000000"), False),  # tester -> DME, padded single frame
    (0x000, b"", False),
    (0x7FF, b"\xff", False),
    (0x612, bytes.fromhex("F1025003"), False),
    (0x18DA12F1, bytes.fromhex("0322F190"), True),  # 29-bit normal fixed addressing
    (0x1FFFFFFF, bytes(range(8)), True),
]


@dataclass
class Bridge:
    server: SocketcandServer
    frames: asyncio.Queue[tuple[int, bytes, bool]]

    async def next_frame(self) -> tuple[int, bytes, bool]:
        return await asyncio.wait_for(self.frames.get(), 5)


@pytest.fixture
async def bridge() -> AsyncIterator[Bridge]:
    frames: asyncio.Queue[tuple[int, bytes, bool]] = asyncio.Queue()

    def on_frame(can_id: int, data: bytes, extended: bool) -> None:
        frames.put_nowait((can_id, data, extended))

    async with SocketcandServer(on_frame, channel="can0", clock=lambda: T0) as server:
        yield Bridge(server, frames)


def std(can_id: int, data: bytes | list[int]) -> can.Message:
    """An 11-bit frame (python-can's Message defaults to 29-bit ids)."""
    return can.Message(arbitration_id=can_id, data=data, is_extended_id=False)


@contextlib.asynccontextmanager
async def python_can(port: int) -> AsyncIterator[can.BusABC]:
    bus = await asyncio.to_thread(
        can.Bus, interface="socketcand", channel="can0", host="127.0.0.1", port=port
    )
    try:
        yield bus
    finally:
        await asyncio.to_thread(bus.shutdown)


@contextlib.asynccontextmanager
async def raw_client(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert await asyncio.wait_for(reader.readexactly(len(HI)), 5) == HI
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def read_element(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b">"), 5)


# --- with python-can ------------------------------------------------------------------------


async def test_python_can_frames_reach_the_callback_exactly(bridge: Bridge) -> None:
    async with python_can(bridge.server.port) as bus:
        assert bridge.server.raw_clients == 1
        for can_id, data, extended in FRAMES:
            message = can.Message(arbitration_id=can_id, data=data, is_extended_id=extended)
            await asyncio.to_thread(bus.send, message)
            assert await bridge.next_frame() == (can_id, data, extended)
    assert bridge.frames.empty()


async def test_frames_from_the_bridge_reach_python_can_exactly(bridge: Bridge) -> None:
    async with python_can(bridge.server.port) as bus:
        for can_id, data, extended in FRAMES:
            await bridge.server.send_frame(can_id, data, extended=extended)
        for can_id, data, extended in FRAMES:
            message = await asyncio.to_thread(bus.recv, 5)
            assert message is not None
            assert (message.arbitration_id, bytes(message.data)) == (can_id, data)
            assert (message.dlc, message.is_extended_id) == (len(data), extended)
            assert message.timestamp == T0
            assert not message.is_error_frame


async def test_an_iso_tp_exchange_round_trips(bridge: Bridge) -> None:
    # What the ISO-TP layer behind the bridge will do: answer each request frame.
    async with python_can(bridge.server.port) as bus:
        for n in range(20):
            request = std(0x6F1, [0x12, 0x03, 0x22, 0xF1, n])
            await asyncio.to_thread(bus.send, request)
            _, data, _ = await bridge.next_frame()
            await bridge.server.send_frame(0x612, bytes([0xF1, 0x03, 0x62]) + data[3:])
            answer = await asyncio.to_thread(bus.recv, 5)
            assert answer is not None
            assert bytes(answer.data) == bytes([0xF1, 0x03, 0x62, 0xF1, n])


async def test_an_async_callback_is_awaited_in_order() -> None:
    seen: list[int] = []
    done = asyncio.Event()

    async def on_frame(can_id: int, data: bytes, extended: bool) -> None:
        await asyncio.sleep(0)  # yields to the loop, as a real handler would
        seen.append(data[0])
        if len(seen) == 10:
            done.set()

    async with SocketcandServer(on_frame) as server, python_can(server.port) as bus:
        for n in range(10):
            await asyncio.to_thread(bus.send, std(0x6F1, [n]))
        await asyncio.wait_for(done.wait(), 5)
    assert seen == list(range(10))


async def test_frames_of_one_client_reach_the_other_as_on_a_bus(bridge: Bridge) -> None:
    async with python_can(bridge.server.port) as a, python_can(bridge.server.port) as b:
        await asyncio.to_thread(a.send, std(0x6F1, [1, 2]))
        assert await bridge.next_frame() == (0x6F1, b"\x01\x02", False)
        heard = await asyncio.to_thread(b.recv, 5)
        assert heard is not None
        assert (heard.arbitration_id, bytes(heard.data)) == (0x6F1, b"\x01\x02")
        # and not back to the sender: its next frame is the bridge's
        await bridge.server.send_frame(0x612, b"\x03")
        own = await asyncio.to_thread(a.recv, 5)
        assert own is not None
        assert own.arbitration_id == 0x612


async def test_garbage_gets_an_error_and_a_close_and_spares_other_clients(bridge: Bridge) -> None:
    async with python_can(bridge.server.port) as bus:
        for garbage in [b"hello\n", b"< open can0 >\x00", b"<" + b"x" * 300, b"< a < b >"]:
            async with raw_client(bridge.server.port) as (reader, writer):
                writer.write(garbage)
                answer = await asyncio.wait_for(reader.read(), 5)  # to EOF: it hangs up
                assert answer.endswith(b" >"), garbage
                last = answer[answer.rindex(b"<") :]
                assert last.startswith(b"< error "), garbage  # after any answers before it
        await asyncio.to_thread(bus.send, std(0x6F1, [7]))
        assert await bridge.next_frame() == (0x6F1, b"\x07", False)
        await bridge.server.send_frame(0x612, b"\x08")
        message = await asyncio.to_thread(bus.recv, 5)
        assert message is not None
        assert bytes(message.data) == b"\x08"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    garbage=st.binary(min_size=1, max_size=400)
    | st.lists(st.sampled_from([b"<", b">", b" ", b"open", b"can0", b"send", b"6F1", b"8", b"\n"]))
    .map(b"".join)
    .filter(bool)
)
async def test_arbitrary_bytes_never_break_the_bridge(bridge: Bridge, garbage: bytes) -> None:
    async with raw_client(bridge.server.port) as (reader, writer):
        with contextlib.suppress(ConnectionError):
            writer.write(garbage)
            writer.write_eof()
            answer = await asyncio.wait_for(reader.read(), 5)  # it hangs up at our EOF
            assert answer.count(b"<") == answer.count(b">")  # whole elements only
    async with raw_client(bridge.server.port) as (reader, writer):  # and serves the next one
        writer.write(b"< echo >")
        assert await read_element(reader) == b"< echo >"


async def test_bad_commands_are_answered_and_the_session_goes_on(bridge: Bridge) -> None:
    async with raw_client(bridge.server.port) as (reader, writer):
        for element, answer in [
            (b"< rawmode >", b"< error open a bus first: open can0 >"),
            (b"< send 6F1 1 00 >", b"< error open a bus first: open can0 >"),
            (b"< open can9 >", b"< error could not open bus can9: this VCI has can0 >"),
            (b"< echo >", b"< echo >"),
            (b"< open can0 >", OK),
            (b"< open can0 >", b"< error bus can0 is already open >"),
            (b"< send 800 0 >", b"< error 11-bit CAN id 800 is above 7FF >"),
            (b"< isotpmode >", None),
            (b"< rawmode >", OK),
        ]:
            writer.write(element)
            got = await read_element(reader)
            if answer is None:
                assert got.startswith(b"< error unsupported command 'isotpmode'")
            else:
                assert got == answer
        assert bridge.server.raw_clients == 1
        writer.write(b"\r\n< send 6F1 2 1 ab >\n")  # whitespace between elements is fine
        assert await bridge.next_frame() == (0x6F1, b"\x01\xab", False)
        writer.write(b"< bcmode >")
        assert await read_element(reader) == OK
        assert bridge.server.raw_clients == 0


async def test_close_ends_every_connection_and_leaves_no_task() -> None:
    server = SocketcandServer(lambda *_: None)
    await server.start()
    port = server.port
    async with python_can(port), raw_client(port) as (reader, _):
        await server.close()
        await server.close()
        assert await asyncio.wait_for(reader.read(), 5) == b""
    assert asyncio.all_tasks() == {asyncio.current_task()}
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port


async def test_a_client_that_vanishes_does_not_disturb_sending(bridge: Bridge) -> None:
    async with raw_client(bridge.server.port) as (reader, writer):
        writer.write(b"< open can0 >< rawmode >")
        assert await read_element(reader) == OK
        assert await read_element(reader) == OK
    async with python_can(bridge.server.port) as bus:
        for n in range(5):
            await bridge.server.send_frame(0x612, bytes([n]))
            message = await asyncio.to_thread(bus.recv, 5)
            assert message is not None
            assert bytes(message.data) == bytes([n])


async def test_a_client_that_stops_reading_is_dropped_and_the_bus_goes_on() -> None:
    async with (
        SocketcandServer(lambda *_: None, slow_client_s=0.2) as server,
        raw_client(server.port) as (good, good_w),
        raw_client(server.port) as (stuck, stuck_w),
    ):
        for reader, writer in [(good, good_w), (stuck, stuck_w)]:
            writer.write(b"< open can0 >< rawmode >")
            assert await read_element(reader) == OK
            assert await read_element(reader) == OK
        # Small kernel buffers on the stuck path, so that it fills after a few frames.
        stuck_name = stuck_w.get_extra_info("sockname")
        stuck_w.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for client in server._clients:
            sock = client.writer.get_extra_info("socket")
            if sock.getpeername() == stuck_name:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        marker = b"< frame 7DF "
        seen = asyncio.Event()

        async def consume() -> None:
            tail = b""
            while chunk := await good.read(65536):
                tail = tail[-len(marker) :] + chunk
                if marker in tail:
                    seen.set()

        reading = asyncio.create_task(consume())
        try:
            for n in range(100_000):  # bounded: far more than the buffers hold
                await server.send_frame(0x612, bytes([n % 256] * 8))
                if server.raw_clients == 1:
                    break
            assert server.raw_clients == 1  # the stuck one was dropped, the good one kept
            await server.send_frame(0x7DF, b"\x02\x3e\x80")
            await asyncio.wait_for(seen.wait(), 5)
        finally:
            reading.cancel()
            await asyncio.wait({reading})


async def test_a_failing_callback_closes_only_that_client(
    bridge: Bridge, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(can_id: int, data: bytes, extended: bool) -> None:
        if data == b"\xee":
            raise RuntimeError("bug in the vehicle model")
        bridge.frames.put_nowait((can_id, data, extended))

    server = SocketcandServer(explode)
    async with server, python_can(server.port) as good:
        async with raw_client(server.port) as (reader, writer):
            writer.write(b"< open can0 >< send 6F1 1 ee >")
            assert await read_element(reader) == OK
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed
        await asyncio.to_thread(good.send, std(0x6F1, [1]))
        assert await bridge.next_frame() == (0x6F1, b"\x01", False)
    assert "bug in the vehicle model" in caplog.text


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.1", "vci.example.invalid"])
def test_listens_on_loopback_only(host: str) -> None:
    with pytest.raises(ConfigError, match="loopback only"):
        SocketcandServer(lambda *_: None, host=host)


# --- codec ----------------------------------------------------------------------------------


def test_parse_each_command() -> None:
    assert parse_command("< open can0 >") == Open(channel="can0")
    assert parse_command("< rawmode >") == RawMode()
    assert parse_command("<bcmode>") == BcMode()
    assert parse_command("< echo >") == Echo()
    assert parse_command("< send 6F1 8 12 2 10 3 0 0 0 0 >") == Send(
        can_id=0x6F1, data=bytes.fromhex("1202100300000000")
    )
    assert parse_command("< send 00000123 0 >") == Send(can_id=0x123, data=b"", extended=True)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("open can0", "angle brackets"),
        ("<  >", "empty"),
        ("< open >", "bus name"),
        ("< open can0 can1 >", "bus name"),
        ("< rawmode now >", "no arguments"),
        ("< send 6F1 >", "id and a length"),
        ("< send 6G1 0 >", "hexadecimal"),
        ("< send 1234 0 >", "1-3 hex digits"),
        ("< send 20000000 0 >", "above 1FFFFFFF"),
        ("< send 6F1 9 0 0 0 0 0 0 0 0 0 >", "not 0-8"),
        ("< send 6F1 2 00 >", "says 2 bytes but 1"),
        ("< send 6F1 1 100 >", "1 or 2 hex digits"),
        ("< subscribe 0 0 6F1 >", "unsupported command 'subscribe'"),
    ],
)
def test_parse_errors(text: str, says: str) -> None:
    with pytest.raises(ParseError, match=says):
        parse_command(text)


def test_format_frame_as_socketcand_does() -> None:
    assert format_frame(0x612, bytes.fromhex("f1025003"), T0) == (
        b"< frame 612 1700000000.250000 F1025003 >"
    )
    assert format_frame(0x1, b"", 0.0) == b"< frame 001 0.000000  >"
    assert format_frame(0x18DA12F1, b"\x01", 1.5, extended=True) == (
        b"< frame 18DA12F1 1.500000 01 >"
    )
    for bad in [
        {"can_id": 0x800, "data": b""},
        {"can_id": 0x20000000, "data": b"", "extended": True},
        {"can_id": 1, "data": bytes(9)},
        {"can_id": 1, "data": b"", "timestamp": float("nan")},
    ]:
        args: dict[str, Any] = {"timestamp": 0.0, **bad}
        with pytest.raises(ValueError, match=r"CAN id|0-8 bytes|timestamp"):
            format_frame(**args)


def test_format_error_cannot_break_the_element() -> None:
    assert format_error("bad <thing>\n") == b"< error bad ?thing?? >"
    assert len(format_error("x" * 1000)) < 220


_ids = st.booleans().flatmap(
    lambda ext: st.tuples(
        st.integers(0, 0x1FFFFFFF if ext else 0x7FF), st.just(ext), st.binary(max_size=8)
    )
)


@given(_ids)
def test_python_can_send_parses_to_the_same_frame(frame: tuple[int, bool, bytes]) -> None:
    can_id, extended, data = frame
    message = can.Message(arbitration_id=can_id, is_extended_id=extended, data=data)
    text = convert_can_message_to_ascii_message(message)
    assert parse_command(text) == Send(can_id=can_id, data=data, extended=extended)


@given(_ids, st.floats(0, 4e9))
def test_our_frame_parses_in_python_can_to_the_same_frame(
    frame: tuple[int, bool, bytes], timestamp: float
) -> None:
    can_id, extended, data = frame
    text = format_frame(can_id, data, timestamp, extended=extended).decode("ascii")
    message = convert_ascii_message_to_can_message(text)
    assert (message.arbitration_id, message.is_extended_id) == (can_id, extended)
    assert (bytes(message.data), message.dlc) == (data, len(data))
    assert message.timestamp == pytest.approx(timestamp, abs=1e-6)


def _split_at(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    start = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        yield data[start:cut]
        start = cut
    yield data[start:]


@given(st.lists(st.integers(min_value=0), max_size=10))
def test_splitter_yields_the_same_elements_however_the_stream_is_cut(cuts: list[int]) -> None:
    stream = b"< open can0 >\n< rawmode >  < send 6F1 2 1 ab >\r\n<echo>"
    splitter = ElementSplitter()
    elements: list[str] = []
    for chunk in _split_at(stream, cuts):
        splitter.feed(chunk)
        elements.extend(splitter.elements())
    assert elements == ["< open can0 >", "< rawmode >", "< send 6F1 2 1 ab >", "<echo>"]


@given(st.binary(max_size=600))
def test_splitter_and_parser_raise_only_parse_error_on_arbitrary_bytes(data: bytes) -> None:
    splitter = ElementSplitter()
    splitter.feed(data)
    with contextlib.suppress(ParseError):
        for element in splitter.elements():
            with contextlib.suppress(ParseError):
                parse_command(element)
