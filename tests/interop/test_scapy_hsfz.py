"""Our HSFZ frames against scapy's HSFZ layer, a model no one here wrote, both ways.

scapy 2.8 imports these modules without warnings, so nothing is filtered here; if a later
scapy warns on import, ``filterwarnings = error`` will say so at collection.
"""

from __future__ import annotations

import pytest
from scapy.contrib.automotive.bmw.hsfz import HSFZ
from scapy.contrib.automotive.uds import UDS, UDS_RDBI, UDS_RDBIPR, UDS_TD
from scapy.packet import Raw

from ecuworks.wire.hsfz import (
    Acknowledge,
    AliveCheck,
    AliveCheckReply,
    ControlWord,
    DiagnosticMessage,
    ErrorFrame,
    HsfzMessage,
    IdentificationReply,
    IdentificationRequest,
    IgnitionStatus,
    encode_diagnostic,
    parse,
)

pytestmark = pytest.mark.interop

VIN = "WBA12345678901234"
READ_VIN = DiagnosticMessage(source=0xF4, target=0x10, payload=bytes.fromhex("22F190"))
VIN_ANSWER = DiagnosticMessage(
    source=0x10, target=0xF4, payload=bytes.fromhex("62F190") + VIN.encode()
)


# --- ours, read by scapy ------------------------------------------------------------------


def test_scapy_reads_our_diagnostic_request() -> None:
    pkt = HSFZ(READ_VIN.encode())
    assert (pkt.length, pkt.control, pkt.source, pkt.target) == (5, 0x0001, 0xF4, 0x10)
    assert pkt[UDS].service == 0x22
    assert pkt[UDS_RDBI].identifiers == [0xF190]


def test_scapy_reads_our_diagnostic_response() -> None:
    pkt = HSFZ(VIN_ANSWER.encode())
    assert (pkt.length, pkt.control, pkt.source, pkt.target) == (22, 0x0001, 0x10, 0xF4)
    assert pkt[UDS].service == 0x62
    assert pkt[UDS_RDBIPR].dataIdentifier == 0xF190
    assert pkt[UDS_RDBIPR].load == VIN.encode()


def test_scapy_reads_our_64k_transfer_data_block() -> None:
    block = bytes(range(256)) * 256
    pkt = HSFZ(encode_diagnostic(0xF4, 0x12, b"\x36\x01" + block))
    assert pkt.length == len(block) + 4
    assert (pkt.source, pkt.target) == (0xF4, 0x12)
    assert pkt[UDS_TD].blockSequenceCounter == 1
    assert pkt[UDS_TD].transferRequestParameterRecord == block


def test_scapy_reads_our_acknowledge() -> None:
    pkt = HSFZ(Acknowledge(source=0xF4, target=0x10, echo=bytes.fromhex("22F190")).encode())
    assert (pkt.length, pkt.control, pkt.source, pkt.target) == (5, 0x0002, 0xF4, 0x10)
    assert pkt[UDS_RDBI].identifiers == [0xF190]


def test_scapy_reads_our_identification_reply() -> None:
    reply = IdentificationReply.build(mac="001A37A1B2C3", vin=VIN)
    pkt = HSFZ(reply.encode())
    assert (pkt.length, pkt.control) == (len(reply.text), 0x0011)
    assert pkt.identification_string == reply.text.encode()


def test_scapy_reads_our_alive_check_with_addresses() -> None:
    pkt = HSFZ(AliveCheck(source=0x10, target=0xF4).encode())
    assert (pkt.length, pkt.control, pkt.source, pkt.target) == (2, 0x0012, 0x10, 0xF4)


def test_scapy_reads_our_incorrect_tester_address() -> None:
    nack = ErrorFrame(control=ControlWord.INCORRECT_TESTER_ADDRESS, data=bytes([0xF4, 0xF5]))
    pkt = HSFZ(nack.encode())
    assert (pkt.length, pkt.control, pkt.expected, pkt.received) == (2, 0x0040, 0xF4, 0xF5)


@pytest.mark.parametrize(
    "message",
    [
        READ_VIN,
        VIN_ANSWER,
        Acknowledge(source=0xF4, target=0x12, echo=bytes.fromhex("3601AABBCC")),
        IdentificationRequest(),
        IdentificationReply.build(diag_address=0x10, mac="001A37A1B2C3", vin=VIN),
        AliveCheck(),
        AliveCheck(source=0x10, target=0xF4),
        AliveCheckReply(),
        ErrorFrame(control=ControlWord.NEGATIVE_ACKNOWLEDGE),
        ErrorFrame(control=ControlWord.DIAGNOSTIC_APPLICATION_NOT_READY),
        IgnitionStatus(data=b"\x05"),
    ],
    ids=lambda m: type(m).__name__,
)
def test_scapy_agrees_on_length_and_control_and_rebuilds_our_bytes(message: HsfzMessage) -> None:
    frame = message.encode()
    pkt = HSFZ(frame)
    assert pkt.length == len(frame) - 6
    assert pkt.control == int.from_bytes(frame[4:6], "big")
    assert bytes(pkt) == frame


# --- scapy's, read by us ------------------------------------------------------------------


def test_we_read_scapys_diagnostic_request() -> None:
    frame = bytes(
        HSFZ(control=1, source=0xF4, target=0x10) / UDS() / UDS_RDBI(identifiers=[0xF190])
    )
    assert parse(frame) == READ_VIN


def test_we_read_scapys_diagnostic_response() -> None:
    pkt = HSFZ(control=1, source=0x10, target=0xF4) / UDS() / UDS_RDBIPR(dataIdentifier=0xF190)
    assert parse(bytes(pkt / Raw(VIN.encode()))) == VIN_ANSWER


def test_we_read_scapys_acknowledge() -> None:
    frame = bytes(HSFZ(control=2, source=0xF4, target=0x10) / Raw(bytes.fromhex("22F190")))
    assert parse(frame) == Acknowledge(source=0xF4, target=0x10, echo=bytes.fromhex("22F190"))


def test_we_read_scapys_identification_frames() -> None:
    text = f"DIAGADR10BMWMAC001A37A1B2C3BMWVIN{VIN}"
    # scapy computes ``length`` as payload + 2 when left unset, right only for addressed
    # frames, so the identification frames carry it explicitly.
    reply = bytes(HSFZ(control=0x11, length=len(text), identification_string=text.encode()))
    assert parse(reply) == IdentificationReply(
        diag_address=0x10, mac="001A37A1B2C3", vin=VIN, text=text
    )
    assert parse(bytes(HSFZ(control=0x11, length=0))) == IdentificationRequest()


def test_we_read_scapys_alive_checks() -> None:
    assert parse(bytes(HSFZ(control=0x12, length=2, source=0x10, target=0xF4))) == AliveCheck(
        source=0x10, target=0xF4
    )
    assert parse(bytes(HSFZ(control=0x12, length=0))) == AliveCheck()


def test_we_read_scapys_incorrect_tester_address() -> None:
    message = parse(bytes(HSFZ(control=0x40, expected=0xF4, received=0xF5)))
    assert isinstance(message, ErrorFrame)
    assert message.control is ControlWord.INCORRECT_TESTER_ADDRESS
    assert (message.expected, message.received) == (0xF4, 0xF5)
