"""Every decoder survives 100,000 generated inputs raising nothing but ParseError.

Random bytes alone rarely pass a header check, so most inputs are mutations of valid
frames (bit flips, truncations, insertions, spliced lengths) that reach the payload
decoders. The generator is seeded: a failure names the seed and input and reproduces.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from ecuworks.errors import ParseError
from ecuworks.wire import doip, hsfz, uds
from ecuworks.wire.ilevel import ILevel, ILevelTriple
from ecuworks.wire.sgbm import SgbmId, parse_svk
from ecuworks.wire.vo import VehicleOrder

INPUTS = 100_000
SEED = 13400

DOIP_SEEDS = [
    doip.RoutingActivationRequest(source_address=0x0EF3, oem=b"\x00\x01\x02\x03").encode(),
    doip.RoutingActivationResponse(tester_address=0x0EF3, entity_address=0x10, code=0x10).encode(),
    doip.VehicleAnnouncement(
        vin="WBA8E9C50GK123456",
        logical_address=0x10,
        eid=b"\x00" * 6,
        gid=b"\x01" * 6,
        sync_status=0,
    ).encode(),
    doip.EntityStatusResponse(node_type=0, max_sockets=4, open_sockets=1, max_data_size=9).encode(),
    doip.DiagnosticMessage(
        source=0x12, target=0x0EF3, data=bytes.fromhex("62F190") + b"W" * 17
    ).encode(),
    doip.DiagnosticMessageNack(source=0x12, target=0x0EF3, code=3, previous=b"\x22").encode(),
    doip.VehicleIdentificationRequestVin(vin="WBA8E9C50GK123456").encode(),
    doip.PowerModeResponse(mode=1).encode(),
]
HSFZ_SEEDS = [
    hsfz.DiagnosticMessage(source=0xF4, target=0x12, payload=bytes.fromhex("22F190")).encode(),
    hsfz.Acknowledge(source=0xF4, target=0x12, echo=bytes.fromhex("22F190")).encode(),
    hsfz.IdentificationReply.build(mac="001A37A1B2C3", vin="WBA8E9C50GK123456").encode(),
    hsfz.AliveCheck(source=0x10, target=0xF4).encode(),
    hsfz.AliveCheckReply().encode(),
    hsfz.ErrorFrame(control=hsfz.ControlWord.INCORRECT_TESTER_ADDRESS, data=b"\xf4\xf5").encode(),
]
UDS_SEEDS = [
    bytes.fromhex("7F3178"),
    bytes.fromhex("7420 0FFF"),
    bytes.fromhex("7440 00010002"),
    bytes.fromhex("44 80000000 00800000"),
    bytes.fromhex("12 1234 56"),
]
SGBM = SgbmId.parse("SWFL-0000ABCD-001.002.003")
BINARY_SEEDS = [SGBM.encode(), bytes([2]) + SGBM.encode() * 2]
TRIPLE = ILevelTriple(
    current=ILevel.parse("F020-24-07-550"),
    last=ILevel.parse("F020-24-03-520"),
    shipment=ILevel.parse("F020-22-11-500"),
)
TEXT_SEEDS = [
    "SWFL-0000ABCD-001.002.003",
    "F020-24-07-550",
    "5A31#0724*A96%LCSW&$1CA$205$609-E11A+HW01",
    "DIAGADR10BMWMAC001A37A1B2C3BMWVINWBA8E9C50GK123456",
]


def mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if choice < 0.3 and data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif choice < 0.5 and data:
            del data[rng.randrange(len(data)) :]
        elif choice < 0.7:
            position = rng.randrange(len(data) + 1)
            data[position:position] = rng.randbytes(rng.randint(1, 8))
        elif choice < 0.85 and len(data) >= 8:
            # splice a random length into where headers keep theirs
            position = rng.choice([0, 2, 4])
            data[position : position + 4] = rng.randbytes(4)
        elif data:
            data[rng.randrange(len(data))] = rng.choice([0x00, 0xFF, 0x7F, 0x80])
    return bytes(data)


def generate_bytes(rng: random.Random, seeds: list[bytes]) -> bytes:
    if rng.random() < 0.2:
        return rng.randbytes(rng.randint(0, 64))
    data = mutate(rng, rng.choice(seeds))
    if rng.random() < 0.2:  # streams carry several frames
        data += mutate(rng, rng.choice(seeds))
    return data


def generate_text(rng: random.Random) -> str:
    if rng.random() < 0.2:
        alphabet = "ABCDEF0123456789-.$#*%&+ \u00e9\u0660\uff21\x00"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
    text = mutate(rng, rng.choice(TEXT_SEEDS).encode())
    return text.decode("latin-1")


def feed_doip(data: bytes) -> object:
    return doip.DoipDecoder().feed(data)


def feed_hsfz(data: bytes) -> object:
    return hsfz.HsfzDecoder().feed(data)


BYTE_DECODERS: list[tuple[str, Callable[[bytes], object], list[bytes]]] = [
    ("doip.parse", doip.parse, DOIP_SEEDS),
    ("doip.DoipDecoder.feed", feed_doip, DOIP_SEEDS),
    ("hsfz.parse", hsfz.parse, HSFZ_SEEDS),
    ("hsfz.HsfzDecoder.feed", feed_hsfz, HSFZ_SEEDS),
    ("uds.NegativeResponseMessage.parse", uds.NegativeResponseMessage.parse, UDS_SEEDS),
    ("uds.decode_max_block_length", uds.decode_max_block_length, UDS_SEEDS),
    ("uds.decode_memory_location", uds.decode_memory_location, UDS_SEEDS),
    ("sgbm.SgbmId.decode", SgbmId.decode, BINARY_SEEDS),
    ("sgbm.parse_svk", parse_svk, BINARY_SEEDS),
    ("ilevel.ILevelTriple.decode", ILevelTriple.decode, [TRIPLE.encode()]),
    ("vo.VehicleOrder.decode", VehicleOrder.decode, [TEXT_SEEDS[2].encode()]),
]
TEXT_DECODERS: list[tuple[str, Callable[[str], object]]] = [
    ("sgbm.SgbmId.parse", SgbmId.parse),
    ("ilevel.ILevel.parse", ILevel.parse),
    ("vo.VehicleOrder.parse", VehicleOrder.parse),
    ("hsfz.parse_identification", hsfz.parse_identification),
]


@pytest.mark.parametrize(
    ("name", "decode", "seeds"), BYTE_DECODERS, ids=[d[0] for d in BYTE_DECODERS]
)
def test_byte_decoder_survives(
    name: str, decode: Callable[[bytes], object], seeds: list[bytes]
) -> None:
    rng = random.Random(f"{SEED}-{name}")
    accepted = 0
    for _ in range(INPUTS):
        data = generate_bytes(rng, seeds)
        try:
            decode(data)
        except ParseError:
            continue
        except Exception as error:  # the point is to catch anything else
            pytest.fail(f"{name} raised {error!r} on {data.hex()} (seed {SEED})")
        accepted += 1
    # the generator must reach the decoders' success paths too, not only the header check
    assert accepted > 0, f"{name}: no generated input was valid; the generator is too blunt"


@pytest.mark.parametrize(("name", "decode"), TEXT_DECODERS, ids=[d[0] for d in TEXT_DECODERS])
def test_text_parser_survives(name: str, decode: Callable[[str], object]) -> None:
    rng = random.Random(f"{SEED}-{name}")
    for _ in range(INPUTS):
        text = generate_text(rng)
        try:
            decode(text)
        except ParseError:
            continue
        except Exception as error:
            pytest.fail(f"{name} raised {error!r} on {text!r} (seed {SEED})")


def test_the_harness_catches_a_decoder_that_raises_something_else() -> None:
    def fragile(data: bytes) -> object:
        return data[10]  # IndexError on short input

    with pytest.raises(pytest.fail.Exception, match="IndexError"):
        test_byte_decoder_survives("fragile", fragile, DOIP_SEEDS)
