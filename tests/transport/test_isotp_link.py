"""IsotpLink against ECUs built directly on can-isotp, on python-can's in-process bus.

Each test gets its own ``virtual`` channel, named after the test, so no test sees another's
frames. The ECUs are can-isotp ``NotifierBasedCanStack``s with the addresses mirrored: the
library's own reference use, not our router.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import can
import isotp
import pytest

from ecuworks.errors import ConfigError, LinkClosed, LinkError, LinkTimeout
from ecuworks.transport.isotp import BMW_DCAN, CanAddressing, IsotpLink, normal_11bit

Responder = Callable[[bytes], Iterable[bytes]]
"""What an ECU answers to one request: zero or more responses."""

VIN = b"WBA3A5C50CF256985"
WAIT = 5.0  # generous timeouts for exchanges that must succeed; they never run out


def _echo(request: bytes) -> Iterable[bytes]:
    yield bytes([request[0] + 0x40]) + request[1:3]


class FakeEcu:
    """One ECU on the virtual bus, answering physical and functional requests."""

    def __init__(
        self,
        channel: str,
        address: int,
        responder: Responder,
        *,
        addressing: CanAddressing = BMW_DCAN,
        tester: int = 0xF1,
        functional: int = 0xDF,
        fd: bool = False,
    ) -> None:
        self.address = address
        self.responder = responder
        self.requests: list[bytes] = []
        self.bus = can.Bus(interface="virtual", channel=channel)
        self.notifier = can.Notifier(self.bus, [], timeout=0.05)
        params: dict[str, Any] = {
            "blocksize": 8,  # makes our link wait for flow control every 8 frames
            "stmin": 0,
            "tx_padding": 0x55,
            "max_frame_size": 0xFFFF,
            "tx_data_length": 64 if fd else 8,
            "can_fd": fd,
        }
        if addressing.mode == "extended":
            own = isotp.Address(
                isotp.AddressingMode.Extended_11bits,
                txid=addressing.response_base + address,
                rxid=addressing.request_base + tester,
                target_address=tester,
                source_address=address,
            )
            broadcast = isotp.Address(
                isotp.AddressingMode.Extended_11bits,
                txid=addressing.response_base + address,
                rxid=addressing.request_base + tester,
                target_address=tester,
                source_address=functional,
            )
        else:
            assert addressing.functional_id is not None
            own = isotp.Address(
                isotp.AddressingMode.Normal_11bits,
                txid=addressing.response_base + address,
                rxid=addressing.request_base + address,
            )
            broadcast = isotp.Address(
                isotp.AddressingMode.Normal_11bits,
                txid=addressing.response_base + address,
                rxid=addressing.functional_id,
            )
        self.stack = isotp.NotifierBasedCanStack(
            self.bus, self.notifier, address=own, params=params
        )
        self.broadcast = isotp.NotifierBasedCanStack(
            self.bus, self.notifier, address=broadcast, params=params
        )
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve, args=(stack,), daemon=True)
            for stack in (self.stack, self.broadcast)
        ]
        self.stack.start()
        self.broadcast.start()
        for thread in self._threads:
            thread.start()

    def _serve(self, stack: isotp.NotifierBasedCanStack) -> None:
        while not self._stop.is_set():
            request = stack.recv(block=True, timeout=0.05)
            if request is None:
                continue
            self.requests.append(bytes(request))
            for response in self.responder(bytes(request)):
                self.stack.send(response)  # answers always go out on the physical address

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        self.stack.stop()
        self.broadcast.stop()
        self.notifier.stop()
        self.bus.shutdown()


@pytest.fixture
def channel(request: pytest.FixtureRequest) -> str:
    return f"isotp-test:{request.node.nodeid}"


@pytest.fixture
def make_ecu(channel: str) -> Iterator[Callable[..., FakeEcu]]:
    ecus: list[FakeEcu] = []

    def make(address: int, responder: Responder = _echo, **kwargs: Any) -> FakeEcu:
        ecu = FakeEcu(channel, address, responder, **kwargs)
        ecus.append(ecu)
        return ecu

    yield make
    for ecu in ecus:
        ecu._stop.set()  # let every ECU's threads wind down together
    for ecu in ecus:
        ecu.close()


@pytest.fixture
async def link(channel: str) -> Any:
    link = IsotpLink("virtual", channel)
    await link.open()
    yield link
    await link.close()


# --- exchanges ----------------------------------------------------------------------------


async def test_single_frame_request_and_response(
    make_ecu: Callable[..., FakeEcu], link: IsotpLink
) -> None:
    ecu = make_ecu(0x12)
    assert await link.request(0x12, bytes.fromhex("3E00"), WAIT) == bytes.fromhex("7E00")
    assert ecu.requests == [bytes.fromhex("3E00")]


async def test_multi_frame_response_of_4000_bytes(
    make_ecu: Callable[..., FakeEcu], link: IsotpLink
) -> None:
    record = bytes(i & 0xFF for i in range(3997))
    make_ecu(0x12, lambda request: [b"\x62" + request[1:3] + record])
    answer = await link.request(0x12, bytes.fromhex("221234"), WAIT)
    assert answer == bytes.fromhex("621234") + record
    assert len(answer) == 4000


async def test_multi_frame_request_of_a_full_transfer_block(
    make_ecu: Callable[..., FakeEcu], link: IsotpLink
) -> None:
    block = bytes((i * 7) & 0xFF for i in range(0xFFD))
    ecu = make_ecu(0x12)
    answer = await link.request(0x12, b"\x36\x01" + block, WAIT)
    assert answer[:2] == b"\x76\x01"
    assert ecu.requests == [b"\x36\x01" + block]  # 0xFFF bytes, flow-controlled every 8


async def test_several_ecus_answer_concurrently(
    make_ecu: Callable[..., FakeEcu], link: IsotpLink
) -> None:
    addresses = (0x12, 0x18, 0x29, 0x40)
    for address in addresses:
        make_ecu(address, lambda request, a=address: [b"\x62\xf1\x90" + bytes([a]) * 1000])
    answers = await asyncio.gather(
        *(link.request(address, bytes.fromhex("22F190"), WAIT) for address in addresses)
    )
    for address, answer in zip(addresses, answers, strict=True):
        assert answer == b"\x62\xf1\x90" + bytes([address]) * 1000


async def test_functional_request_collects_answers_from_every_ecu(
    make_ecu: Callable[..., FakeEcu], link: IsotpLink
) -> None:
    # The VIN answer is 20 bytes, a multi-frame answer from ECUs never addressed before.
    for address in (0x10, 0x12, 0x40):
        make_ecu(address, lambda request: [b"\x62\xf1\x90" + VIN])
    answers = await link.request_functional(bytes.fromhex("22F190"), WAIT, expected=3)
    assert sorted(answers) == [(a, b"\x62\xf1\x90" + VIN) for a in (0x10, 0x12, 0x40)]


async def test_functional_request_goes_out_with_the_functional_target_byte(
    channel: str, link: IsotpLink
) -> None:
    with can.Bus(interface="virtual", channel=channel) as spy:
        await link.send_functional(bytes.fromhex("3E80"))
        frame = spy.recv(WAIT)
    assert frame is not None
    assert frame.arbitration_id == 0x6F1
    assert bytes(frame.data) == bytes.fromhex("DF023E80FFFFFFFF")  # padded to 8 with 0xFF


async def test_functional_request_must_fit_one_frame(link: IsotpLink) -> None:
    with pytest.raises(LinkError, match="one CAN frame"):
        await link.send_functional(bytes(7))


async def test_answer_to_another_tester_is_not_delivered(
    make_ecu: Callable[..., FakeEcu], channel: str, link: IsotpLink
) -> None:
    # The ECU first answers tester 0xF2 on its own id, then us; only the second is ours.
    with can.Bus(interface="virtual", channel=channel) as rogue:

        def respond(request: bytes) -> Iterable[bytes]:
            rogue.send(
                can.Message(
                    arbitration_id=0x612, data=b"\xf2\x03\x7f\x22\x31", is_extended_id=False
                )
            )
            yield b"\x62\xf1\x90" + VIN

        make_ecu(0x12, respond)
        assert await link.request(0x12, bytes.fromhex("22F190"), WAIT) == b"\x62\xf1\x90" + VIN
        with pytest.raises(LinkTimeout):
            await link.receive(0x12, 0.05)  # and nothing else is waiting for us


async def test_answer_from_an_unaddressed_can_id_is_not_delivered(
    make_ecu: Callable[..., FakeEcu], channel: str, link: IsotpLink
) -> None:
    with can.Bus(interface="virtual", channel=channel) as rogue:

        def respond(request: bytes) -> Iterable[bytes]:
            # an ISO 15765-4 style answer (0x7E8) on a D-CAN bus reaches no ECU's inbox
            rogue.send(
                can.Message(arbitration_id=0x7E8, data=b"\x03\x7f\x22\x31", is_extended_id=False)
            )
            yield b"\x7e\x00"

        make_ecu(0x12, respond)
        assert await link.request(0x12, bytes.fromhex("3E00"), WAIT) == b"\x7e\x00"
        with pytest.raises(LinkTimeout):
            await link.receive(0x12, 0.05)


async def test_event_loop_keeps_running_during_a_long_transfer(
    make_ecu: Callable[..., FakeEcu], link: IsotpLink
) -> None:
    ticked = threading.Event()
    record = bytes(3997)

    def respond(request: bytes) -> Iterable[bytes]:
        # Holds the answer until the loop has ticked while the request was in flight.
        assert ticked.wait(WAIT)
        yield b"\x62" + request[1:3] + record

    make_ecu(0x12, respond)
    ticks = 0
    exchange = asyncio.ensure_future(link.request(0x12, b"\x2e\x12\x34" + bytes(3000), WAIT))
    while not exchange.done():
        ticks += 1
        if ticks == 20:
            ticked.set()
        await asyncio.sleep(0.001)
    assert (await exchange)[3:] == record
    assert ticks > 20  # the loop kept ticking while the 4000-byte answer came in, too


async def test_can_fd_carries_64_byte_frames(
    make_ecu: Callable[..., FakeEcu], channel: str
) -> None:
    record = bytes(range(256)) * 16
    make_ecu(0x12, lambda request: [b"\x62\x12\x34" + record], fd=True)
    async with IsotpLink("virtual", channel, fd=True) as link:
        assert await link.request(0x12, bytes.fromhex("221234"), WAIT) == b"\x62\x12\x34" + record


async def test_normal_addressing(make_ecu: Callable[..., FakeEcu], channel: str) -> None:
    obd = normal_11bit()
    make_ecu(0x01, addressing=obd)
    make_ecu(0x02, addressing=obd)
    async with IsotpLink("virtual", channel, addressing=obd) as link:
        assert await link.request(0x01, bytes.fromhex("22F190"), WAIT) == bytes.fromhex("62F190")
        answers = await link.request_functional(bytes.fromhex("3E00"), WAIT, expected=2)
    assert sorted(answers) == [(0x01, b"\x7e\x00"), (0x02, b"\x7e\x00")]


# --- failures and lifecycle ---------------------------------------------------------------


async def test_missing_flow_control_fails_the_exchange_before_its_timeout(channel: str) -> None:
    async with IsotpLink("virtual", channel, isotp_params={"rx_flowcontrol_timeout": 50}) as link:
        with pytest.raises(LinkError, match="flow control") as caught:
            await link.request(0x55, b"\x36\x01" + bytes(100), 60.0)
    assert not isinstance(caught.value, LinkTimeout)


async def test_no_answer_times_out(make_ecu: Callable[..., FakeEcu], link: IsotpLink) -> None:
    make_ecu(0x12, lambda request: [])
    with pytest.raises(LinkTimeout, match="0x12"):
        await link.request(0x12, bytes.fromhex("3E00"), 0.05)


async def test_the_bus_going_away_fails_waiting_requests(
    make_ecu: Callable[..., FakeEcu], link: IsotpLink
) -> None:
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()

    def respond(request: bytes) -> Iterable[bytes]:
        loop.call_soon_threadsafe(arrived.set)
        return []

    make_ecu(0x12, respond)
    waiting = asyncio.ensure_future(link.request(0x12, bytes.fromhex("3E00"), 60.0))
    await arrived.wait()  # the request is through and the link waits for the answer
    assert link._bus is not None
    link._bus.shutdown()  # as when the USB adapter is pulled
    with pytest.raises(LinkError, match="stopped working"):
        await waiting
    assert not link.is_open


async def test_close_fails_waiting_requests_and_is_idempotent(
    make_ecu: Callable[..., FakeEcu], channel: str
) -> None:
    make_ecu(0x12, lambda request: [])
    link = IsotpLink("virtual", channel)
    await link.open()
    waiting = asyncio.ensure_future(link.request(0x12, bytes.fromhex("3E00"), 60.0))
    await asyncio.sleep(0)
    await link.close()
    with pytest.raises(LinkClosed):
        await waiting
    await link.close()
    with pytest.raises(LinkClosed):
        await link.request(0x12, bytes.fromhex("3E00"), WAIT)


async def test_close_leaves_no_threads_and_reopen_works(
    make_ecu: Callable[..., FakeEcu], channel: str
) -> None:
    for address in (0x10, 0x12):
        make_ecu(address)
    before = set(threading.enumerate())
    link = IsotpLink("virtual", channel)
    for _ in range(2):  # reopening after close works and leaks nothing either
        await link.open()
        await link.request(0x12, bytes.fromhex("22F190"), WAIT)
        await link.request_functional(bytes.fromhex("3E00"), WAIT, expected=2)
        assert len(set(threading.enumerate()) - before) > 3  # notifier + stacks running
        await link.close()
        assert set(threading.enumerate()) - before == set()


async def test_open_names_the_interface_when_python_can_cannot(channel: str) -> None:
    link = IsotpLink("no-such-interface", channel)
    with pytest.raises(LinkError, match="'no-such-interface' channel") as caught:
        await link.open()
    assert "python-can knows" in str(caught.value)
    assert not link.is_open
    await link.close()


def test_bad_isotp_params_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="ISO-TP parameters"):
        IsotpLink("virtual", "x", isotp_params={"stmin": 300})
    with pytest.raises(ConfigError, match="ISO-TP parameters"):
        IsotpLink("virtual", "x", isotp_params={"no_such_parameter": 1})


# --- addressing ---------------------------------------------------------------------------


def test_bmw_dcan_addresses() -> None:
    address = BMW_DCAN.physical(0x12, tester=0xF1)
    assert address.get_tx_arbitration_id() == 0x6F1
    assert address.get_tx_payload_prefix() == b"\x12"
    assert address.get_rx_arbitration_id() == 0x612
    assert address.get_rx_extension_byte() == 0xF1
    functional = BMW_DCAN.functional(0xDF, tester=0xF1)
    assert functional.get_tx_arbitration_id() == 0x6F1
    assert functional.get_tx_payload_prefix() == b"\xdf"
    assert BMW_DCAN.source_of(0x612, False, b"\xf1\x02\x7e\x00", tester=0xF1) == 0x12
    assert BMW_DCAN.source_of(0x612, False, b"\xf2\x02\x7e\x00", tester=0xF1) is None
    assert BMW_DCAN.source_of(0x6F1, False, b"\xf1\x02\x3e\x00", tester=0xF1) is None
    assert BMW_DCAN.source_of(0x612, True, b"\xf1\x02\x7e\x00", tester=0xF1) is None
    assert BMW_DCAN.source_of(0x512, False, b"\xf1\x02\x7e\x00", tester=0xF1) is None


def test_normal_addressing_maps_and_rejects_addresses() -> None:
    obd = normal_11bit()
    address = obd.physical(0x03, tester=0xF1)
    assert (address.get_tx_arbitration_id(), address.get_rx_arbitration_id()) == (0x7E3, 0x7EB)
    assert obd.functional(0xDF, tester=0xF1).get_tx_arbitration_id() == 0x7DF
    assert obd.source_of(0x7EB, False, b"\x02\x7e\x00", tester=0xF1) == 0x03
    assert obd.source_of(0x7E3, False, b"\x02\x3e\x00", tester=0xF1) is None
    with pytest.raises(ConfigError, match="does not fit"):
        obd.physical(0x12, tester=0xF1)  # would collide with the response ids
    wide = normal_11bit(0x700, 0x780, 0x7DF)
    assert wide.physical(0x12, tester=0xF1).get_rx_arbitration_id() == 0x792
    with pytest.raises(ConfigError, match="11-bit"):
        normal_11bit(request_base=0x800)
