"""What the simulator's fault suites share: unit images, a whole flash with our client, waits.

The steps are those of DESIGN.md's flash protocol, driven through our own
:class:`~ecuworks.uds.client.UdsClient` over any link: programming session, security level
0x11 with the ECU's ``hmac-sha256`` secret from ``/state``, erase (routine FF00), download
(0x34/0x36/0x37), check memory (routine 0202), check programming dependencies (routine
FF01), reset. The tests break that sequence at chosen points; these helpers are the
unbroken parts.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Final

import httpx

from ecuworks.transport.base import Link
from ecuworks.uds.client import Timing, UdsClient
from ecuworks.uds.download import DownloadResult, block_payload_size
from ecuworks.wire.sgbm import SgbmId
from ecuworks.wire.uds import encode_memory_location
from ecuworks.wire.unit_image import build_image

__all__ = [
    "FAST",
    "HOST",
    "PausedImage",
    "State",
    "cancel",
    "client_for",
    "control",
    "ecu_entry",
    "enter_programming",
    "erase",
    "flash",
    "image_for",
    "newer",
    "read_state",
    "region_entry",
    "start_paused_download",
    "wait_for_state",
    "write_region",
]

HOST: Final = "127.0.0.1"
PROGRAMMING_LEVEL: Final = 0x11
ERASE_MEMORY: Final = 0xFF00
CHECK_MEMORY: Final = 0x0202
CHECK_DEPENDENCIES: Final = 0xFF01
ROUTINE_OK: Final = b"\x00"

# A short P2 for the client's own waits: after a reset the ECU is silent while it boots,
# and the client polls it with tester present once per P2. The ECU answers within its
# P2server_max of 50 ms (real time at any time scale), so 0.25 s is still generous.
FAST: Final = Timing(p2=0.25)

# /state has no change event to wait on, so waits poll it; each poll is one local HTTP
# request, and the bound below (real seconds) caps every wait.
_POLL_S: Final = 0.01
_MAX_POLLS: Final = 2000

State = dict[str, Any]


# --- /state and the control API -----------------------------------------------------------


async def control(
    port: int, method: str, path: str, body: Mapping[str, Any] | None = None
) -> httpx.Response:
    """One request to the simulator's control API; an error status fails the test."""
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=10) as http:
        response = await http.request(method, path, json=body)
    assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
    return response


async def read_state(port: int) -> State:
    """``GET /state``."""
    state: State = (await control(port, "GET", "/state")).json()
    return state


async def wait_for_state(
    port: int, condition: Callable[[State], bool], *, within: float = 10.0, what: str = ""
) -> State:
    """Poll ``/state`` until ``condition`` holds; the state that satisfied it.

    Raises:
        AssertionError: the condition did not hold within ``within`` real seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    state: State = {}
    for _ in range(_MAX_POLLS):
        state = await read_state(port)
        if condition(state) or loop.time() >= deadline:
            break
        await asyncio.sleep(_POLL_S)
    assert condition(state), f"/state never showed {what or condition} within {within:g} s"
    return state


def ecu_entry(state: State, address: int) -> dict[str, Any]:
    """One ECU's entry of ``/state``."""
    for ecu in state["ecus"]:
        if ecu["address"] == address:
            entry: dict[str, Any] = ecu
            return entry
    raise AssertionError(f"/state has no ECU at 0x{address:02X}")


def region_entry(ecu: Mapping[str, Any], process_class: str, index: int = 0) -> dict[str, Any]:
    """The ``index``-th region of ``process_class`` of an ECU's ``/state`` entry."""
    regions = [r for r in ecu["regions"] if r["class"] == process_class]
    region: dict[str, Any] = regions[index]
    return region


# --- images -------------------------------------------------------------------------------


