"""HSFZ codec: literal frames, round trips, the stream decoder, and fuzzing."""

from __future__ import annotations

import contextlib
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecuworks.errors import ConfigError, ParseError
from ecuworks.wire.hsfz import (
    ERROR_WORDS,
    HEADER,
    MAX_FRAME_DATA,
    Acknowledge,
    AliveCheck,
    AliveCheckReply,
    ControlWord,
    DiagnosticMessage,
    ErrorFrame,
    HsfzDecoder,
    HsfzMessage,
    IdentificationReply,
    IdentificationRequest,
    IgnitionStatus,
    diagnostic_header,
    encode_diagnostic,
    parse,
    parse_identification,
)

IDENT_TEXT = "DIAGADR10BMWMAC001A37A1B2C3BMWVINWBA12345678901234"
VIN = b"WBA12345678901234"


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# --- literal frames ---------------------------------------------------------------------

FRAMES: list[tuple[str, HsfzMessage]] = [
    # tester 0xF4 reads the VIN from the gateway 0x10
    (
        "00000005 0001 F4 10 22F190",
        DiagnosticMessage(source=0xF4, target=0x10, payload=h("22F190")),
    ),
    (
        "00000016 0001 10 F4 62F190" + VIN.hex(),
        DiagnosticMessage(source=0x10, target=0xF4, payload=h("62F190") + VIN),
    ),
    # the gateway echoes source and target as sent, not swapped, and the request's start
    ("00000005 0002 F4 10 22F190", Acknowledge(source=0xF4, target=0x10, echo=h("22F190"))),
    ("00000007 0002 F4 12 3601AABBCC", Acknowledge(source=0xF4, target=0x12, echo=h("3601AABBCC"))),
    ("00000002 0002 F4 DF", Acknowledge(source=0xF4, target=0xDF, echo=b"")),
    ("00000000 0011", IdentificationRequest()),
    (
        "00000032 0011" + IDENT_TEXT.encode().hex(),
        IdentificationReply(
            diag_address=0x10, mac="001A37A1B2C3", vin=VIN.decode(), text=IDENT_TEXT
        ),
    ),
    ("00000000 0012", AliveCheck()),
    ("00000002 0012 10 F4", AliveCheck(source=0x10, target=0xF4)),
    ("00000002 0013 00F4", AliveCheckReply(tester=0xF4)),
    ("00000000 0013", AliveCheckReply(tester=None)),
    (
        "00000002 0040 F4 F5",
        ErrorFrame(control=ControlWord.INCORRECT_TESTER_ADDRESS, data=h("F4F5")),
    ),
    ("00000000 00FF", ErrorFrame(control=ControlWord.NEGATIVE_ACKNOWLEDGE)),
    ("00000001 0010 05", IgnitionStatus(data=b"\x05")),
]


@pytest.mark.parametrize(("frame", "message"), FRAMES)
def test_literal_frame_encodes_and_parses(frame: str, message: HsfzMessage) -> None:
    assert message.encode() == h(frame)
    assert parse(h(frame)) == message


def test_fast_diagnostic_helpers_match_the_message() -> None:
    payload = h("3601") + bytes(range(256)) * 4
    frame = DiagnosticMessage(source=0xF4, target=0x12, payload=payload).encode()
    assert encode_diagnostic(0xF4, 0x12, payload) == frame
    assert diagnostic_header(0xF4, 0x12, len(payload)) + payload == frame
    assert frame[:8] == h("00000404 0001 F4 12")


def test_alive_check_reply_defaults_to_the_tester_address() -> None:
    assert AliveCheckReply().encode() == h("00000002 0013 00F4")


def test_incorrect_tester_address_names_both_addresses() -> None:
    nack = parse(h("00000002 0040 F4 F5"))
    assert isinstance(nack, ErrorFrame)
    assert (nack.expected, nack.received) == (0xF4, 0xF5)
    other = ErrorFrame(control=ControlWord.INCORRECT_FORMAT, data=h("F4F5"))
    assert (other.expected, other.received) == (None, None)


