"""The fuzz targets over byte codecs (``ecuworks.wire``), and the :class:`Target` every one is.

Each target's hypothesis strategy draws one *example*: a batch of up to :data:`BATCH`
inputs, because drawing an example costs hypothesis about as much as decoding a dozen
inputs, and a batch spends that cost once. Inputs are built the way a decoder is reached:
valid headers with arbitrary payloads and lengths at the edges of what each type allows,
mutations of valid frames (``tests/wire/test_decoders_survive.py``'s mutator, seeded by
hypothesis), and a share of plain random bytes. Every input is one call of the decoder
under test, counted in :func:`Target.run`'s return value.

Properties, for every input:

- decoding raises nothing but :class:`~ecuworks.errors.ParseError`;
- whatever decodes re-encodes, and the encoding decodes to the same value (byte for byte
  where the codec keeps every byte: FSC records, SVKs, negative responses, memory
  locations);
- stream framers (``DoipDecoder``, ``HsfzDecoder``, ``ImageVerifier``) give the same
  messages whether the bytes come at once or cut at arbitrary points.
"""

from __future__ import annotations

import itertools
import random
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from hypothesis import strategies as st
from tests.wire.test_decoders_survive import (
    BINARY_SEEDS,
    DOIP_SEEDS,
    HSFZ_SEEDS,
    TEXT_SEEDS,
    TRIPLE,
    UDS_SEEDS,
    mutate,
)

from ecuworks.errors import ParseError
from ecuworks.wire import doip, fsc, hsfz, uds
from ecuworks.wire.ilevel import ILevel, ILevelTriple
from ecuworks.wire.sgbm import SgbmId, encode_svk, parse_svk
from ecuworks.wire.unit_image import ImageVerifier, UnitHeader, build_image
from ecuworks.wire.vo import VehicleOrder

__all__ = [
    "BATCH",
    "IN_PROCESS_SHARE",
    "SOCKET_SHARE",
    "Target",
    "batch_of",
    "in_process",
    "mutations",
    "wire_targets",
]

