"""A real HSFZ session with the simulated F-series car, every byte decoded by scapy.

Our :class:`HsfzLink` talks to the assembled simulator through a transparent TCP proxy in
the test, which keeps every byte each way. The session reads the VIN (F190) and the SVK
(F101) of three ECUs and erases a region, which answers "response pending" (``7F 31 78``)
first. scapy's HSFZ layer, a model of the protocol no one here wrote, then splits each
direction's byte stream into frames by itself (its ``length`` field) and decodes the UDS
under each frame: the frames must use up the streams exactly, each frame must rebuild to
its own bytes, and only a UDS data record (a DID's data, a routine's option or status
record) may be left to scapy's ``Raw``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Final

import pytest
from scapy.contrib.automotive.bmw.hsfz import HSFZ
from scapy.contrib.automotive.uds import (
    UDS,
    UDS_DSC,
    UDS_DSCPR,
    UDS_ER,
    UDS_ERPR,
    UDS_NR,
    UDS_RC,
    UDS_RCPR,
    UDS_RDBI,
    UDS_RDBIPR,
    UDS_SA,
    UDS_SAPR,
)
from scapy.packet import Packet, Padding, Raw
from tests.conftest import StartSimulator
from tests.sim.flashing import (
    HOST,
    client_for,
    ecu_entry,
    enter_programming,
    erase,
    read_state,
    region_entry,
)

from ecuworks.transport.hsfz import HsfzLink
from ecuworks.uds.client import UdsClient
from ecuworks.wire.sgbm import parse_svk

pytestmark = pytest.mark.interop

TESTER: Final = 0xF4
ECUS: Final = (0x10, 0x12, 0x60)  # gateway (enet), DME (PT-CAN), KOMBI (K-CAN)
ERASED: Final = 0x71  # TRSVC: its application region is erased
MAX_FRAMES: Final = 10_000
# Layers whose trailing bytes are a data record scapy leaves raw on purpose.
_RECORD_LAYERS: Final = (UDS_RDBIPR, UDS_RC, UDS_RCPR)
_KNOWN_UDS: Final = (
    UDS_DSC, UDS_DSCPR, UDS_ER, UDS_ERPR, UDS_NR, UDS_RC, UDS_RCPR,
    UDS_RDBI, UDS_RDBIPR, UDS_SA, UDS_SAPR,
)  # fmt: skip


class _Recorder:
    """A transparent TCP proxy on loopback that keeps the bytes of each direction."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.to_gateway = bytearray()
        self.to_tester = bytearray()
        self._pumps: list[asyncio.Task[None]] = []

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: bytearray
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):  # ends when the sender closes
                log += chunk
                writer.write(chunk)
                await writer.drain()
            writer.write_eof()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, self.to_gateway)),
            asyncio.create_task(self._pump(up_reader, writer, self.to_tester)),
        ]
        self._pumps += pumps
        try:
            await asyncio.gather(*pumps)
        finally:
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(ConnectionError):
                    await w.wait_closed()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[int]:
        """Listen on a free port (yielded); on exit wait until both directions closed."""
        server = await asyncio.start_server(self._connected, HOST, 0)
        try:
            yield server.sockets[0].getsockname()[1]
            async with asyncio.timeout(10):
                await asyncio.gather(*self._pumps)
        finally:
            server.close()
            await server.wait_closed()


def _frames(stream: bytes) -> list[Packet]:
    """Split a stream with scapy's HSFZ layer alone; each frame must rebuild to its bytes."""
    frames: list[Packet] = []
    rest = stream
    for _ in range(MAX_FRAMES):
        if not rest:
            return frames
        frame = HSFZ(rest)
        padding = frame.getlayer(Padding)
        tail = bytes(padding.load) if padding is not None else b""
        if padding is not None:
            padding.underlayer.remove_payload()
        whole = rest[: len(rest) - len(tail)]
        # length counts what follows the control word (addresses and UDS).
        assert frame.length == len(whole) - 6, f"a truncated frame: {whole.hex()}"
        assert bytes(frame) == whole, f"scapy rebuilt {bytes(frame).hex()} from {whole.hex()}"
        frames.append(frame)
        rest = tail
    raise AssertionError("more frames than any session sends")