@pytest.mark.parametrize("word", sorted(ERROR_WORDS))
def test_every_error_word_parses_to_an_error_frame(word: ControlWord) -> None:
    frame = HEADER.pack(1, word) + b"\x07"
    assert parse(frame) == ErrorFrame(control=word, data=b"\x07")


# --- identification text ------------------------------------------------------------------


def test_identification_text_fields() -> None:
    reply = parse_identification(IDENT_TEXT)
    assert (reply.diag_address, reply.mac, reply.vin) == (0x10, "001A37A1B2C3", VIN.decode())


@pytest.mark.parametrize(
    ("address", "value"), [("10", 0x10), ("40", 0x40), ("DF", 0xDF), ("df", 0xDF), ("1", 0x01)]
)
def test_identification_address_is_hexadecimal(address: str, value: int) -> None:
    text = f"DIAGADR{address}BMWMAC001A37A1B2C3BMWVIN{VIN.decode()}"
    assert parse_identification(text).diag_address == value


def test_identification_keeps_appended_text() -> None:
    reply = parse_identification(IDENT_TEXT + "\x00\x00")
    assert reply.vin == VIN.decode()
    assert reply.encode()[6:] == (IDENT_TEXT + "\x00\x00").encode()


def test_build_formats_like_a_gateway() -> None:
    reply = IdentificationReply.build(mac="001a37a1b2c3", vin=VIN.decode())
    assert reply.text == IDENT_TEXT
    ten = IdentificationReply.build(diag_address=0x0A, mac="0" * 12, vin=VIN.decode())
    assert ten.text.startswith("DIAGADR0ABMWMAC")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "DIAGADR10BMWMAC001A37A1B2C3",  # no VIN
        "DIAGADR10BMWMAC001A37A1B2BMWVINWBA12345678901234",  # MAC too short
        "DIAGADR10BMWMAC001A37A1B2GGBMWVINWBA12345678901234",  # MAC not hex
        "DIAGADR10BMWMAC001A37A1B2C3BMWVINwba12345678901234",  # VIN not upper case
        "DIAGADR10BMWMAC001A37A1B2C3BMWVINWBA1234567890123",  # VIN too short
        "DIAGADR100BMWMAC001A37A1B2C3BMWVINWBA12345678901234",  # address over one byte
        "xDIAGADR10BMWMAC001A37A1B2C3BMWVINWBA12345678901234",
        IDENT_TEXT + "é",
    ],
)
def test_bad_identification_text_is_refused(text: str) -> None:
    with pytest.raises(ParseError):
        parse_identification(text)


def test_non_ascii_identification_frame_is_refused() -> None:
    data = IDENT_TEXT.encode() + b"\xff"
    with pytest.raises(ParseError, match="ASCII"):
        parse(HEADER.pack(len(data), 0x0011) + data)


