"""Download (0x34/0x36/0x37) against an in-memory flash ECU, and its pure helpers."""

from __future__ import annotations

import asyncio
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecuworks.errors import ConfigError, NegativeResponse, UnexpectedResponse
from ecuworks.transport.memory import MemoryLink
from ecuworks.uds.client import Timing, UdsClient
from ecuworks.uds.download import Rechunker, block_payload_size, next_counter

ECU = 0x12
ADDRESS = 0x8000_0000


class FlashEcu:
    """A bootloader that accepts one download and keeps what it receives.

    Args:
        max_block_length: announced in the RequestDownload answer (2 bytes).
        keep: keep the received bytes (off for big images: only count and CRC them).
    """

    def __init__(self, max_block_length: int, *, keep: bool = True) -> None:
        self.max_block_length = max_block_length
        self.keep = keep
        self.data = bytearray()
        self.received = 0
        self.crc = 0
        self.counters: list[int] = []
        self.lengths: list[int] = []
        self.exited = False
        self.pending_on_block: int | None = None  # answer 7F 36 78 first on this block
        self.wrong_counter_on_block: int | None = None
        self.nrc_on_block: int | None = None

    async def __call__(self, target: int, request: bytes) -> AsyncIterator[bytes]:
        sid = request[0]
        if sid == 0x34:
            yield b"\x74\x20" + self.max_block_length.to_bytes(2, "big")
        elif sid == 0x36:
            counter = request[1]
            self.counters.append(counter)
            self.lengths.append(len(request))
            block = len(self.counters)
            data = request[2:]
            self.received += len(data)
            self.crc = zlib.crc32(data, self.crc)
            if self.keep:
                self.data += data
            if block == self.nrc_on_block:
                yield b"\x7f\x36\x72"
                return
            if block == self.pending_on_block:
                yield b"\x7f\x36\x78"
                await asyncio.sleep(0)  # writing flash
                yield b"\x7f\x36\x78"
            if block == self.wrong_counter_on_block:
                counter = (counter + 1) & 0xFF
            yield bytes((0x76, counter))
        elif sid == 0x37:
            self.exited = True
            yield b"\x77"
        else:
            yield b"\x7f" + request[:1] + b"\x11"


class ForgetfulLink(MemoryLink):
    """A MemoryLink that does not keep every request in ``sent`` (for big images)."""

    async def _transmit(self, target: int, payload: bytes) -> None:
        await super()._transmit(target, payload)
        self.sent.clear()


async def setup(
    ecu: FlashEcu, link_type: type[MemoryLink] = MemoryLink
) -> tuple[MemoryLink, UdsClient]:
    link = link_type(ecu)
    await link.open()
    return link, UdsClient(link, ECU, timing=Timing(p2=2.0, p2_star=2.0))


def image_of(size: int) -> bytes:
    return bytes((i * 7 + (i >> 8)) & 0xFF for i in range(size))


