"""DoIP codec: byte vectors from ISO 13400-2's layouts, round trips, and hostile input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecuworks.errors import ConfigError, DoipHeaderError, ParseError
from ecuworks.wire import doip
from ecuworks.wire.doip import HeaderNackCode, PayloadType, RoutingActivationCode

VIN = "WBA8E9C50GK123456"


# -- literal vectors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "frame"),
    [
        (doip.VehicleIdentificationRequest(), "02FD 0001 00000000"),
        (doip.VehicleIdentificationRequest(version=0xFF), "FF00 0001 00000000"),
        (
            doip.VehicleIdentificationRequestVin(vin=VIN),
            "02FD 0003 00000011" + VIN.encode().hex(),
        ),
        (
            doip.RoutingActivationRequest(source_address=0x0EF3),
            "02FD 0005 00000007 0EF3 00 00000000",
        ),
        (
            doip.RoutingActivationRequest(
                source_address=0x0EF3, activation_type=0xE0, oem=b"\x01\x02\x03\x04"
            ),
            "02FD 0005 0000000B 0EF3 E0 00000000 01020304",
        ),
        (
            doip.RoutingActivationResponse(
                tester_address=0x0EF3, entity_address=0x0010, code=RoutingActivationCode.SUCCESS
            ),
            "02FD 0006 00000009 0EF3 0010 10 00000000",
        ),
        (doip.AliveCheckRequest(), "02FD 0007 00000000"),
        (doip.AliveCheckResponse(source_address=0x0EF3), "02FD 0008 00000002 0EF3"),
        (doip.EntityStatusRequest(version=3), "03FC 4001 00000000"),
        (
            doip.EntityStatusResponse(
                node_type=0, max_sockets=4, open_sockets=1, max_data_size=0x00100000
            ),
            "02FD 4002 00000007 00 04 01 00100000",
        ),
        (doip.PowerModeResponse(mode=doip.PowerMode.READY), "02FD 4004 00000001 01"),
        (
            doip.DiagnosticMessage(source=0x0EF3, target=0x0012, data=bytes.fromhex("22F190")),
            "02FD 8001 00000007 0EF3 0012 22F190",
        ),
        (
            doip.DiagnosticMessageAck(source=0x0012, target=0x0EF3, previous=b"\x22"),
            "02FD 8002 00000006 0012 0EF3 00 22",
        ),
        (
            doip.DiagnosticMessageNack(
                source=0x0099, target=0x0EF3, code=doip.DiagnosticNackCode.UNKNOWN_TARGET_ADDRESS
            ),
            "02FD 8003 00000005 0099 0EF3 03",
        ),
        (doip.GenericNack(code=HeaderNackCode.UNKNOWN_PAYLOAD_TYPE), "02FD 0000 00000001 01"),
    ],
)
def test_encodes_and_parses_the_standard_layouts(message: doip.DoipMessage, frame: str) -> None:
    raw = bytes.fromhex(frame.replace(" ", ""))
    assert message.encode() == raw
    assert doip.parse(raw) == message


def test_vehicle_announcement_with_and_without_sync_status() -> None:
    eid, gid = bytes.fromhex("001A37A1B2C3"), bytes.fromhex("001A37000000")
    body = VIN.encode() + b"\x00\x10" + eid + gid + b"\x00"
    plain = doip.parse(bytes.fromhex("02FD000400000020") + body)
    assert plain == doip.VehicleAnnouncement(vin=VIN, logical_address=0x10, eid=eid, gid=gid)
    synced = doip.parse(bytes.fromhex("02FD000400000021") + body + b"\x10")
    assert isinstance(synced, doip.VehicleAnnouncement)
    assert synced.sync_status == 0x10


def test_encode_diagnostic_matches_the_message_encoder() -> None:
    data = bytes(range(256)) * 10
    fast = doip.encode_diagnostic(0x0EF3, 0x0012, data)
    assert fast == doip.DiagnosticMessage(source=0x0EF3, target=0x0012, data=data).encode()


def test_routing_codes_explain_themselves() -> None:
    assert RoutingActivationCode.SUCCESS.activated
    assert not RoutingActivationCode.DENIED_SOURCE_ADDRESS_IN_USE.activated
    assert "another connection" in RoutingActivationCode.DENIED_SOURCE_ADDRESS_IN_USE.description
    assert all(code.description for code in RoutingActivationCode)


# -- header checks (ISO 13400-2 generic header handling) ----------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("02FE 8001 00000005 0EF30012 22", HeaderNackCode.INCORRECT_PATTERN),  # bad inverse
        ("07F8 8001 00000005 0EF30012 22", HeaderNackCode.INCORRECT_PATTERN),  # unknown version
        ("FF00 8001 00000005 0EF30012 22", HeaderNackCode.INCORRECT_PATTERN),  # 0xFF not for 8001
        ("02FD 0005 00000008 0EF300000000 00", HeaderNackCode.INVALID_PAYLOAD_LENGTH),
        ("02FD 0008 00000001 0E", HeaderNackCode.INVALID_PAYLOAD_LENGTH),
        ("02FD 8001 00000004 0EF30012", HeaderNackCode.INVALID_PAYLOAD_LENGTH),  # no UDS byte
    ],
)
def test_bad_headers_carry_the_nack_code_to_answer_with(frame: str, code: int) -> None:
    with pytest.raises(DoipHeaderError) as caught:
        doip.parse(bytes.fromhex(frame.replace(" ", "")))
    assert caught.value.code == code


def test_unknown_payload_type_is_framed_not_fatal() -> None:
    message = doip.parse(bytes.fromhex("02FD 6001 00000002 ABCD".replace(" ", "")))
    assert message == doip.UnknownPayload(payload_type=0x6001, payload=b"\xab\xcd")


def test_truncated_and_overlong_frames_are_parse_errors() -> None:
    frame = doip.AliveCheckResponse(source_address=0x0EF3).encode()
    with pytest.raises(ParseError, match="8-byte header"):
        doip.parse(frame[:5])
    with pytest.raises(ParseError, match="announces 2 payload bytes"):
        doip.parse(frame[:-1])
    with pytest.raises(ParseError, match="announces 2 payload bytes"):
        doip.parse(frame + b"\x00")


def test_non_ascii_vin_is_a_parse_error() -> None:
    frame = bytes.fromhex("02FD000300000011") + b"\xff" * 17
    with pytest.raises(ParseError, match="VIN is not ASCII"):
        doip.parse(frame)


def test_encoding_refuses_values_that_do_not_fit() -> None:
    with pytest.raises(ConfigError, match="2 bytes"):
        doip.DiagnosticMessage(source=0x10000, target=0x12, data=b"\x3e").encode()
    with pytest.raises(ConfigError, match="17 characters"):
        doip.VehicleIdentificationRequestVin(vin="WBA").encode()
    with pytest.raises(ConfigError, match="at least one byte"):
        doip.DiagnosticMessage(source=0x0EF3, target=0x12, data=b"").encode()


# -- the stream decoder --------------------------------------------------------------------


def test_decoder_reassembles_frames_split_anywhere() -> None:
    messages = [
        doip.RoutingActivationResponse(tester_address=0x0EF3, entity_address=0x10, code=0x10),
        doip.DiagnosticMessageAck(source=0x12, target=0x0EF3),
        doip.DiagnosticMessage(source=0x12, target=0x0EF3, data=b"\x76\x01"),
        doip.AliveCheckRequest(),
    ]
    stream = b"".join(m.encode() for m in messages)
    for cut in range(1, len(stream)):
        decoder = doip.DoipDecoder()
        got = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert got == messages
        assert decoder.pending == 0


def test_decoder_refuses_oversized_messages_before_buffering_them() -> None:
    decoder = doip.DoipDecoder(max_payload=1024)
    header = bytes.fromhex("02FD8001") + (4096).to_bytes(4, "big")
    with pytest.raises(DoipHeaderError) as caught:
        decoder.feed(header)
    assert caught.value.code == HeaderNackCode.MESSAGE_TOO_LARGE


def test_decoder_hands_over_good_messages_before_a_bad_header() -> None:
    good = doip.AliveCheckRequest().encode()
    decoder = doip.DoipDecoder()
    assert decoder.feed(good + b"\x02\x02" + bytes(6)) == [doip.AliveCheckRequest()]
    with pytest.raises(DoipHeaderError):
        decoder.feed(b"")


def test_decoder_hands_over_good_messages_before_a_payload_that_does_not_decode() -> None:
    # Found by `make fuzz`: a VIN that is not ASCII behind a good message in one chunk
    # raised at once, and the good message was lost with it.
    good = doip.GenericNack(code=1).encode()
    bad_vin = bytes.fromhex("02 FD 0003 00000011") + b"WBA8E\xffC50GK123456"
    decoder = doip.DoipDecoder()
    assert decoder.feed(good + bad_vin) == [doip.GenericNack(code=1)]
    with pytest.raises(ParseError, match="VIN is not ASCII"):
        decoder.feed(b"")


# -- properties ------------------------------------------------------------------------------

versions = st.sampled_from([0x01, 0x02, 0x03])
u16 = st.integers(0, 0xFFFF)
u8 = st.integers(0, 0xFF)
vins = st.text(alphabet="ABCDEFGHJKLMNPRSTUVWXYZ0123456789", min_size=17, max_size=17)
six = st.binary(min_size=6, max_size=6)
four = st.binary(min_size=4, max_size=4)

messages = st.one_of(
    st.builds(doip.GenericNack, code=u8, version=versions),
    st.builds(doip.VehicleIdentificationRequest, version=versions),
    st.builds(doip.VehicleIdentificationRequestEid, eid=six, version=versions),
    st.builds(doip.VehicleIdentificationRequestVin, vin=vins, version=versions),
    st.builds(
        doip.VehicleAnnouncement,
        vin=vins,
        logical_address=u16,
        eid=six,
        gid=six,
        further_action=u8,
        sync_status=st.none() | u8,
        version=versions,
    ),
    st.builds(
        doip.RoutingActivationRequest,
        source_address=u16,
        activation_type=u8,
        oem=st.none() | four,
        version=versions,
    ),
    st.builds(
        doip.RoutingActivationResponse,
        tester_address=u16,
        entity_address=u16,
        code=u8,
        oem=st.none() | four,
        version=versions,
    ),
    st.builds(doip.AliveCheckRequest, version=versions),
    st.builds(doip.AliveCheckResponse, source_address=u16, version=versions),
    st.builds(doip.EntityStatusRequest, version=versions),
    st.builds(
        doip.EntityStatusResponse,
        node_type=u8,
        max_sockets=u8,
        open_sockets=u8,
        max_data_size=st.none() | st.integers(0, 0xFFFFFFFF),
        version=versions,
    ),
    st.builds(doip.PowerModeRequest, version=versions),
    st.builds(doip.PowerModeResponse, mode=u8, version=versions),
    st.builds(
        doip.DiagnosticMessage,
        source=u16,
        target=u16,
        data=st.binary(min_size=1, max_size=300),
        version=versions,
    ),
    st.builds(
        doip.DiagnosticMessageAck,
        source=u16,
        target=u16,
        code=u8,
        previous=st.binary(max_size=8),
        version=versions,
    ),
    st.builds(
        doip.DiagnosticMessageNack,
        source=u16,
        target=u16,
        code=u8,
        previous=st.binary(max_size=8),
        version=versions,
    ),
)


@given(messages)
def test_every_message_round_trips(message: doip.DoipMessage) -> None:
    assert doip.parse(message.encode()) == message


@given(st.lists(messages, max_size=8), st.lists(st.integers(1, 64), max_size=20))
def test_decoder_round_trips_any_chunking(batch: list[doip.DoipMessage], cuts: list[int]) -> None:
    stream = b"".join(m.encode() for m in batch)
    decoder, got, position = doip.DoipDecoder(), [], 0
    for size in cuts:
        got += decoder.feed(stream[position : position + size])
        position += size
    got += decoder.feed(stream[position:])
    assert got == batch


@settings(max_examples=2000)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_parse_errors(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        doip.parse(data)
    with contextlib.suppress(ParseError):
        doip.DoipDecoder().feed(data)


def test_payload_type_table_is_complete() -> None:
    # every payload type the tester meets has a decoder and a length rule
    for payload_type in PayloadType:
        frame = doip.HEADER.pack(2, 0xFD, payload_type, 0)
        minimum = doip._LENGTHS[payload_type][0]
        if minimum:
            with pytest.raises(DoipHeaderError) as caught:
                doip.parse(frame)
            assert caught.value.code == HeaderNackCode.INVALID_PAYLOAD_LENGTH
        else:
            assert not isinstance(doip.parse(frame), doip.UnknownPayload)
