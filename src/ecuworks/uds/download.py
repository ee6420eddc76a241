"""Download an image into an ECU: RequestDownload, TransferData, RequestTransferExit.

ISO 14229-1, upload/download functional unit: RequestDownload (0x34), TransferData
(0x36) and RequestTransferExit (0x37). ``34 DFI ALFID address size``
opens the transfer and the ECU answers the largest TransferData request it accepts
(maxNumberOfBlockLength); then every ``36 <counter> <block>`` is answered ``76 <counter>``;
``37`` closes it. The image streams from any iterable of chunks, sync or async, and is
never held whole in memory: :class:`Rechunker` turns chunks into blocks, and the CRC-32 the
check-memory routine (0202) needs is computed on the way.

TransferData is the hot path of a flash: per block it does one concatenation, one send, one
receive and a two-byte check, and goes through the general answer handling (NRC, response
pending) only when the answer is not the expected ``76 <counter>``.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ecuworks.errors import ConfigError, LinkTimeout, ParseError, UnexpectedResponse
from ecuworks.wire.uds import decode_max_block_length, encode_memory_location

if TYPE_CHECKING:
    from ecuworks.uds.client import UdsClient

__all__ = [
    "DownloadResult",
    "Rechunker",
    "block_payload_size",
    "download",
    "next_counter",
]

Block = bytes | memoryview
"""A block of image data: a copy, or a zero-copy slice of the chunk it came from."""

# ISO 14229-1, TransferData: the first TransferData after RequestDownload carries block
# sequence counter 0x01; it counts up and wraps from 0xFF to 0x00.
FIRST_COUNTER = 0x01
_TRANSFER_DATA = 0x36
_TRANSFER_DATA_ANSWER = 0x76
# Precomputed "36 cc" headers: the per-block request is one concatenation.
_HEADERS = tuple(bytes((_TRANSFER_DATA, c)) for c in range(256))


@dataclass(frozen=True, slots=True, kw_only=True)
class DownloadResult:
    """What a finished download transferred.

    Attributes:
        bytes_sent: image bytes transferred (equals the announced size).
        blocks: TransferData requests sent.
        crc32: CRC-32 (IEEE, as ``zlib.crc32``) of every byte transferred; routine 0202
            (check memory) takes it big-endian.
        max_block_length: maxNumberOfBlockLength the ECU announced.
    """

    bytes_sent: int
    blocks: int
    crc32: int
    max_block_length: int


def block_payload_size(max_block_length: int) -> int:
    """Return the image bytes per TransferData request.

    maxNumberOfBlockLength counts the whole request, service id and block counter included
    (ISO 14229-1, RequestDownload positive response), so each block carries two
    bytes less.

    Raises:
        ConfigError: ``max_block_length`` leaves no room for data.
    """
    if max_block_length < 3:
        raise ConfigError(f"maxNumberOfBlockLength {max_block_length} leaves no room for data")
    return max_block_length - 2


def next_counter(counter: int) -> int:
    """Return the block sequence counter after ``counter``: 0xFF wraps to 0x00 (ISO 14229-1)."""
    return (counter + 1) & 0xFF


class Rechunker:
    """Cuts a stream of arbitrary-size chunks into blocks of exactly ``block_size`` bytes.

    Only the last block may be shorter. Blocks that lie inside one chunk are zero-copy
    ``memoryview`` slices of it; only a block that spans chunks is copied. At most one
    partial block is buffered, so memory stays at one block plus the chunk being cut.

    Iterate each :meth:`feed` to the end before the next, and call :meth:`flush` at the
    end of the stream for the short last block.

    Args:
        block_size: bytes per block, >= 1.
    """

    __slots__ = ("_buffer", "block_size")

    def __init__(self, block_size: int) -> None:
        if block_size < 1:
            raise ConfigError(f"block size must be at least 1, got {block_size}")
        self.block_size = block_size
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes buffered for the next block."""
        return len(self._buffer)

    def feed(self, chunk: bytes | bytearray | memoryview) -> Iterator[Block]:
        """Yield every complete block that ``chunk`` completes."""
        view = memoryview(chunk)
        if view.itemsize != 1 or view.ndim != 1:
            view = view.cast("B")
        n = self.block_size
        buffer = self._buffer
        start = 0
        total = len(view)
        if buffer:
            need = n - len(buffer)
            if total < need:
                buffer += view
                return
            buffer += view[:need]
            start = need
            block = bytes(buffer)
            buffer.clear()
            yield block
        while total - start >= n:
            yield view[start : start + n]
            start += n
        if start < total:
            buffer += view[start:]

    def flush(self) -> bytes | None:
        """Return the short last block, if any bytes are left."""
        if not self._buffer:
            return None
        block = bytes(self._buffer)
        self._buffer.clear()
        return block


