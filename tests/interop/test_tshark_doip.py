"""Our DoIP traffic, captured on loopback, decoded by Wireshark's dissectors (tshark).

Wireshark's DoIP and UDS dissectors are a model of ISO 13400-2 and ISO 14229 no one here
wrote. The test captures a real session of :class:`DoipLink` with the loopback DoIP test
server (routing activation, requests and answers, response pending, a diagnostic NACK, an
alive check) with ``dumpcap`` and asserts that tshark finds every message type, decodes
the UDS inside, and flags nothing as malformed.

Needs Debian's ``tshark`` (``make system-deps`` installs it; CI runs that first) and the
right to capture on ``lo`` (root, as on CI and the development machines); the capture
helpers are in ``tests/interop/capture.py``.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from tests.interop.capture import MALFORMED_OR_ERROR, Capture, dumpcap, tshark, until_live
from tests.transport.doip_server import DoipTestServer, echo_handler

from ecuworks.errors import TransportNack
from ecuworks.transport.doip import DoipLink
from ecuworks.wire.doip import EntityStatusRequest

pytestmark = pytest.mark.interop

END_MARK = b"ecuworks-capture-end"  # in the last request and its answer
EXPECTED_TYPES = {0x0005, 0x0006, 0x8001, 0x8002, 0x8003, 0x0007, 0x0008}


async def _until_live(capture: Capture, server: DoipTestServer) -> None:
    """Return once a probe frame shows up in the capture (see :func:`until_live`)."""
    probe_frame = EntityStatusRequest().encode()  # valid DoIP that the server ignores
    with socket.create_connection((server.host, server.port), timeout=5) as probe:

        def send_probe() -> bytes:
            probe.sendall(probe_frame)
            return probe_frame

        await until_live(capture, send_probe)


async def _session(server: DoipTestServer) -> None:
    """What the capture shows: one tester session with every kind of message."""
    async with DoipLink(server.host, server.port) as link:
        assert await link.request(0x12, b"\x22\xf1\x90", timeout=5) == b"\x62\xf1\x90"
        async with link.lock(0x12):
            await link.send(0x12, b"\x31\x01\xff\x00")
            assert await link.receive(0x12, timeout=5) == b"\x7f\x31\x78"
            assert await link.receive(0x12, timeout=5) == b"\x71\x01\xff\x00\x00"
        with pytest.raises(TransportNack):
            await link.request(0x99, b"\x10\x03", timeout=5)
        assert (await server.alive_check()).source_address == link.tester_address
        await link.request(0x12, b"\x3e\x00", timeout=5)
        await link.request(0x12, b"\x31\x01\x0f\x0c" + END_MARK, timeout=5)


async def _handler(target: int, request: bytes) -> list[bytes]:
    if request == b"\x31\x01\xff\x00":
        return [b"\x7f\x31\x78", b"\x71\x01\xff\x00\x00"]
    return await echo_handler(target, request)


async def test_tshark_decodes_our_doip_session_without_malformed_packets(tmp_path: Path) -> None:
    async with DoipTestServer(_handler, targets={0x10, 0x12}) as server:
        async with dumpcap(f"tcp port {server.port}") as capture:
            await _until_live(capture, server)
            await _session(server)
            await capture.wait_for(END_MARK, count=2)  # the last request and its answer
        pcap = await capture.stop()

    path = tmp_path / "doip.pcapng"
    path.write_bytes(pcap)
    decode = ("-r", str(path), "-d", f"tcp.port=={server.port},doip")
    malformed = await tshark(*decode, "-Y", MALFORMED_OR_ERROR)
    assert malformed == [], "tshark flags packets as malformed or erroneous:\n" + "\n".join(
        await tshark(*decode, "-V", "-Y", MALFORMED_OR_ERROR)
    )

    rows = await tshark(
        *decode, "-Y", "doip", "-T", "fields", "-E", "occurrence=a",
        "-e", "doip.type", "-e", "uds.sid",
    )  # fmt: skip
    types: list[int] = []
    diagnostic_messages = sids = 0
    for row in rows:
        type_field, _, sid_field = row.partition("\t")
        row_types = [int(value, 16) for value in type_field.split(",") if value]
        types += row_types
        diagnostic_messages += row_types.count(0x8001)
        sids += len([value for value in sid_field.split(",") if value])
    assert set(types) >= EXPECTED_TYPES, f"missing DoIP types: {EXPECTED_TYPES - set(types)}"
    # Every diagnostic message carries UDS that the UDS dissector decoded.
    assert diagnostic_messages == 10
    assert sids == diagnostic_messages