def newer(unit: str | SgbmId, bump: int = 1) -> SgbmId:
    """The same unit, ``bump`` patch versions later (wrapping into the sub version)."""
    old = SgbmId.parse(unit) if isinstance(unit, str) else unit
    patch = old.patch + bump
    return SgbmId(
        process_class=old.process_class,
        unit_id=old.unit_id,
        main=old.main,
        sub=(old.sub + patch // 256) % 256,
        patch=patch % 256,
    )


def image_for(
    region: Mapping[str, Any], unit: SgbmId, *, size: int | None = None, seed: int = 0
) -> bytes:
    """A valid ``EWU1`` image of ``unit`` that fills ``region`` (or ``size`` bytes of it)."""
    total = region["size"] if size is None else size
    payload = random.Random(f"{unit}/{seed}").randbytes(total - 64)
    return build_image(unit, payload)


# --- the flash sequence -------------------------------------------------------------------


def client_for(link: Link, ecu: Mapping[str, Any]) -> UdsClient:
    """A client of the ECU with the short P2 of :data:`FAST`."""
    return UdsClient(link, ecu["address"], timing=FAST)


async def enter_programming(client: UdsClient, ecu: Mapping[str, Any]) -> None:
    """``10 03``, ``10 02``, then security level 0x11 with the ECU's secret."""
    await client.change_session(0x03)
    await client.change_session(0x02)
    secret = bytes.fromhex(ecu["security"]["secret"])
    await client.security_access(PROGRAMMING_LEVEL, ecu["security"]["algorithm"], secret)


def _location(region: Mapping[str, Any]) -> bytes:
    return encode_memory_location(region["address"], region["size"], address_bytes=4, size_bytes=4)


async def erase(client: UdsClient, region: Mapping[str, Any]) -> None:
    """Routine FF00 on one region; it must report success."""
    assert await client.routine(ERASE_MEMORY, data=_location(region)) == ROUTINE_OK


async def write_region(
    client: UdsClient,
    region: Mapping[str, Any],
    image: bytes,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> DownloadResult:
    """Download ``image`` into an erased region and check its CRC with routine 0202."""
    result = await client.download(
        region["address"], len(image), [image], memory_format=(4, 4), progress=progress
    )
    assert await client.routine(CHECK_MEMORY, data=result.crc32.to_bytes(4, "big")) == ROUTINE_OK
    return result


async def flash(
    link: Link,
    ecu: Mapping[str, Any],
    *,
    classes: Iterable[str] = ("SWFL", "SWFF", "IBAD", "GWTB"),
) -> list[SgbmId]:
    """Program every region of ``classes`` with a newer unit, check, reset.

    Args:
        link: an open link to the vehicle.
        ecu: the ECU's ``/state`` entry (addresses, sizes, units, secret).
        classes: the process classes to write; the bootloader is left alone by default.

    Returns:
        The units written, in region order.
    """
    wanted = set(classes)
    client = client_for(link, ecu)
    await enter_programming(client, ecu)
    written: list[SgbmId] = []
    for region in ecu["regions"]:
        if region["class"] not in wanted:
            continue
        # A blank region (a new part's) has no unit to be newer than: make one up.
        unit = newer(region["unit"]) if region["unit"] else _first_unit(ecu, region)
        await erase(client, region)
        await write_region(client, region, image_for(region, unit))
        written.append(unit)
    assert await client.routine(CHECK_DEPENDENCIES) == ROUTINE_OK
    await client.ecu_reset(0x01)
    return written


class PausedImage:
    """An image handed to the download block by block, that stops after ``after`` blocks.

    ``reached`` is set once ``after`` blocks were sent and acknowledged (the download then
    waits, holding the ECU mid-transfer); setting ``resume`` lets it go on. A test breaks
    the vehicle in between: cancels the tester, cuts the power.

    Args:
        image: the whole image.
        max_block_length: the ECU's maxNumberOfBlockLength (``/state`` ``timing``).
        after: blocks to send before stopping.
    """

    def __init__(self, image: bytes, max_block_length: int, after: int) -> None:
        self.image = image
        self.block = block_payload_size(max_block_length)
        assert after * self.block < len(image), "the image ends before the pause"
        self.after = after
        self.reached = asyncio.Event()
        self.resume = asyncio.Event()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The image in block-sized chunks, pausing before block ``after + 1``."""
        for index, start in enumerate(range(0, len(self.image), self.block)):
            if index == self.after:
                self.reached.set()
                await self.resume.wait()
            yield self.image[start : start + self.block]


async def start_paused_download(
    client: UdsClient, region: Mapping[str, Any], paused: PausedImage
) -> asyncio.Task[DownloadResult]:
    """Start downloading ``paused`` into an erased region; return once it has paused."""
    task = asyncio.create_task(
        client.download(region["address"], len(paused.image), paused.chunks(), memory_format=(4, 4))
    )
    reached = asyncio.create_task(paused.reached.wait())
    await asyncio.wait({task, reached}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if not paused.reached.is_set():
        reached.cancel()
        task.cancel()
        outcome = await asyncio.gather(task, reached, return_exceptions=True)
        raise AssertionError(f"the download never reached its pause: {outcome[0]!r}")
    return task


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel a task and wait until it has ended (the tester is killed)."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


def _first_unit(ecu: Mapping[str, Any], region: Mapping[str, Any]) -> SgbmId:
    """A unit for a blank region: the class's code and the ECU's address make its id."""
    index = [r["address"] for r in ecu["regions"]].index(region["address"])
    return SgbmId.parse(
        f"{region['class']}-{0xEC000000 | ecu['address'] << 8 | index:08X}-001.000.000"
    )
