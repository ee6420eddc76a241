"""Loopback captures for the interop tests: ``dumpcap`` on ``lo``, decoded by ``tshark``.

Wireshark's dissectors are a model of the protocols no one here wrote. A test starts
:func:`dumpcap` with a capture filter, makes sure the capture really runs with
:func:`until_live` (probe frames until one shows up), runs its session, waits until a
last frame it knows was captured, and decodes the pcapng with :func:`tshark`.

Needs Debian's ``tshark``/``dumpcap`` (``make system-deps`` installs them; CI runs that
first) and the right to capture on ``lo`` (root, as on CI and the development machines).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
from collections.abc import AsyncIterator, Callable

import pytest

# Wireshark's expert severity "error" (PI_ERROR); malformed packets are errors too.
EXPERT_ERROR = 8388608
MALFORMED_OR_ERROR = f"_ws.malformed || _ws.expert.severity >= {EXPERT_ERROR}"


def tool(name: str) -> str:
    """The path of a Wireshark tool; fails the test with how to install it when missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: run `make system-deps` (installs Debian tshark, "
            "whose DoIP and UDS dissectors the interop tests check traffic against)"
        )
    return path


class Capture:
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
        """Stop dumpcap (SIGINT flushes its file) and return the whole pcapng."""
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
async def dumpcap(capture_filter: str) -> AsyncIterator[Capture]:
    """Capture on ``lo`` with a BPF filter (e.g. ``tcp port 13400``) until the block ends."""
    process = await asyncio.create_subprocess_exec(
        tool("dumpcap"),
        *("-i", "lo", "-f", capture_filter, "-w", "-"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    capture = Capture(process)
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


async def until_live(capture: Capture, probe: Callable[[], bytes], attempts: int = 50) -> None:
    """Return once a probe frame shows up in the capture.

    dumpcap says "Capturing on" a moment before its filter is in place, and packets of
    that moment are lost; a session must not start before the capture really runs.
    ``probe()`` sends one probe frame (valid traffic of the protocol under test) and
    returns bytes of it to look for; it is sent again after each 0.2 s without a sight.
    """
    for _ in range(attempts):
        needle = probe()
        with contextlib.suppress(TimeoutError):
            await capture.wait_for(needle, within=0.2)
            return
    pytest.fail(f"dumpcap captured nothing on lo within {attempts * 0.2:.0f} s")


async def tshark(*args: str) -> list[str]:
    """Run tshark with ``args``; its output lines (fails the test on a non-zero exit)."""
    process = await asyncio.create_subprocess_exec(
        tool("tshark"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode().splitlines()
