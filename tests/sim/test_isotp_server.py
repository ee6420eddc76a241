"""The simulator's server-side ISO-TP: frame vectors, reassembly, paced segmentation,
timeouts, robustness, and interop with can-isotp (a peer no one here wrote)."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import threading
import time
from collections.abc import Iterator

import can
import isotp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecuworks.errors import ConfigError, ParseError
from ecuworks.sim.isotp import (
    ConsecutiveFrame,
    Error,
    Event,
    FirstFrame,
    FlowControl,
    Frame,
    IsotpEndpoint,
    MessageReceived,
    NResult,
    Pdu,
    SendFrames,
    SingleFrame,
    decode_stmin,
    encode_frame,
    encode_stmin,
    parse_frame,
)

ECU = 0x12
PAYLOAD_4000 = bytes((i * 7 + i // 256) & 0xFF for i in range(4000))


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def bmw(**params: float) -> IsotpEndpoint:
    return IsotpEndpoint.bmw_dcan(ECU, **params)  # type: ignore[arg-type]


def sent(events: list[Event]) -> list[Frame]:
    return [frame for event in events if isinstance(event, SendFrames) for frame in event.frames]


def segment_by_hand(payload: bytes, *, first: int = ECU, pad: int = 0xFF) -> list[bytes]:
    """A request as a tester on BMW D-CAN segments it, written out by hand here."""
    if len(payload) <= 6:
        return [bytes([first, len(payload)]) + payload.ljust(6, bytes([pad]))]
    if len(payload) <= 0xFFF:
        head = bytes([first, 0x10 | len(payload) >> 8, len(payload) & 0xFF])
    else:
        head = bytes([first, 0x10, 0x00]) + len(payload).to_bytes(4, "big")
    cut = 8 - len(head)
    frames = [head + payload[:cut]]
    for n, start in enumerate(range(cut, len(payload), 6), start=1):
        chunk = payload[start : start + 6]
        frames.append(bytes([first, 0x20 | (n & 0xF)]) + chunk.ljust(6, bytes([pad])))
    return frames


# --- frame codec: literal vectors (ISO 15765-2:2016, 9.6) ------------------------------

PARSED: list[tuple[str, bool, int | None, Pdu]] = [
    ("021003", False, None, SingleFrame(data=h("1003"))),
    ("021003CCCCCCCCCC", False, None, SingleFrame(data=h("1003"))),
    ("12021003", True, 0x12, SingleFrame(data=h("1003"))),
    ("F1065003003201F4", True, 0xF1, SingleFrame(data=h("5003003201F4"))),
    ("101462F190574241", False, None, FirstFrame(length=20, data=h("62F190574241"))),
    ("100000001388ABCD", False, None, FirstFrame(length=5000, data=h("ABCD"))),
    ("2101020304050607", False, None, ConsecutiveFrame(sequence=1, data=h("01020304050607"))),
    ("1220AABBCCDDEEFF", True, 0x12, ConsecutiveFrame(sequence=0, data=h("AABBCCDDEEFF"))),
    ("300801", False, None, FlowControl(status=0, block_size=8, stmin=1)),
    ("12310000", True, 0x12, FlowControl(status=1)),
    ("320000CCCCCCCCCC", False, None, FlowControl(status=2)),
    # CAN FD: an escaped single frame of 10 bytes in a 12-byte frame.
    ("000A" + "11" * 10, False, None, SingleFrame(data=h("11" * 10))),
]


@pytest.mark.parametrize(("frame", "extended", "address", "pdu"), PARSED)
def test_literal_frames_parse(frame: str, extended: bool, address: int | None, pdu: Pdu) -> None:
    assert parse_frame(h(frame), extended=extended) == (address, pdu)


@pytest.mark.parametrize(
    ("frame", "extended", "why"),
    [
        ("", False, "too short"),
        ("12", True, "too short"),
        ("00CCCCCCCCCCCCCC", False, "SF_DL 0"),
        ("0811223344556677", False, "says 8"),
        ("0510", False, "says 5"),
        ("4000", False, "PCI type 4"),
        ("1007112233445566", False, "minimum 8"),
        ("12 1006 1122334455", True, "minimum 7"),
        ("10000000 0FFF 1122", False, "must exceed 4095"),
        ("101462F190", False, "at least 8"),
        ("3000", False, "3 PCI bytes"),
        ("021003CCCCCCCCCCCC", False, "no CAN or CAN FD frame length"),
        ("0210031122334455 66778899", False, "without the SF_DL escape"),
        ("003F" + "11" * 10, False, "SF_DL 63"),
    ],
)
def test_frames_the_standard_says_to_ignore_are_parse_errors(
    frame: str, extended: bool, why: str
) -> None:
    with pytest.raises(ParseError, match=why):
        parse_frame(h(frame), extended=extended)


@pytest.mark.parametrize(
    ("pdu", "params", "frame"),
    [
        (SingleFrame(data=h("1003")), {}, "021003CCCCCCCCCC"),
        (SingleFrame(data=h("1003")), {"padding": None}, "021003"),
        (SingleFrame(data=h("1003")), {"address": 0x12, "padding": None}, "12021003"),
        (SingleFrame(data=h("1003")), {"address": 0xF1, "padding": 0xFF}, "F1021003FFFFFFFF"),
        (FirstFrame(length=4000, data=h("0102030405")), {"address": 0xF1}, "F11FA00102030405"),
        (FirstFrame(length=5000, data=h("ABCD")), {}, "100000001388ABCD"),
        (ConsecutiveFrame(sequence=0x11, data=h("AA")), {"padding": 0xFF}, "21AAFFFFFFFFFFFF"),
        (FlowControl(status=0, block_size=8, stmin=0xF5), {"padding": None}, "3008F5"),
        # CAN FD: 20 bytes need the SF_DL escape and a 24-byte frame filled with 0xCC.
        (
            SingleFrame(data=h("11" * 20)),
            {"fd": True, "padding": None},
            "0014" + "11" * 20 + "CC" * 2,
        ),
    ],
)
def test_literal_frames_encode(pdu: Pdu, params: dict[str, object], frame: str) -> None:
    assert encode_frame(pdu, **params).hex().upper() == frame  # type: ignore[arg-type]


def test_encode_refuses_what_does_not_fit_one_frame() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        encode_frame(SingleFrame(data=bytes(8)))


@pytest.mark.parametrize(
    ("byte", "seconds"),
    [
        (0x00, 0.0),
        (0x01, 0.001),
        (0x14, 0.020),
        (0x7F, 0.127),
        (0xF1, 0.0001),
        (0xF5, 0.0005),
        (0xF9, 0.0009),
        # Reserved values: the sender uses the longest STmin, 127 ms (9.6.5.5).
        (0x80, 0.127),
        (0xF0, 0.127),
        (0xFA, 0.127),
        (0xFF, 0.127),
    ],
)
def test_stmin_decoding_table(byte: int, seconds: float) -> None:
    assert decode_stmin(byte) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("seconds", "byte"),
    [
        (0.0, 0x00),
        (0.0001, 0xF1),
        (0.00025, 0xF3),  # rounded up: STmin is a minimum
        (0.0009, 0xF9),
        (0.00091, 0x01),
        (0.001, 0x01),
        (0.0011, 0x02),
        (0.127, 0x7F),
    ],
)
def test_stmin_encoding_table(seconds: float, byte: int) -> None:
    assert encode_stmin(seconds) == byte


@pytest.mark.parametrize("byte", [*range(0x80), *range(0xF1, 0xFA)])
def test_every_valid_stmin_byte_round_trips(byte: int) -> None:
    assert encode_stmin(decode_stmin(byte)) == byte


@pytest.mark.parametrize("seconds", [-0.001, 0.128, 1.0])
def test_stmin_outside_the_encodable_range_is_refused(seconds: float) -> None:
    with pytest.raises(ConfigError, match="STmin"):
        encode_stmin(seconds)


# --- the ECU endpoint on BMW D-CAN --------------------------------------------------------


def test_bmw_single_frame_request_and_response() -> None:
    ecu = bmw()
    assert (ecu.rx_id, ecu.tx_id) == (0x6F1, 0x612)
    assert ecu.feed(h("12021003FFFFFFFF"), 0.0) == [MessageReceived(h("1003"))]
    assert ecu.send(h("5003003201F4"), 0.002) == [Frame(h("F1065003003201F4"), 0.002)]


def test_frames_for_other_ecus_pass_by() -> None:
    ecu = bmw()
    assert ecu.feed(h("13021003FFFFFFFF"), 0.0) == []
    assert not ecu.accepts(0x6F1, h("13021003"))
    assert not ecu.accepts(0x612, h("12021003"))
    assert ecu.accepts(0x6F1, h("12021003"))
    assert ecu.accepts(0x6F1, h("DF023E80"))


def test_functional_requests_arrive_as_such() -> None:
    ecu = bmw()
    assert ecu.feed(h("DF023E80FFFFFFFF"), 0.0) == [MessageReceived(h("3E80"), functional=True)]
    [error] = ecu.feed(h("DF100A2EF1900102"), 0.0)
    assert isinstance(error, Error)
    assert error.result is NResult.UNEXP_PDU
    normal = IsotpEndpoint(rx_id=0x7E0, tx_id=0x7E8)
    assert normal.feed(h("023E80"), 0.0, functional=True) == [
        MessageReceived(h("3E80"), functional=True)
    ]


def test_a_4000_byte_request_is_reassembled_with_flow_control_every_block() -> None:
    ecu = bmw(block_size=8, stmin_s=0.002, max_message=0xFFF)
    frames = segment_by_hand(PAYLOAD_4000)
    assert len(frames) == 1 + 666  # FF carries 5, CFs 6: 3995 / 6 -> 666
    events = ecu.feed(frames[0], 0.0)
    # Our flow control: continue to send, BS 8, STmin 2 ms, padded with 0xFF.
    assert events == [SendFrames((Frame(h("F1300802FFFFFFFF"), 0.0),))]
    flow_controls = 0
    received: list[bytes] = []
    for n, frame in enumerate(frames[1:], start=1):
        for event in ecu.feed(frame, n * 0.001):
            if isinstance(event, SendFrames):
                assert event.frames == (Frame(h("F1300802FFFFFFFF"), n * 0.001),)
                assert n % 8 == 0
                flow_controls += 1
            else:
                assert isinstance(event, MessageReceived)
                received.append(event.payload)
    assert flow_controls == 666 // 8
    assert received == [PAYLOAD_4000]
    assert not ecu.receiving


def test_a_4000_byte_response_follows_the_testers_block_size_and_stmin() -> None:
    ecu = bmw()
    [first] = ecu.send(PAYLOAD_4000, 0.0)
    assert first == Frame(h("F11FA0") + PAYLOAD_4000[:5], 0.0)
    data = bytearray(PAYLOAD_4000[:5])
    sequence: list[int] = []
    t = 0.010
    blocks = 0
    while ecu.sending:
        # The tester asks for blocks of 8 frames, 1 ms apart (FC: 30 08 01).
        [event] = ecu.feed(h("12300801FFFFFFFF"), t)
        assert isinstance(event, SendFrames)
        ats = [frame.at for frame in event.frames]
        assert ats == pytest.approx([t + k * 0.001 for k in range(len(ats))])
        assert len(event.frames) == 8 or not ecu.sending
        for frame in event.frames:
            assert frame.data[0] == 0xF1
            assert len(frame.data) == 8
            sequence.append(frame.data[1])
            data += frame.data[2:]
        blocks += 1
        t = ats[-1] + 0.005
    assert bytes(data[:4000]) == PAYLOAD_4000
    assert set(data[4000:]) == {0xFF}  # the last frame's padding
    assert len(sequence) == 666
    assert blocks == math.ceil(666 / 8)
    assert sequence == [0x20 | (n & 0xF) for n in range(1, 667)]


def test_released_frames_leave_stmin_after_the_end_of_each_frame() -> None:
    frame_s = 0.000222  # an 8-byte frame at 500 kbit/s
    ecu = bmw(frame_s=frame_s)
    ecu.send(bytes(100), 0.0)
    [event] = ecu.feed(h("12300001"), 0.5)
    assert isinstance(event, SendFrames)
    ats = [frame.at for frame in event.frames]
    assert ats == pytest.approx([0.5 + k * (frame_s + 0.001) for k in range(len(ats))])


def test_a_reserved_stmin_from_the_tester_means_127_ms() -> None:
    ecu = bmw()
    ecu.send(bytes(20), 0.0)
    [event] = ecu.feed(h("123000FA"), 1.0)
    assert isinstance(event, SendFrames)
    assert [frame.at for frame in event.frames] == pytest.approx([1.0, 1.127, 1.254])


def test_messages_over_4095_bytes_use_the_escape_first_frame() -> None:
    payload = bytes(range(256)) * 20  # 5120 bytes
    ecu = bmw(max_message=0x10000)
    [first] = ecu.send(payload, 0.0)
    assert first.data == h("F1100000001400") + payload[:1]
    events: list[Event] = []
    for n, frame in enumerate(segment_by_hand(payload)):
        events += ecu.feed(frame, n * 1e-4)
    assert events[-1] == MessageReceived(payload)


def test_a_request_over_max_message_is_refused_with_overflow() -> None:
    ecu = bmw(max_message=0xFFF)
    frames = segment_by_hand(bytes(5000))
    overflow, flow_control = ecu.feed(frames[0], 0.0)
    assert isinstance(overflow, Error)
    assert overflow.result is NResult.BUFFER_OVFLW
    assert flow_control == SendFrames((Frame(h("F1320000FFFFFFFF"), 0.0),))
    assert not ecu.receiving
    [stray] = ecu.feed(frames[1], 0.001)
    assert isinstance(stray, Error)
    assert stray.result is NResult.UNEXP_PDU


def test_a_wrong_sequence_number_abandons_the_request() -> None:
    ecu = bmw()
    frames = segment_by_hand(bytes(100))
    ecu.feed(frames[0], 0.0)
    [error] = ecu.feed(frames[2], 0.001)  # SN 2 where 1 was due
    assert isinstance(error, Error)
    assert error.result is NResult.WRONG_SN
    assert "expected sequence number 1, got 2" in error.detail
    assert not ecu.receiving
    [stray] = ecu.feed(frames[1], 0.002)
    assert isinstance(stray, Error)
    assert stray.result is NResult.UNEXP_PDU


def test_a_new_request_during_reception_replaces_the_old_one() -> None:
    ecu = bmw()
    frames = segment_by_hand(bytes(100))
    ecu.feed(frames[0], 0.0)
    abandoned, received = ecu.feed(h("12023E80FFFFFFFF"), 0.001)
    assert isinstance(abandoned, Error)
    assert abandoned.result is NResult.UNEXP_PDU
    assert received == MessageReceived(h("3E80"))
    ecu.feed(frames[0], 0.002)
    abandoned, flow_control = ecu.feed(frames[0], 0.003)
    assert isinstance(abandoned, Error)
    assert isinstance(flow_control, SendFrames)
    assert ecu.receiving


def test_consecutive_frames_must_stop_within_n_cr() -> None:
    ecu = bmw(n_cr=1.0)
    frames = segment_by_hand(bytes(100))
    ecu.feed(frames[0], 1.0)
    assert ecu.next_deadline() == 2.0
    ecu.feed(frames[1], 1.5)
    assert ecu.next_deadline() == 2.5
    assert ecu.poll(2.4) == []
    [timeout] = ecu.poll(2.5)
    assert isinstance(timeout, Error)
    assert timeout.result is NResult.TIMEOUT_CR
    assert timeout.direction == "rx"
    assert ecu.next_deadline() is None


def test_flow_control_must_come_within_n_bs() -> None:
    ecu = bmw(n_bs=1.0)
    ecu.send(bytes(100), 0.0)
    assert ecu.next_deadline() == 1.0
    assert ecu.feed(h("12310000"), 0.5) == []  # WAIT restarts N_Bs
    assert ecu.next_deadline() == 1.5
    [timeout] = ecu.poll(1.5)
    assert isinstance(timeout, Error)
    assert (timeout.result, timeout.direction) == (NResult.TIMEOUT_BS, "tx")
    assert not ecu.sending


def test_block_size_waits_for_the_next_flow_control_within_n_bs() -> None:
    ecu = bmw(n_bs=1.0)
    ecu.send(bytes(100), 0.0)
    [event] = ecu.feed(h("12300201"), 0.1)
    assert isinstance(event, SendFrames)
    assert len(event.frames) == 2
    assert ecu.next_deadline() == pytest.approx(0.101 + 1.0)


@pytest.mark.parametrize(
    ("flow_control", "result"),
    [("12320000", NResult.BUFFER_OVFLW), ("12350000", NResult.INVALID_FS)],
)
def test_overflow_or_an_invalid_flow_status_drops_the_response(
    flow_control: str, result: NResult
) -> None:
    ecu = bmw()
    ecu.send(bytes(100), 0.0)
    [error] = ecu.feed(h(flow_control), 0.1)
    assert isinstance(error, Error)
    assert (error.result, error.direction) == (result, "tx")
    assert not ecu.sending


def test_flow_control_nobody_asked_for_is_ignored() -> None:
    ecu = bmw()
    [error] = ecu.feed(h("12300000"), 0.0)
    assert isinstance(error, Error)
    assert error.result is NResult.UNEXP_PDU


def test_malformed_frames_for_us_are_reported_and_ignored() -> None:
    ecu = bmw()
    [error] = ecu.feed(h("1240"), 0.0)
    assert isinstance(error, Error)
    assert error.result is NResult.ERROR
    assert "12 40" in error.detail


def test_responses_sent_during_a_transfer_queue_behind_it() -> None:
    ecu = bmw(frame_s=0.0002)
    ecu.send(bytes(20), 0.0)
    assert ecu.send(h("7F3178"), 0.001) == []
    [event] = ecu.feed(h("12300000"), 0.01)
    assert isinstance(event, SendFrames)
    *consecutive, queued = event.frames
    assert [frame.data[1] >> 4 for frame in consecutive] == [2, 2, 2]
    assert queued.data == h("F1037F3178FFFFFF")
    assert queued.at == pytest.approx(0.01 + 3 * 0.0002)
    assert not ecu.sending


def test_a_timed_out_response_lets_the_queued_one_go() -> None:
    ecu = bmw()
    ecu.send(bytes(20), 0.0)
    ecu.send(h("7F3178"), 0.0)
    timeout, event = ecu.poll(1.0)
    assert isinstance(timeout, Error)
    assert event == SendFrames((Frame(h("F1037F3178FFFFFF"), 1.0),))


def test_canfd_frames_fill_to_dlc_steps() -> None:
    ecu = IsotpEndpoint(rx_id=0x7E0, tx_id=0x7E8, frame_data=64)
    [single] = ecu.send(bytes(range(20)), 0.0)
    assert single.data == h("0014") + bytes(range(20)) + h("CCCC")
    payload = bytes(range(200))
    [first] = ecu.send(payload, 0.0)
    assert first.data == h("10C8") + payload[:62]
    [event] = ecu.feed(h("300000"), 0.1)
    assert isinstance(event, SendFrames)
    # 138 more bytes: 63 + 63 + 12; the last frame (13 bytes) fills up to 16.
    assert [len(frame.data) for frame in event.frames] == [64, 64, 16]


def test_without_padding_classic_frames_are_as_short_as_possible() -> None:
    ecu = IsotpEndpoint(rx_id=0x7E0, tx_id=0x7E8, padding=None)
    assert ecu.send(h("5003"), 0.0) == [Frame(h("025003"), 0.0)]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"addressing": "extended"}, "rx_ext_address"),
        ({"frame_data": 10}, "frame length"),
        ({"block_size": 256}, "block size"),
        ({"max_message": 0}, "maximum message"),
        ({"stmin_s": 0.2}, "STmin"),
        ({"padding": 0x100}, "padding"),
    ],
)
def test_impossible_endpoint_settings_are_config_errors(
    params: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        IsotpEndpoint(rx_id=0x7E0, tx_id=0x7E8, **params)  # type: ignore[arg-type]


def test_empty_responses_are_refused() -> None:
    with pytest.raises(ValueError, match="1 to"):
        bmw().send(b"", 0.0)


# --- properties -----------------------------------------------------------------------


def transfer(
    sender: IsotpEndpoint, receiver: IsotpEndpoint, payload: bytes
) -> tuple[list[bytes], list[Error], list[Frame]]:
    """Run one message from ``sender`` to ``receiver``, delivering frames by their ``at``."""
    queue: list[tuple[float, int, int, bytes]] = []
    order = itertools.count()
    ends = (sender, receiver)
    on_bus: list[Frame] = []

    def post(frames: tuple[Frame, ...] | list[Frame], to: int) -> None:
        for frame in frames:
            heapq.heappush(queue, (frame.at, next(order), to, frame.data))
            if to == 1:
                on_bus.append(frame)

    post(sender.send(payload, 0.0), 1)
    received: list[bytes] = []
    errors: list[Error] = []
    while queue:
        at, _, to, data = heapq.heappop(queue)
        for event in ends[to].feed(data, at):
            if isinstance(event, SendFrames):
                post(event.frames, 1 - to)
            elif isinstance(event, MessageReceived):
                received.append(event.payload)
            else:
                errors.append(event)
    return received, errors, on_bus


def pair(
    addressing: str, frame_data: int, padding: int | None, ecu: dict[str, float]
) -> tuple[IsotpEndpoint, IsotpEndpoint]:
    common: dict[str, object] = {
        "frame_data": frame_data,
        "padding": padding,
        "max_message": 0xFFFFFFFF,
    }
    if addressing == "extended":
        server = IsotpEndpoint(
            rx_id=0x6F1,
            tx_id=0x612,
            addressing="extended",
            rx_ext_address=0x12,
            tx_ext_address=0xF1,
            **common,  # type: ignore[arg-type]
            **ecu,  # type: ignore[arg-type]
        )
        tester = IsotpEndpoint(
            rx_id=0x612,
            tx_id=0x6F1,
            addressing="extended",
            rx_ext_address=0xF1,
            tx_ext_address=0x12,
            **common,  # type: ignore[arg-type]
        )
    else:
        server = IsotpEndpoint(rx_id=0x7E0, tx_id=0x7E8, **common, **ecu)  # type: ignore[arg-type]
        tester = IsotpEndpoint(rx_id=0x7E8, tx_id=0x7E0, **common)  # type: ignore[arg-type]
    return server, tester


@settings(max_examples=150, deadline=None)
@given(
    payload=st.binary(min_size=1, max_size=9000),
    addressing=st.sampled_from(["normal", "extended"]),
    frame_data=st.sampled_from([8, 8, 12, 64]),
    padding=st.sampled_from([0xCC, 0xFF, 0x00, None]),
    block_size=st.integers(0, 20),
    stmin_s=st.sampled_from([0.0, 0.0003, 0.001, 0.02]),
    frame_s=st.sampled_from([0.0, 0.000222]),
)
def test_segmenting_and_reassembling_give_back_the_payload_both_ways(
    *,
    payload: bytes,
    addressing: str,
    frame_data: int,
    padding: int | None,
    block_size: int,
    stmin_s: float,
    frame_s: float,
) -> None:
    params = {"block_size": block_size, "stmin_s": stmin_s, "frame_s": frame_s}
    server, tester = pair(addressing, frame_data, padding, params)
    received, errors, frames = transfer(tester, server, payload)  # a request
    assert (received, errors) == ([payload], [])
    received, errors, frames = transfer(server, tester, payload)  # a response
    assert (received, errors) == ([payload], [])
    ats = [frame.at for frame in frames]
    assert ats == sorted(ats)
    assert all(len(frame.data) <= frame_data for frame in frames)


FRAMES = st.one_of(
    st.binary(max_size=70),
    # Mostly well-formed PCI bytes, so the inputs reach every state.
    st.builds(
        lambda first, pci, rest: bytes([first, pci]) + rest,
        st.sampled_from([0x12, 0xDF, 0x13]),
        st.integers(0, 0x3F),
        st.binary(max_size=62),
    ),
    st.builds(lambda pci, rest: bytes([pci]) + rest, st.integers(0, 0x3F), st.binary(max_size=63)),
)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["feed", "feed", "feed", "send", "poll"]),
            FRAMES,
            st.floats(0, 2, allow_nan=False),
        ),
        max_size=40,
    ),
    kind=st.sampled_from(["bmw", "normal", "fd"]),
)
def test_arbitrary_frames_never_raise(steps: list[tuple[str, bytes, float]], kind: str) -> None:
    if kind == "bmw":
        ecu = bmw(block_size=2, max_message=0x2000)
    elif kind == "normal":
        ecu = IsotpEndpoint(rx_id=0x7E0, tx_id=0x7E8, max_message=0x2000)
    else:
        ecu = IsotpEndpoint(rx_id=0x7E0, tx_id=0x7E8, frame_data=64, max_message=0x2000)
    now = 0.0
    for action, data, dt in steps:
        now += dt
        if action == "feed":
            events = ecu.feed(data, now)
        elif action == "poll":
            events = ecu.poll(now)
        else:
            events = [SendFrames(tuple(ecu.send(data or b"\x00", now)))]
        assert all(isinstance(e, MessageReceived | SendFrames | Error) for e in events)


@given(st.binary(max_size=70), st.booleans())
def test_the_frame_parser_raises_only_parse_errors(frame: bytes, extended: bool) -> None:
    with contextlib.suppress(ParseError):
        parse_frame(frame, extended=extended)


# --- interop: can-isotp as the tester on python-can's virtual bus --------------------------


class EndpointHarness:
    """Drives an IsotpEndpoint from a python-can bus in a thread, in real time."""

    def __init__(self, channel: str, endpoint: IsotpEndpoint) -> None:
        self.endpoint = endpoint
        self.bus = can.Bus(interface="virtual", channel=channel)
        self.received: list[bytes] = []
        self.errors: list[Error] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _transmit(self, frames: tuple[Frame, ...] | list[Frame]) -> None:
        for frame in frames:
            delay = frame.at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.bus.send(
                can.Message(
                    arbitration_id=self.endpoint.tx_id, data=frame.data, is_extended_id=False
                )
            )

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, SendFrames):
                self._transmit(event.frames)
            elif isinstance(event, MessageReceived):
                self.received.append(event.payload)
            else:
                self.errors.append(event)

    def _run(self) -> None:
        while not self.stop.is_set():
            message = self.bus.recv(timeout=0.01)
            with self.lock:
                if message is not None and self.endpoint.accepts(
                    message.arbitration_id, bytes(message.data)
                ):
                    self._handle(self.endpoint.feed(bytes(message.data), time.monotonic()))
                deadline = self.endpoint.next_deadline()
                if deadline is not None and time.monotonic() >= deadline:
                    self._handle(self.endpoint.poll(time.monotonic()))

    def send(self, payload: bytes) -> None:
        with self.lock:
            self._transmit(self.endpoint.send(payload, time.monotonic()))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.bus.shutdown()


@pytest.fixture
def harness(request: pytest.FixtureRequest) -> Iterator[tuple[EndpointHarness, isotp.CanStack]]:
    channel = f"sim-isotp:{request.node.nodeid}"
    ecu = EndpointHarness(channel, bmw(block_size=8, max_message=0xFFF))
    tester_bus = can.Bus(interface="virtual", channel=channel)
    address = isotp.Address(
        isotp.AddressingMode.Extended_11bits,
        txid=0x6F1,
        rxid=0x612,
        target_address=ECU,
        source_address=0xF1,
    )
    # The tester asks our ECU for blocks of 8 frames, 1 ms apart; it pads with 0x55.
    params = {"blocksize": 8, "stmin": 1, "tx_padding": 0x55, "max_frame_size": 0xFFFF}
    tester = isotp.CanStack(tester_bus, address=address, params=params)
    tester.start()
    yield ecu, tester
    tester.stop()
    tester_bus.shutdown()
    ecu.close()


@pytest.mark.interop
def test_can_isotp_request_and_response_of_3000_bytes(
    harness: tuple[EndpointHarness, isotp.CanStack],
) -> None:
    ecu, tester = harness
    request = bytes([0x36, 0x01]) + bytes((i * 31) & 0xFF for i in range(2998))
    response = bytes([0x62, 0xF1, 0x01]) + bytes((i * 17 + 3) & 0xFF for i in range(2997))
    tester.send(request)
    deadline = time.monotonic() + 5.0
    while not ecu.received and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ecu.received == [request]
    started = time.monotonic()
    ecu.send(response)
    answer = tester.recv(block=True, timeout=5.0)
    elapsed = time.monotonic() - started
    assert answer is not None
    assert bytes(answer) == response
    assert ecu.errors == []
    # 500 consecutive frames at least 1 ms apart within blocks of 8: our pacing held.
    assert elapsed >= (500 - math.ceil(500 / 8)) * 0.001