class _Transfer:
    """The TransferData loop's state; the caller holds ``link.lock(target)``."""

    __slots__ = ("blocks", "client", "counter", "crc", "limit", "progress", "sent", "total")

    def __init__(
        self,
        client: UdsClient,
        limit: int | None,
        total: int,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.client = client
        self.limit = limit  # bytes that may be transferred, when known
        self.total = total  # what progress counts towards
        self.progress = progress
        self.counter = FIRST_COUNTER
        self.sent = 0
        self.blocks = 0
        self.crc = 0

    async def send(self, block: Block) -> None:
        """Transfer one block and check its ``76 <counter>`` answer."""
        sent = self.sent + len(block)
        if self.limit is not None and sent > self.limit:
            raise ConfigError(
                f"the image has more than {self.limit} bytes, but the download announced "
                f"{self.limit}; nothing past byte {self.limit} was sent"
            )
        client = self.client
        link = client.link
        target = client.target
        counter = self.counter
        await link.send(target, _HEADERS[counter] + block)
        # The ECU works on the block while we compute the CRC.
        self.crc = zlib.crc32(block, self.crc)
        try:
            answer = await link.receive(target, client.timing.p2)
        except LinkTimeout as exc:
            raise LinkTimeout(
                f"ECU 0x{target:02X} did not answer TransferData block {self.blocks + 1} "
                f"(counter 0x{counter:02X}) within {client.timing.p2:g} s"
            ) from exc
        if len(answer) < 2 or answer[0] != _TRANSFER_DATA_ANSWER or answer[1] != counter:
            # NRC, response pending, a stray answer, or a wrong counter: the general path.
            answer = await client._await_response(_TRANSFER_DATA, first=answer)
            if len(answer) < 2 or answer[1] != counter:
                echoed = f"0x{answer[1]:02X}" if len(answer) >= 2 else "none"
                raise UnexpectedResponse(
                    f"ECU 0x{target:02X} acknowledged TransferData block counter {echoed}, "
                    f"expected 0x{counter:02X}"
                )
        self.sent = sent
        self.blocks += 1
        self.counter = (counter + 1) & 0xFF
        if self.progress is not None:
            self.progress(sent, self.total)


async def download(
    client: UdsClient,
    address: int,
    size: int,
    chunks: Iterable[bytes] | AsyncIterable[bytes],
    *,
    data_format: int = 0x00,
    memory_format: tuple[int, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    transfer_size: int | None = None,
) -> DownloadResult:
    """Download ``size`` bytes from ``chunks`` to ``address`` in the ECU.

    The link's lock for the ECU is held from RequestDownload to RequestTransferExit, so no
    other request to that ECU interleaves with the transfer.

    Args:
        client: the client of the ECU (in the programming session, unlocked).
        address: memory address to download to.
        size: memorySize announced in RequestDownload: the bytes the image takes in the
            ECU's memory, i.e. UNCOMPRESSED (ISO 14229-1: the server compares the
            uncompressed memory size with what it received).
        chunks: the data to transfer (compressed when ``data_format`` says so), in
            chunks of any size (bytes-like), sync or async.
        data_format: dataFormatIdentifier: high nibble compression method, low nibble
            encryption method; 0x00 is neither.
        transfer_size: bytes ``chunks`` yields. Defaults to ``size`` for plain data; for
            compressed or encrypted data, give it to have the length checked here (the
            ECU checks the memory size itself).
        memory_format: ``(address bytes, size bytes)`` widths for the ALFID; by default the
            fewest bytes that hold each value.
        progress: called with ``(bytes sent, size)`` after every block.

    Returns:
        Bytes and blocks sent, their CRC-32, and the ECU's maxNumberOfBlockLength.

    Raises:
        ConfigError: the image is longer or shorter than ``size`` (the transfer is not
            exited then), or a parameter cannot be encoded.
        NegativeResponse: the ECU refused a request.
        UnexpectedResponse: a malformed answer, or a wrong block counter echoed.
        LinkError: the link failed or an answer did not come in time.
    """
    if not 0 <= data_format <= 0xFF:
        raise ConfigError(f"dataFormatIdentifier must be one byte, got 0x{data_format:X}")
    address_bytes, size_bytes = memory_format if memory_format is not None else (None, None)
    request = bytes((0x34, data_format)) + encode_memory_location(
        address, size, address_bytes=address_bytes, size_bytes=size_bytes
    )
    async with client.link.lock(client.target):
        answer = await client._exchange(request)
        try:
            max_block_length = decode_max_block_length(answer)
        except ParseError as exc:
            raise UnexpectedResponse(
                f"ECU 0x{client.target:02X} answered RequestDownload with a malformed "
                f"response: {exc}"
            ) from exc
        rechunker = Rechunker(block_payload_size(max_block_length))
        if transfer_size is None and data_format == 0x00:
            transfer_size = size
        transfer = _Transfer(client, transfer_size, transfer_size or size, progress)
        if isinstance(chunks, AsyncIterable):
            async for chunk in chunks:
                for block in rechunker.feed(chunk):
                    await transfer.send(block)
        else:
            for chunk in chunks:
                for block in rechunker.feed(chunk):
                    await transfer.send(block)
        last = rechunker.flush()
        if last is not None:
            await transfer.send(last)
        if transfer_size is not None and transfer.sent != transfer_size:
            raise ConfigError(
                f"the image has {transfer.sent} bytes but the download announced "
                f"{transfer_size}; the transfer was not exited, start the download again"
            )
        await client._exchange(b"\x37")
    return DownloadResult(
        bytes_sent=transfer.sent,
        blocks=transfer.blocks,
        crc32=transfer.crc,
        max_block_length=max_block_length,
    )