# --- parse refuses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("", "header"),
        ("0000000500", "header"),
        ("00000005 0001 F410 22F1", "announces 5"),  # truncated
        ("00000005 0001 F410 22F190 00", "announces 5"),  # trailing byte
        ("00000000 0003", "unknown"),
        ("00000000 0100", "unknown"),
        ("00000001 0001 F4", "source and target"),
        ("00000000 0002", "source and target"),
        ("00000001 0012 10", "0 or 2"),
        ("00000003 0012 10F400", "0 or 2"),
        ("00000001 0013 F4", "0 or 2"),
        ("FFFFFFFF 0001 F410", "announces 4294967295"),
    ],
)
def test_parse_refuses_malformed_frames(frame: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse(h(frame))


# --- encoding refuses (programming errors, not parse errors) ----------------------------


@pytest.mark.parametrize(
    "message",
    [
        DiagnosticMessage(source=0x100, target=0x10, payload=b"\x3e"),
        DiagnosticMessage(source=0xF4, target=-1, payload=b"\x3e"),
        Acknowledge(source=0xF4, target=256, echo=b""),
        AliveCheck(source=0x10, target=None),
        AliveCheck(source=0x10, target=0x1F4),
        AliveCheckReply(tester=0x10000),
        ErrorFrame(control=ControlWord.DIAGNOSTIC, data=b""),
        IdentificationReply(
            diag_address=0x12, mac="001A37A1B2C3", vin=VIN.decode(), text=IDENT_TEXT
        ),
        IdentificationReply(diag_address=0x10, mac="", vin="", text="hello"),
    ],
)
def test_encoding_an_impossible_message_is_a_config_error(message: HsfzMessage) -> None:
    with pytest.raises(ConfigError) as info:
        message.encode()
    assert not isinstance(info.value, ParseError)


def test_fast_helpers_refuse_out_of_range_addresses() -> None:
    with pytest.raises(ConfigError):
        encode_diagnostic(0xF4, 0x100, b"\x3e")
    with pytest.raises(ConfigError):
        diagnostic_header(-1, 0x10, 1)


@pytest.mark.parametrize(
    ("mac", "vin"), [("001A37", VIN.decode()), ("0" * 12, "SHORT"), ("0" * 12, VIN.decode() + "X")]
)
def test_build_refuses_what_would_not_parse_back(mac: str, vin: str) -> None:
    with pytest.raises(ConfigError):
        IdentificationReply.build(mac=mac, vin=vin)


# --- round trips --------------------------------------------------------------------------

addresses = st.integers(0, 0xFF)
messages: st.SearchStrategy[HsfzMessage] = st.one_of(
    st.builds(
        DiagnosticMessage, source=addresses, target=addresses, payload=st.binary(max_size=300)
    ),
    st.builds(Acknowledge, source=addresses, target=addresses, echo=st.binary(max_size=5)),
    st.builds(ErrorFrame, control=st.sampled_from(sorted(ERROR_WORDS)), data=st.binary(max_size=8)),
    st.just(IdentificationRequest()),
    st.builds(
        IdentificationReply.build,
        diag_address=addresses,
        mac=st.from_regex(r"[0-9A-Fa-f]{12}", fullmatch=True),
        vin=st.from_regex(r"[0-9A-Z]{17}", fullmatch=True),
    ),
    st.just(AliveCheck()),
    st.builds(AliveCheck, source=addresses, target=addresses),
    st.builds(AliveCheckReply, tester=st.none() | st.integers(0, 0xFFFF)),
    st.builds(IgnitionStatus, data=st.binary(max_size=4)),
)


@given(messages)
def test_every_message_round_trips(message: HsfzMessage) -> None:
    frame = message.encode()
    assert HEADER.unpack_from(frame)[0] == len(frame) - 6
    assert parse(frame) == message
    assert parse(bytearray(frame)) == message
    assert parse(memoryview(frame)) == message


# --- stream decoder -----------------------------------------------------------------------


@given(st.lists(messages, max_size=8))
def test_decoder_fed_byte_by_byte_returns_every_message(batch: list[HsfzMessage]) -> None:
    stream = b"".join(m.encode() for m in batch)
    decoder = HsfzDecoder()
    out: list[HsfzMessage] = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
    assert out == batch
    assert decoder.pending == 0


@given(st.lists(messages, max_size=8), st.data())
def test_decoder_returns_the_same_messages_for_any_chunking(
    batch: list[HsfzMessage], data: st.DataObject
) -> None:
    stream = b"".join(m.encode() for m in batch)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=12))))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    decoder = HsfzDecoder()
    out: list[HsfzMessage] = []
    for chunk in chunks:
        out += decoder.feed(data.draw(st.sampled_from([bytes, bytearray, memoryview]))(chunk))
    assert out == batch
    assert decoder.pending == 0


def test_decoder_keeps_a_partial_frame_until_it_completes() -> None:
    big = DiagnosticMessage(source=0xF4, target=0x12, payload=b"\x36\x01" + bytes(65536))
    small = DiagnosticMessage(source=0xF4, target=0x12, payload=b"\x3e\x80")
    stream = small.encode() + big.encode() + small.encode() + small.encode()
    decoder = HsfzDecoder()
    assert decoder.feed(stream[:20]) == [small]
    assert decoder.pending == 20 - 10
    assert decoder.feed(stream[20:40000]) == []
    assert decoder.pending == 40000 - 10
    # the rest of the big frame and two whole frames behind it, in one chunk
    assert decoder.feed(stream[40000:]) == [big, small, small]
    assert decoder.pending == 0


