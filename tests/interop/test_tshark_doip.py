"""Our DoIP traffic, captured on loopback, decoded by Wireshark's dissectors (tshark).

Wireshark's DoIP and UDS dissectors are a model of ISO 13400-2 and ISO 14229 no one here
wrote. The test captures a real session of :class:`DoipLink` with the loopback DoIP test
server (routing activation, requests and answers, response pending, a diagnostic NACK, an
alive check) with ``dumpcap`` and asserts that tshark finds every message type, decodes
the UDS inside, and flags nothing as malformed.

Needs Debian's ``tshark`` (``make system-deps`` installs it; CI runs that first) and the
right to capture on ``lo`` (root, as on CI and the development machines).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.transport.doip_server import DoipTestServer, echo_handler

from ecuworks.errors import TransportNack
from ecuworks.transport.doip import DoipLink
from ecuworks.wire.doip import EntityStatusRequest

pytestmark = pytest.mark.interop

END_MARK = b"ecuworks-capture-end"  # in the last request and its answer
EXPECTED_TYPES = {0x0005, 0x0006, 0x8001, 0x8002, 0x8003, 0x0007, 0x0008}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: run `make system-deps` (installs Debian tshark, "
            "whose DoIP and UDS dissectors this test checks our traffic against)"
        )
    return path


class _Capture:
    """``dumpcap`` on ``lo`` writing pcapng to a pipe that is read as it arrives."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.data = bytearray()
        self.grew = asyncio.Event()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while chunk := await self.process.stdout.read(65536):
            self.data += chunk
            self.grew.set()

    async def wait_for(self, needle: bytes, count: int = 1, within: float = 10) -> None:
        """Wait until ``needle`` was captured ``count`` times (TimeoutError after ``within`` s)."""
        async with asyncio.timeout(within):
            while self.data.count(needle) < count:
                self.grew.clear()
                await self.grew.wait()

    async def stop(self) -> bytes:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(10):
                await self.reader
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            self.reader.cancel()
        return bytes(self.data)


@contextlib.asynccontextmanager
async def _dumpcap(port: int) -> AsyncIterator[_Capture]:
    process = await asyncio.create_subprocess_exec(
        _tool("dumpcap"),
        *("-i", "lo", "-f", f"tcp port {port}", "-w", "-"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    capture = _Capture(process)
    assert process.stderr is not None
    said: list[bytes] = []
    try:
        async with asyncio.timeout(10):
            while line := await process.stderr.readline():
                said.append(line)
                if b"Capturing on" in line:
                    break
        if not said or b"Capturing on" not in said[-1]:
            pytest.fail(f"dumpcap could not capture on lo: {b''.join(said).decode()}")
        yield capture
    finally:
        await capture.stop()
        await process.stderr.read()  # drain its remaining (harmless) messages


async def _until_live(capture: _Capture, server: DoipTestServer) -> None:
    """Return once a probe frame shows up in the capture.

    dumpcap says "Capturing on" a moment before its filter is in place, and packets of
    that moment are lost; the session must not start before the capture really runs.
    """
    probe_frame = EntityStatusRequest().encode()  # valid DoIP that the server ignores
    with socket.create_connection((server.host, server.port), timeout=5) as probe:
        for _ in range(50):
            probe.sendall(probe_frame)
            with contextlib.suppress(TimeoutError):
                await capture.wait_for(probe_frame, within=0.2)
                return
    pytest.fail("dumpcap captured nothing on lo within 10 s")


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


async def _tshark(*args: str) -> list[str]:
    process = await asyncio.create_subprocess_exec(
        _tool("tshark"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode().splitlines()


async def test_tshark_decodes_our_doip_session_without_malformed_packets(tmp_path: Path) -> None:
    async with DoipTestServer(_handler, targets={0x10, 0x12}) as server:
        async with _dumpcap(server.port) as capture:
            await _until_live(capture, server)
            await _session(server)
            await capture.wait_for(END_MARK, count=2)  # the last request and its answer
        pcap = await capture.stop()

    path = tmp_path / "doip.pcapng"
    path.write_bytes(pcap)
    decode = ("-r", str(path), "-d", f"tcp.port=={server.port},doip")
    malformed = await _tshark(*decode, "-Y", "_ws.malformed || _ws.expert.severity >= 8388608")
    assert malformed == [], "tshark flags packets as malformed or erroneous:\n" + "\n".join(
        await _tshark(*decode, "-V", "-Y", "_ws.malformed || _ws.expert.severity >= 8388608")
    )

    rows = await _tshark(
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
