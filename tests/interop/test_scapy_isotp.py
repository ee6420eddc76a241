"""Our ISO-TP link and UDS client against scapy's ECU answering machine: a peer no one here
wrote, with its own ISO-TP implementation (``ISOTPSoftSocket``), on python-can's in-process
``virtual`` bus with BMW D-CAN addressing.

scapy's ECU is ECU 0x12: it listens on 0x6F1 for frames whose first byte is 0x12 and
answers on 0x612 with first byte 0xF1 (the tester), exactly as :data:`BMW_DCAN` expects.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from ecuworks.transport.isotp import IsotpLink
from ecuworks.uds.client import UdsClient

with warnings.catch_warnings():
    # scapy's contrib modules may warn at import time about what this host lacks (no
    # SocketCAN, no can-isotp kernel module); that says nothing about the peer under test.
    warnings.simplefilter("ignore")
    from scapy.config import conf

    # Before the isotp contrib is imported: use scapy's own ISO-TP, not the kernel module.
    conf.contribs["ISOTP"] = {"use-can-isotp-kernel-module": False}
    from scapy.contrib.automotive.ecu import EcuAnsweringMachine, EcuResponse
    from scapy.contrib.automotive.uds import (
        UDS,
        UDS_RDBIPR,
        UDS_RDPR,
        UDS_RTEPR,
        UDS_TD,
        UDS_TDPR,
    )
    from scapy.contrib.cansocket_python_can import PythonCANSocket
    from scapy.contrib.isotp import ISOTPSoftSocket
    from scapy.packet import Raw
    from scapy.sendrecv import AsyncSniffer

pytestmark = pytest.mark.interop

ECU = 0x12
VIN = b"WBAPH5C55BA123456"
WAIT = 5.0
MAX_BLOCK_LENGTH = 0x0102  # 256 data bytes per TransferData after "36 <counter>"
IMAGE = bytes((i * 13 + 7) & 0xFF for i in range(700))  # three blocks: 256, 256, 188
BLOCKS = 3

RESPONSES = [
    EcuResponse(responses=UDS() / UDS_RDBIPR(dataIdentifier=0xF190) / Raw(VIN)),
    EcuResponse(
        responses=UDS()
        / UDS_RDPR(memorySizeLen=2, maxNumberOfBlockLength=MAX_BLOCK_LENGTH.to_bytes(2, "big"))
    ),
    # UDS_TDPR answers only the TransferData with its own block counter, so one response
    # per counter makes scapy echo each block's counter.
    *(
        EcuResponse(responses=UDS() / UDS_TDPR(blockSequenceCounter=counter))
        for counter in range(1, BLOCKS + 1)
    ),
    EcuResponse(responses=UDS() / UDS_RTEPR()),
]


class ScapyEcu:
    """scapy's answering machine on its own ISO-TP socket, answering in a sniffer thread."""

    def __init__(self, channel: str) -> None:
        self.can = PythonCANSocket(interface="virtual", channel=channel)
        try:
            self.isotp = ISOTPSoftSocket(
                self.can,
                tx_id=0x600 + ECU,
                rx_id=0x6F1,
                ext_address=0xF1,  # first byte of what the ECU sends: the tester's address
                rx_ext_address=ECU,  # first byte of what it accepts: its own address
                padding=True,
                basecls=UDS,
            )
        except BaseException:
            self.can.close()
            raise
        machine = EcuAnsweringMachine(verbose=False)
        machine.parse_options(supported_responses=RESPONSES, main_socket=self.isotp, basecls=UDS)
        # The machine's own bg() cannot run it in scapy 2.8: its options always carry a
        # sniff 'timeout', which AsyncSniffer rejects. So the machine's reply() is driven
        # by an AsyncSniffer here, which stop() ends and joins.
        self.sniffer = AsyncSniffer(opened_socket=self.isotp, prn=machine.reply, store=True)
        self.sniffer.start()

    def stop(self) -> Any:
        """Stop answering; returns the requests scapy received, as it decoded them."""
        try:
            return self.sniffer.stop(join=True)
        finally:
            self.isotp.close()
            self.can.close()


@pytest.fixture
def scapy_ecu(request: pytest.FixtureRequest) -> Iterator[ScapyEcu]:
    ecu = ScapyEcu(f"scapy-isotp:{request.node.nodeid}")
    yield ecu
    if ecu.sniffer.running:
        ecu.stop()


@pytest.fixture
async def link(request: pytest.FixtureRequest, scapy_ecu: ScapyEcu) -> Any:
    async with IsotpLink("virtual", f"scapy-isotp:{request.node.nodeid}") as link:
        yield link


async def test_raw_read_of_the_vin(scapy_ecu: ScapyEcu, link: IsotpLink) -> None:
    answer = await link.request(ECU, bytes.fromhex("22F190"), WAIT)
    assert answer == bytes.fromhex("62F190") + VIN  # 20 bytes: a multi-frame answer


async def test_uds_client_reads_the_vin_and_downloads(scapy_ecu: ScapyEcu, link: IsotpLink) -> None:
    client = UdsClient(link, ECU)
    assert await client.read_did(0xF190) == VIN

    result = await client.download(0x8000_0000, len(IMAGE), [IMAGE[:100], IMAGE[100:]])
    assert (result.bytes_sent, result.blocks) == (len(IMAGE), BLOCKS)
    assert result.max_block_length == MAX_BLOCK_LENGTH
    assert result.crc32 == zlib.crc32(IMAGE)

    # What scapy decoded from our multi-frame TransferData requests is the image, in order.
    requests = scapy_ecu.stop()
    transfers = [packet[UDS_TD] for packet in requests if packet.haslayer(UDS_TD)]
    assert [t.blockSequenceCounter for t in transfers] == [1, 2, 3]
    assert b"".join(bytes(t.transferRequestParameterRecord) for t in transfers) == IMAGE