def test_decoder_does_not_hold_on_to_the_callers_buffer() -> None:
    chunk = bytearray(encode_diagnostic(0x12, 0xF4, b"\x7e\x00") + b"\x00\x00")
    [message] = HsfzDecoder().feed(chunk)
    chunk.extend(b"more")  # would raise BufferError if a view were still exported
    chunk[8] = 0
    assert message == DiagnosticMessage(source=0x12, target=0xF4, payload=b"\x7e\x00")


def _feed_all(decoder: HsfzDecoder, *chunks: bytes) -> list[HsfzMessage]:
    out: list[HsfzMessage] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out


@pytest.mark.parametrize("length", [0xFFFFFFFF, MAX_FRAME_DATA + 1])
@pytest.mark.parametrize("split", [6, 3])
def test_absurd_length_is_refused_without_allocating(length: int, split: int) -> None:
    header = HEADER.pack(length, 0x0001)
    decoder = HsfzDecoder()
    tracemalloc.start()
    try:
        with pytest.raises(ParseError, match="limit"):
            _feed_all(decoder, header[:split], header[split:] + b"\xf4\x10" * 1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024
    assert decoder.pending < 1024


def test_frame_at_the_limit_passes_and_one_byte_more_does_not() -> None:
    decoder = HsfzDecoder(max_frame_data=10)
    at_limit = DiagnosticMessage(source=0xF4, target=0x10, payload=bytes(8))
    assert decoder.feed(at_limit.encode()) == [at_limit]
    with pytest.raises(ParseError, match="10-byte limit"):
        decoder.feed(encode_diagnostic(0xF4, 0x10, bytes(9)))
    assert MAX_FRAME_DATA >= 16 * 1024 * 1024


def test_decoder_returns_messages_before_a_bad_frame_then_stays_broken() -> None:
    good = DiagnosticMessage(source=0x10, target=0xF4, payload=b"\x50\x03")
    decoder = HsfzDecoder()
    assert decoder.feed(good.encode() + h("00000000 0003") + good.encode()) == [good]
    with pytest.raises(ParseError, match="earlier error"):
        decoder.feed(good.encode())
    with pytest.raises(ParseError, match="earlier error"):
        decoder.feed(b"")


def test_decoder_raises_parse_error_when_a_pending_frame_completes_badly() -> None:
    # Found by `make fuzz`: the error kept the frame's memoryview alive through its
    # traceback, and clearing the buffer then raised BufferError instead of ParseError.
    text = b"DIAGADR10BMWMAC001A37A1B2C3BMWVIN\xffBA12345678901234"
    frame = HEADER.pack(len(text), ControlWord.VEHICLE_IDENTIFICATION) + text
    decoder = HsfzDecoder()
    assert decoder.feed(frame[:10]) == []
    with pytest.raises(ParseError, match="not ASCII"):
        decoder.feed(frame[10:])


def test_decoder_raises_at_once_when_the_first_frame_is_bad() -> None:
    with pytest.raises(ParseError, match="unknown HSFZ control word 0x0003"):
        HsfzDecoder().feed(h("00000000 0003"))


# --- fuzzing: only ParseError ever escapes ------------------------------------------------


@settings(max_examples=2000)
@given(st.binary())
def test_parse_raises_only_parse_error(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse(data)


@settings(max_examples=2000)
@given(st.binary())
def test_decoder_raises_only_parse_error(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        _feed_all(HsfzDecoder(max_frame_data=4096), data[: len(data) // 2], data[len(data) // 2 :])


@settings(max_examples=2000)
@given(st.sampled_from([int(w) for w in ControlWord] + [0x0003, 0xFFFF]), st.binary(max_size=64))
def test_well_framed_garbage_raises_only_parse_error(control: int, data: bytes) -> None:
    frame = HEADER.pack(len(data), control) + data
    try:
        message = parse(frame)
    except ParseError:
        with pytest.raises(ParseError):
            HsfzDecoder().feed(frame)
    else:
        assert message.encode() == frame
        assert HsfzDecoder().feed(frame) == [message]