BATCH: Final = 16
# Each of the 7 socket targets takes 2 % of the inputs (20,000 of a million); the 11
# in-process targets share the rest equally.
SOCKET_SHARE: Final = 0.02
IN_PROCESS_SHARE: Final = (1 - 7 * SOCKET_SHARE) / 11
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One fuzz target.

    Attributes:
        name: short name, used on the command line (``--only``) and in the table.
        what: one line saying what it feeds and what it asserts.
        strategy: draws one example (a batch of inputs, or one socket input).
        run: runs one example, asserting the target's properties; returns how many
            inputs it executed.
        share: the target's share of the total inputs (the shares of all targets add up
            to 1; socket targets take less, being slower).
        quick: inputs in a ``--quick`` run.
        rate: inputs per second measured on the 2-core development machine, for the
            estimate printed before a run.
    """

    name: str
    what: str
    strategy: st.SearchStrategy[Any]
    run: Callable[[Any], int]
    share: float
    quick: int
    rate: float


def batch_of(inputs: st.SearchStrategy[_T]) -> st.SearchStrategy[list[_T]]:
    """Up to :data:`BATCH` inputs per hypothesis example."""
    return st.lists(inputs, min_size=1, max_size=BATCH)


def mutations(seeds: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """A valid frame as it is, or with 1-4 mutations (bit flips, cuts, insertions, spliced
    lengths); the mutator is seeded by hypothesis, so the input replays."""
    return st.sampled_from(list(seeds)) | st.builds(
        lambda seed, key: mutate(random.Random(key), seed),
        st.sampled_from(list(seeds)),
        st.integers(0, 2**32 - 1),
    )


def _cuts(data: bytes, points: Iterable[int]) -> list[bytes]:
    """``data`` cut at ``points`` (taken modulo its length), in order."""
    where = sorted({p % (len(data) + 1) for p in points})
    edges = [0, *where, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def _decodes_only_or_parse_error(decode: Callable[[_T], Any], data: _T) -> Any:
    """``decode(data)``, or None for a ParseError; anything else propagates (a finding)."""
    try:
        return decode(data)
    except ParseError:
        return None


# --- DoIP ----------------------------------------------------------------------------------

# Payload lengths each type allows (ISO 13400-2:2019, table 17 and the clauses of each
# message), written out here rather than read from the codec, so the fuzzer is a second
# opinion; lengths one either side are drawn as well.
_DOIP_LENGTHS: Final = {
    0x0000: (1,),
    0x0001: (0,),
    0x0002: (6,),
    0x0003: (17,),
    0x0004: (32, 33),
    0x0005: (7, 11),
    0x0006: (9, 13),
    0x0007: (0,),
    0x0008: (2,),
    0x4001: (0,),
    0x4002: (3, 7),
    0x4003: (0,),
    0x4004: (1,),
    0x8001: (5, 6, 40),
    0x8002: (5, 6, 10),
    0x8003: (5, 6, 10),
    0xBEEF: (0, 3),
}
_DOIP_LENGTH_CHOICES: Final = [
    (payload_type, max(0, length + delta))
    for payload_type, lengths in _DOIP_LENGTHS.items()
    for length in lengths
    for delta in (-1, 0, 0, 0, 1)
]


@st.composite
def _doip_frame(draw: st.DrawFn) -> bytes:
    """A DoIP frame whose header is valid or nearly so, with an arbitrary payload."""
    payload_type, length = draw(st.sampled_from(_DOIP_LENGTH_CHOICES))
    version = draw(st.sampled_from([0x01, 0x02, 0x02, 0x03, 0x04, 0xFF, 0x00]))
    inverse = version ^ 0xFF if draw(st.integers(0, 9)) else draw(st.integers(0, 255))
    payload = draw(st.binary(min_size=length, max_size=length))
    if payload_type == 0x0003 and draw(st.booleans()):
        payload = b"WBA8E9C50GK123456"  # a VIN that is ASCII, to reach the success path
    announced = len(payload) if draw(st.integers(0, 9)) else draw(st.integers(0, 2**32 - 1))
    return struct.pack(">BBHI", version, inverse, payload_type, announced) + payload


_DOIP_INPUT: Final = st.one_of(_doip_frame(), mutations(DOIP_SEEDS), st.binary(max_size=48))


def _stream(new: Callable[[], Any], chunks: Iterable[bytes]) -> tuple[list[Any], bool, int | None]:
    """Feed ``chunks`` to a fresh framer: (messages, whether it broke, bytes pending)."""
    decoder = new()
    messages: list[Any] = []
    for chunk in [*chunks, b""]:  # the empty feed reports an error left pending
        try:
            messages.extend(decoder.feed(chunk))
        except ParseError:
            return messages, True, None
    return messages, False, decoder.pending


def _same_when_cut(new: Callable[[], Any], data: bytes, points: list[int]) -> list[Any]:
    """Decode ``data`` whole and cut at ``points``; both must agree. The messages."""
    whole = _stream(new, [data])
    cut = _stream(new, _cuts(data, points))
    assert cut == whole, f"cut at {points}: {cut!r}; whole: {whole!r}"
    return whole[0]


_STREAM_INPUT: Final = st.tuples(
    st.lists(st.one_of(_doip_frame(), mutations(DOIP_SEEDS)), min_size=1, max_size=4).map(b"".join),
    st.lists(st.integers(0, 400), max_size=6),
)


def _round_trip(parse: Callable[[bytes], Any], message: Any) -> None:
    """A decoded message re-encodes to a frame that decodes to the same message."""
    again = parse(message.encode())
    assert again == message, f"{message!r} re-encoded decodes as {again!r}"


def _parses(parse: Callable[[bytes], Any]) -> Callable[[list[bytes]], int]:
    """The run of a frame decoder: ParseError only, and decoded frames round-trip."""

    def run(batch: list[bytes]) -> int:
        for data in batch:
            message = _decodes_only_or_parse_error(parse, data)
            if message is not None:
                _round_trip(parse, message)
        return len(batch)

    return run


def _frames(
    new: Callable[[], Any], parse: Callable[[bytes], Any]
) -> Callable[[list[tuple[bytes, list[int]]]], int]:
    """The run of a stream framer: the same messages whole or cut; each round-trips."""

    def run(batch: list[tuple[bytes, list[int]]]) -> int:
        for data, points in batch:
            for message in _same_when_cut(new, data, points):
                _round_trip(parse, message)
        return len(batch)

    return run


# --- HSFZ ----------------------------------------------------------------------------------

_HSFZ_CONTROLS: Final = [0x0001, 0x0002, 0x0010, 0x0011, 0x0012, 0x0013, *hsfz.ERROR_WORDS, 0x7]
_IDENTIFICATION_TEXT: Final = st.sampled_from(
    [
        b"DIAGADR10BMWMAC001A37A1B2C3BMWVINWBA8E9C50GK123456",
        b"DIAGADR1BMWMAC001a37a1b2c3BMWVINWBA8E9C50GK123456EXTRA",
        b"DIAGADR10BMWMAC001A37A1B2C3BMWVINwba8e9c50gk123456",
    ]
)


@st.composite
def _hsfz_frame(draw: st.DrawFn) -> bytes:
    """An HSFZ frame with a known control word and data of an edge length or an ID text."""
    control = draw(st.sampled_from(_HSFZ_CONTROLS))
    if control == 0x0011 and draw(st.booleans()):
        data = draw(_IDENTIFICATION_TEXT)
    else:
        data = draw(st.binary(max_size=draw(st.sampled_from([0, 1, 2, 3, 8, 40]))))
    announced = len(data) if draw(st.integers(0, 9)) else draw(st.integers(0, 2**32 - 1))
    return struct.pack(">IH", announced, control) + data


_HSFZ_INPUT: Final = st.one_of(_hsfz_frame(), mutations(HSFZ_SEEDS), st.binary(max_size=48))


_HSFZ_STREAM_INPUT: Final = st.tuples(
    st.lists(st.one_of(_hsfz_frame(), mutations(HSFZ_SEEDS)), min_size=1, max_size=4).map(b"".join),
    st.lists(st.integers(0, 400), max_size=6),
)


# --- UDS -----------------------------------------------------------------------------------

_SIDS: Final = sorted({*uds.ServiceId, 0x7F, 0x74, 0x62, 0x71, 0x50, 0x00, 0xFF})


@st.composite
def _uds_message(draw: st.DrawFn) -> bytes:
    """A service id (request, response or 0x7F), then an ALFID-like byte and parameters."""
    sid = draw(st.sampled_from(_SIDS))
    second = draw(st.one_of(st.integers(0, 255), st.sampled_from([0x11, 0x44, 0x24, 0x10, 0x78])))
    return bytes([sid, second]) + draw(st.binary(max_size=20))


_UDS_INPUT: Final = st.one_of(_uds_message(), mutations(UDS_SEEDS), st.binary(max_size=24))


def _run_uds(batch: list[bytes]) -> int:
    for data in batch:
        negative = _decodes_only_or_parse_error(uds.NegativeResponseMessage.parse, data)
        if negative is not None:
            assert negative.encode() == data
            assert negative.name  # a readable name for every NRC byte
        location = _decodes_only_or_parse_error(uds.decode_memory_location, data[1:])
        if location is not None:
            address, size, used = location
            alfid = data[1]
            again = uds.encode_memory_location(
                address, size, address_bytes=alfid & 0x0F, size_bytes=alfid >> 4
            )
            assert again == data[1 : 1 + used], (location, again.hex())
        block = _decodes_only_or_parse_error(uds.decode_max_block_length, data)
        assert block is None or block >= 3
        volts = _decodes_only_or_parse_error(uds.decode_battery_volts, data[:2])
        assert volts is None or 0 <= volts <= 65.535
        uds.is_response_pending(data)
        uds.is_negative(data)
    return len(batch)


# --- identifiers: SGBM-ID, SVK, I-level, vehicle order, HSFZ identification ----------------

_SVK_INPUT: Final = st.one_of(
    mutations(BINARY_SEEDS),
    st.lists(
        st.tuples(st.integers(0, 16), st.binary(min_size=7, max_size=7)).map(
            lambda entry: bytes([entry[0]]) + entry[1]
        ),
        max_size=3,
    ).map(lambda entries: bytes([len(entries)]) + b"".join(entries)),
    mutations([TRIPLE.encode()]),
    mutations([TEXT_SEEDS[2].encode()]),
    st.binary(max_size=48),
)


def _run_binary_ids(batch: list[bytes]) -> int:
    for data in batch:
        sgbm = _decodes_only_or_parse_error(SgbmId.decode, data)
        if sgbm is not None:
            assert sgbm.encode() == data
        units = _decodes_only_or_parse_error(parse_svk, data)
        if units is not None:
            assert encode_svk(units) == data
        triple = _decodes_only_or_parse_error(ILevelTriple.decode, data)
        if triple is not None:
            assert ILevelTriple.decode(triple.encode()) == triple
        order = _decodes_only_or_parse_error(VehicleOrder.decode, data)
        if order is not None:
            assert VehicleOrder.decode(order.encode()) == order
    return len(batch)


_TEXT_INPUT: Final = st.one_of(
    mutations([text.encode() for text in TEXT_SEEDS]).map(lambda b: b.decode("latin-1")),
    st.text(alphabet="ABCDEFSWLT0123456789-.$#*%&+ \u00e9\u0660\uff21\x00", max_size=60),
    st.text(max_size=40),
)


def _text_round_trips(text: str) -> None:
    sgbm = _decodes_only_or_parse_error(SgbmId.parse, text)
    if sgbm is not None:
        assert SgbmId.parse(str(sgbm)) == sgbm
    level = _decodes_only_or_parse_error(ILevel.parse, text)
    if level is not None:
        assert ILevel.parse(str(level)) == level
    order = _decodes_only_or_parse_error(VehicleOrder.parse, text)
    if order is not None:
        assert VehicleOrder.parse(str(order)) == order
    reply = _decodes_only_or_parse_error(hsfz.parse_identification, text)
    if reply is not None:
        _round_trip(hsfz.parse, reply)


def _run_text_ids(batch: list[str]) -> int:
    for text in batch:
        _text_round_trips(text)
    return len(batch)


# --- unit images and enabling codes ---------------------------------------------------------

_IMAGE: Final = build_image(SgbmId.parse(TEXT_SEEDS[0]), b"payload of a unit")
_FSC: Final = fsc.Fsc(
    vin="WBA8E9C50GK123456",
    app_id=0x1234,
    upgrade_index=2,
    issued=1_700_000_000,
    signature=bytes(64),
).encode()
_STATUS: Final = fsc.encode_status(
    [fsc.FscStatusEntry(app_id=1, upgrade_index=2, status=fsc.FscStatus.REJECTED)]
)
_RECORD_INPUT: Final = st.tuples(
    st.one_of(
        mutations([_IMAGE, _IMAGE[:64], _FSC, _FSC * 2, _STATUS, b""]),
        st.binary(max_size=100),
    ),
    st.lists(st.integers(0, 200), max_size=4),
)


def _run_records(batch: list[tuple[bytes, list[int]]]) -> int:
    for data, points in batch:
        header = _decodes_only_or_parse_error(UnitHeader.parse, data)
        if header is not None:
            assert UnitHeader.parse(header.encode()) == header
        verifiers = []
        for chunks in ([data], _cuts(data, points)):
            verifier = ImageVerifier()
            for chunk in chunks:
                verifier.feed(chunk)
            verifiers.append(
                (verifier.header, verifier.payload_received, verifier.complete, verifier.valid)
            )
        assert verifiers[0] == verifiers[1], verifiers
        code = _decodes_only_or_parse_error(fsc.Fsc.decode, data)
        if code is not None:
            assert code.encode() == data
        records = _decodes_only_or_parse_error(fsc.decode_records, data)
        if records is not None:
            assert b"".join(r.encode() for r in records) == data
        status = _decodes_only_or_parse_error(fsc.decode_status, data)
        if status is not None:
            assert fsc.encode_status(status) == data
    return len(batch)


def in_process(
    name: str, what: str, strategy: st.SearchStrategy[Any], run: Callable[[Any], int], rate: float
) -> Target:
    """A target that runs in this process, with its equal share and quick count."""
    return Target(
        name=name,
        what=what,
        strategy=strategy,
        run=run,
        share=IN_PROCESS_SHARE,
        quick=400,
        rate=rate,
    )


def wire_targets() -> list[Target]:
    """The codec targets, in the order they run (name, what, strategy, run, inputs/s)."""
    table: list[tuple[str, str, st.SearchStrategy[Any], Callable[[Any], int], float]] = [
        (
            "doip.parse",
            "DoIP frames: ParseError only; decoded frames re-encode to the same value",
            batch_of(_DOIP_INPUT),
            _parses(doip.parse),
            1700,
        ),
        (
            "doip.DoipDecoder",
            "DoIP streams: the same messages whole or cut anywhere; round trip",
            batch_of(_STREAM_INPUT),
            _frames(doip.DoipDecoder, doip.parse),
            550,
        ),
        (
            "hsfz.parse",
            "HSFZ frames: ParseError only; decoded frames re-encode to the same value",
            batch_of(_HSFZ_INPUT),
            _parses(hsfz.parse),
            2300,
        ),
        (
            "hsfz.HsfzDecoder",
            "HSFZ streams: the same messages whole or cut anywhere; round trip",
            batch_of(_HSFZ_STREAM_INPUT),
            _frames(hsfz.HsfzDecoder, hsfz.parse),
            600,
        ),
        (
            "uds codecs",
            "UDS: 7F responses, ALFID memory locations, 74 block length, battery record",
            batch_of(_UDS_INPUT),
            _run_uds,
            1700,
        ),
        (
            "sgbm/svk/ilevel/vo bytes",
            "binary SGBM-ID, SVK, I-level triple, VO record: ParseError only; round trip",
            batch_of(_SVK_INPUT),
            _run_binary_ids,
            2300,
        ),
        (
            "sgbm/ilevel/vo/hsfz-id text",
            "text SGBM-ID, I-level, VO, HSFZ identification: ParseError only; round trip",
            batch_of(_TEXT_INPUT),
            _run_text_ids,
            3100,
        ),
        (
            "unit image/fsc",
            "unit header + ImageVerifier (whole = cut), FSC record/records/status",
            batch_of(_RECORD_INPUT),
            _run_records,
            1850,
        ),
    ]
    return [in_process(*row) for row in table]