def _fully_decoded(frame: Packet) -> None:
    """Every byte under the HSFZ header is a known UDS field, or a data record."""
    if not frame.payload:  # no data: nothing under the header (an alive check, say)
        return
    uds = frame.getlayer(UDS)
    assert uds is not None, frame.show(dump=True)
    assert isinstance(uds.payload, _KNOWN_UDS), frame.show(dump=True)
    raw = frame.getlayer(Raw)
    if raw is not None:
        assert isinstance(raw.underlayer, _RECORD_LAYERS), frame.show(dump=True)


def _fields(frame: Packet) -> tuple[Any, ...]:
    return (frame.control, frame.source, frame.target)


async def _session(link: HsfzLink, state: dict[str, Any]) -> None:
    for address in ECUS:
        client = UdsClient(link, address)
        assert await client.read_did(0xF190) == state["vin"].encode()
        svk = parse_svk(await client.read_did(0xF101))
        assert [str(unit) for unit in svk] == ecu_entry(state, address)["svk"]
    ecu = ecu_entry(state, ERASED)
    client = client_for(link, ecu)
    await enter_programming(client, ecu)
    await erase(client, region_entry(ecu, "SWFL"))  # 7F 31 78, then 71 01 FF 00 00


async def test_scapy_decodes_every_frame_of_an_hsfz_session_both_ways(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    state = await read_state(sim.ports["control"])
    recorder = _Recorder(sim.ports["hsfz"])
    async with recorder.serving() as port, HsfzLink(HOST, port) as link:
        await _session(link, state)

    requests, answers = _frames(bytes(recorder.to_gateway)), _frames(bytes(recorder.to_tester))
    for frame in requests + answers:
        _fully_decoded(frame)

    # Tester to gateway: diagnostic frames only, from the tester.
    assert {(f.control, f.source) for f in requests} == {(0x0001, TESTER)}
    reads = [(f.target, f[UDS_RDBI].identifiers) for f in requests if UDS_RDBI in f]
    assert reads == [(a, [did]) for a in ECUS for did in (0xF190, 0xF101)]

    # Gateway to tester: an acknowledge echoing each request, then the ECU's answers.
    acks = [f for f in answers if f.control == 0x0002]
    for ack, request in zip(acks, requests, strict=True):
        assert _fields(ack) == (0x0002, request.source, request.target)
        assert bytes(ack.payload) == bytes(request.payload)[:5]
    replies = [f for f in answers if f.control == 0x0001]
    assert {f.target for f in replies} == {TESTER}
    assert {f.source for f in replies} == {*ECUS, ERASED}
    records = {
        (f.source, f[UDS_RDBIPR].dataIdentifier): bytes(f[UDS_RDBIPR].payload)
        for f in replies
        if UDS_RDBIPR in f
    }
    for address in ECUS:
        assert records[address, 0xF190] == state["vin"].encode()
        svk = [str(u) for u in parse_svk(records[address, 0xF101])]
        assert svk == ecu_entry(state, address)["svk"]
    erase_answers = [f for f in replies if f.source == ERASED and (UDS_NR in f or UDS_RCPR in f)]
    pending, done = erase_answers[-2:]
    assert (pending[UDS_NR].requestServiceId, pending[UDS_NR].negativeResponseCode) == (0x31, 0x78)
    assert (done[UDS_RCPR].routineControlType, done[UDS_RCPR].routineIdentifier) == (1, 0xFF00)
    # Two reads per ECU, then 10 03, 10 02, 27 11, 27 12 and 31 01 FF00.
    assert len(requests) == len(acks) == 2 * len(ECUS) + 5