def chunked(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """Cut ``data`` into chunks whose sizes cycle through ``sizes``."""
    start = i = 0
    while start < len(data):
        size = sizes[i % len(sizes)]
        yield data[start : start + size]
        start += size
        i += 1


# -- pure helpers ------------------------------------------------------------------------


def test_block_payload_size_leaves_room_for_sid_and_counter() -> None:
    assert block_payload_size(0x0FFF) == 4093
    assert block_payload_size(3) == 1
    with pytest.raises(ConfigError):
        block_payload_size(2)


def test_block_counter_wraps_from_ff_to_00() -> None:
    assert next_counter(0x01) == 0x02
    assert next_counter(0xFE) == 0xFF
    assert next_counter(0xFF) == 0x00


@given(
    block_size=st.integers(min_value=1, max_value=64),
    chunks=st.lists(st.binary(max_size=200), max_size=20),
)
def test_rechunker_cuts_any_chunks_into_exact_blocks(block_size: int, chunks: list[bytes]) -> None:
    rechunker = Rechunker(block_size)
    blocks = [bytes(b) for chunk in chunks for b in rechunker.feed(chunk)]
    assert rechunker.pending < block_size
    last = rechunker.flush()
    if last is not None:
        assert 0 < len(last) < block_size
        blocks.append(last)
    assert b"".join(blocks) == b"".join(chunks)
    full = blocks[:-1] if last is not None else blocks
    assert all(len(b) == block_size for b in full)
    assert rechunker.flush() is None


def test_rechunker_slices_big_chunks_without_copying() -> None:
    chunk = bytes(range(256)) * 64  # 16 KiB, four 4 KiB blocks
    blocks = list(Rechunker(4096).feed(chunk))
    assert len(blocks) == 4
    assert all(isinstance(b, memoryview) and b.obj is chunk for b in blocks)


# -- download ----------------------------------------------------------------------------


async def test_download_transfers_the_image_in_wrapping_blocks() -> None:
    ecu = FlashEcu(max_block_length=18)  # 16 data bytes per block
    link, client = await setup(ecu)
    image = image_of(16 * 300 + 5)  # 301 blocks: the counter wraps FF -> 00
    seen: list[tuple[int, int]] = []
    result = await client.download(
        ADDRESS,
        len(image),
        chunked(image, [7, 33, 1000, 1]),
        progress=lambda sent, total: seen.append((sent, total)),
    )
    assert bytes(ecu.data) == image
    assert ecu.exited
    assert result.bytes_sent == len(image)
    assert result.blocks == 301
    assert result.crc32 == zlib.crc32(image)
    assert result.max_block_length == 18
    assert ecu.counters[:3] == [0x01, 0x02, 0x03]
    assert ecu.counters[254:257] == [0xFF, 0x00, 0x01]
    assert ecu.counters == [(i + 1) & 0xFF for i in range(301)]
    assert ecu.lengths[:-1] == [18] * 300
    assert ecu.lengths[-1] == 2 + 5
    # RequestDownload: 34 DFI ALFID(size 2 bytes, address 4 bytes) address size
    assert link.sent[0] == (ECU, b"\x34\x00\x24\x80\x00\x00\x00\x12\xc5")
    assert link.sent[-1] == (ECU, b"\x37")
    sent = [s for s, _ in seen]
    assert sent == sorted(sent)
    assert sent[-1] == len(image)
    assert {total for _, total in seen} == {len(image)}


async def test_block_size_follows_max_number_of_block_length() -> None:
    ecu = FlashEcu(max_block_length=0x0FFF)
    _, client = await setup(ecu)
    image = image_of(4093 * 3 + 100)
    await client.download(ADDRESS, len(image), [image])
    assert ecu.lengths == [0x0FFF, 0x0FFF, 0x0FFF, 102]
    assert bytes(ecu.data) == image


async def test_memory_format_and_data_format_are_passed_through() -> None:
    ecu = FlashEcu(max_block_length=0x0FFF)
    link, client = await setup(ecu)
    await client.download(0x1000, 4, [b"abcd"], data_format=0x11, memory_format=(4, 4))
    assert link.sent[0] == (ECU, b"\x34\x11\x44\x00\x00\x10\x00\x00\x00\x00\x04")


async def test_compressed_download_announces_the_uncompressed_memory_size() -> None:
    image = image_of(50_000)
    packed = zlib.compress(image)
    ecu = FlashEcu(max_block_length=0x0FFF)
    link, client = await setup(ecu)
    result = await client.download(
        0x1000, len(image), [packed], data_format=0x10, transfer_size=len(packed)
    )
    # ISO 14229-1: memorySize is what the data takes in memory, uncompressed
    assert link.sent[0][1][-2:] == len(image).to_bytes(2, "big")
    assert bytes(ecu.data) == packed
    assert result.bytes_sent == len(packed)
    assert result.crc32 == zlib.crc32(packed)  # routine 0202 checks what was transferred


async def test_compressed_download_checks_the_transfer_size_it_was_given() -> None:
    ecu = FlashEcu(max_block_length=0x0FFF)
    _, client = await setup(ecu)
    with pytest.raises(ConfigError, match="announced 10"):
        await client.download(0x1000, 100, [b"x" * 12], data_format=0x10, transfer_size=10)


async def test_async_iterable_source() -> None:
    ecu = FlashEcu(max_block_length=0x0102)
    _, client = await setup(ecu)
    image = image_of(10_000)

    async def source() -> AsyncIterator[bytes]:
        for chunk in chunked(image, [999]):
            await asyncio.sleep(0)  # e.g. read from the P-Data store
            yield chunk

    result = await client.download(ADDRESS, len(image), source())
    assert bytes(ecu.data) == image
    assert result.crc32 == zlib.crc32(image)


async def test_an_image_shorter_than_announced_is_an_error_before_exit() -> None:
    ecu = FlashEcu(max_block_length=18)
    link, client = await setup(ecu)
    with pytest.raises(ConfigError, match="the image has 100 bytes but the download announced 101"):
        await client.download(ADDRESS, 101, [image_of(100)])
    assert not ecu.exited
    assert (ECU, b"\x37") not in link.sent


async def test_an_image_longer_than_announced_is_an_error_before_the_excess() -> None:
    ecu = FlashEcu(max_block_length=18)
    link, client = await setup(ecu)
    with pytest.raises(ConfigError, match="more than 100 bytes"):
        await client.download(ADDRESS, 100, [image_of(200)])
    assert ecu.received <= 100
    assert not ecu.exited
    assert (ECU, b"\x37") not in link.sent


async def test_a_wrong_block_counter_echo_is_an_error() -> None:
    ecu = FlashEcu(max_block_length=18)
    ecu.wrong_counter_on_block = 3
    _, client = await setup(ecu)
    with pytest.raises(UnexpectedResponse, match="expected 0x03"):
        await client.download(ADDRESS, 160, [image_of(160)])
    assert len(ecu.counters) == 3


async def test_response_pending_during_a_block_is_waited_through() -> None:
    ecu = FlashEcu(max_block_length=18)
    ecu.pending_on_block = 2
    _, client = await setup(ecu)
    image = image_of(160)
    result = await client.download(ADDRESS, len(image), [image])
    assert bytes(ecu.data) == image
    assert result.blocks == 10


async def test_a_negative_answer_to_a_block_stops_the_download() -> None:
    ecu = FlashEcu(max_block_length=18)
    ecu.nrc_on_block = 4
    _, client = await setup(ecu)
    with pytest.raises(NegativeResponse) as caught:
        await client.download(ADDRESS, 160, [image_of(160)])
    assert (caught.value.service, caught.value.nrc) == (0x36, 0x72)
    assert len(ecu.counters) == 4
    assert not ecu.exited


async def test_a_malformed_request_download_answer_is_unexpected() -> None:
    async def odd(target: int, request: bytes) -> AsyncIterator[bytes]:
        yield b"\x74\x00"

    link = MemoryLink(odd)
    await link.open()
    with pytest.raises(UnexpectedResponse, match="RequestDownload"):
        await UdsClient(link, ECU).download(ADDRESS, 4, [b"abcd"])


async def test_no_other_request_to_the_ecu_interleaves_with_a_download() -> None:
    ecu = FlashEcu(max_block_length=18)
    link, client = await setup(ecu)
    image = image_of(16 * 20)
    reader: list[asyncio.Task[bytes]] = []

    async def source() -> AsyncIterator[bytes]:
        for n, chunk in enumerate(chunked(image, [16])):
            if n == 2:  # mid-transfer, someone else wants to talk to the same ECU
                reader.append(asyncio.create_task(client.request(b"\x3e\x00")))
                await asyncio.sleep(0)
            yield chunk

    async def ecu_with_tester_present(target: int, request: bytes) -> AsyncIterator[bytes]:
        if request == b"\x3e\x00":
            yield b"\x7e\x00"
        else:
            async for answer in ecu(target, request):
                yield answer

    link._responder = ecu_with_tester_present
    await client.download(ADDRESS, len(image), source())
    assert await reader[0] == b"\x7e\x00"
    payloads = [p for _, p in link.sent]
    assert payloads.index(b"\x3e\x00") == payloads.index(b"\x37") + 1


async def test_a_64_mib_image_streams_in_bounded_memory() -> None:
    size = 64 * 1024 * 1024
    chunk_size = 100_000  # not a multiple of the block: exercises the rechunker's buffer

    def generate() -> Iterator[bytes]:
        pattern = bytes(range(256)) * (chunk_size // 256 + 1)
        left = size
        n = 0
        while left:
            take = min(chunk_size, left)
            yield bytes((n & 0xFF,)) + pattern[1:take]
            left -= take
            n += 1

    expected_crc = 0
    for chunk in generate():
        expected_crc = zlib.crc32(chunk, expected_crc)
    ecu = FlashEcu(max_block_length=0xFFFF, keep=False)
    _, client = await setup(ecu, ForgetfulLink)
    tracemalloc.start()
    try:
        result = await client.download(ADDRESS, size, generate())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.bytes_sent == ecu.received == size
    assert result.crc32 == ecu.crc == expected_crc
    assert peak < 4 * 1024 * 1024, f"peak {peak / 1024 / 1024:.1f} MiB"
