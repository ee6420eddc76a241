"""One download into one flash region, as the ECU's bootloader sees it (sans-I/O).

A :class:`Download` lives from RequestDownload (0x34) to RequestTransferExit (0x37). It
takes each TransferData (0x36) block, decompresses it when the dataFormatIdentifier asks
for it, and checks the image as it streams past with
:class:`~ecuworks.wire.unit_image.ImageVerifier`; it keeps only counters and hashes, never
the image, so a simulated head unit can take hundreds of MiB.

Decisions:

* **dataFormatIdentifier** (ISO 14229-1 RequestDownload): high nibble = compression method,
  low nibble = encryption method, 0x00 = neither. Here 0x0_ is raw and 0x1_ is zlib (RFC
  1950, one stream for the whole image); any encryption nibble, or another compression, is
  refused (NRC 0x31 requestOutOfRange).
* **memorySize is the uncompressed size.** ISO 14229-1 has the server use memorySize "to
  compare the uncompressed memory size with the total amount of data transferred", i.e. it
  is what lands in flash, not what crosses the wire. So it is checked against the region's
  size, a download is :attr:`Download.complete` when that many bytes came out of the
  decompressor (and, for zlib, the stream ended), and any byte beyond it is refused with NRC
  0x71 transferDataSuspended.
* **CRC-32 of what was transferred**: :attr:`Download.crc32` covers the bytes as they
  crossed the wire (compressed, when compressed), which is what the tester has at hand for
  routine 0202 (DESIGN.md).
* A unit becomes valid only if the image is complete, exactly as long as its header says,
  its payload hashes to the header's SHA-256, and its process class is the region's.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from ecuworks.errors import EcuworksError
from ecuworks.sim.state import RegionState
from ecuworks.wire.uds import Nrc
from ecuworks.wire.unit_image import ImageVerifier

__all__ = [
    "COMPRESSION_NONE",
    "COMPRESSION_ZLIB",
    "Download",
    "DownloadError",
    "DownloadResult",
]

COMPRESSION_NONE = 0x0
COMPRESSION_ZLIB = 0x1


class DownloadError(EcuworksError):
    """The ECU refuses a download or one of its blocks.

    Attributes:
        nrc: the negative response code the ECU answers with.
    """

    def __init__(self, message: str, *, nrc: Nrc) -> None:
        super().__init__(message)
        self.nrc = nrc


@dataclass(frozen=True, slots=True, kw_only=True)
class DownloadResult:
    """What the region holds after the download.

    Attributes:
        unit: SGBM-ID text from the image header, or None when no header could be read.
        valid: whether the unit is complete and verified.
        problem: why it is not valid, or None.
    """

    unit: str | None
    valid: bool
    problem: str | None


class Download:
    """One download into one region.

    Args:
        region: the region being written; it must have been erased (the caller checks).
        address: memoryAddress from the 0x34 request.
        size: memorySize from the 0x34 request: the uncompressed image size.
        data_format: dataFormatIdentifier from the 0x34 request.

    Raises:
        DownloadError: NRC 0x31 when the address is not the region's start, the size is 0
            or larger than the region, or the data format is not raw or zlib.
    """

    __slots__ = (
        "_crc",
        "_inflate",
        "_verifier",
        "address",
        "compression",
        "region",
        "size",
        "transferred",
        "written",
    )

    def __init__(self, region: RegionState, address: int, size: int, data_format: int) -> None:
        if address != region.address:
            raise DownloadError(
                f"download must start at the region's start 0x{region.address:X}, "
                f"got 0x{address:X}",
                nrc=Nrc.REQUEST_OUT_OF_RANGE,
            )
        if not 0 < size <= region.size:
            raise DownloadError(
                f"download of {size} bytes does not fit the {region.process_class} region "
                f"of {region.size} bytes",
                nrc=Nrc.REQUEST_OUT_OF_RANGE,
            )
        compression, encryption = data_format >> 4, data_format & 0x0F
        if encryption != 0 or compression not in (COMPRESSION_NONE, COMPRESSION_ZLIB):
            raise DownloadError(
                f"dataFormatIdentifier 0x{data_format:02X} not supported: "
                "0x00 (raw) or 0x10 (zlib)",
                nrc=Nrc.REQUEST_OUT_OF_RANGE,
            )
        self.region = region
        self.address = address
        self.size = size
        self.compression = compression
        self.transferred = 0
        self.written = 0
        self._crc = 0
        self._verifier = ImageVerifier()
        self._inflate = zlib.decompressobj() if compression == COMPRESSION_ZLIB else None

    @property
    def crc32(self) -> int:
        """IEEE CRC-32 of every byte transferred so far, as transferred."""
        return self._crc

    @property
    def complete(self) -> bool:
        """Whether the announced memorySize has been written (and a zlib stream ended)."""
        if self.written != self.size:
            return False
        return self._inflate is None or self._inflate.eof

    def feed(self, block: bytes) -> int:
        """Take the data of one TransferData request.

        Args:
            block: the bytes after SID and block sequence counter.

        Returns:
            Bytes written to flash (decompressed), which set the write time.

        Raises:
            DownloadError: NRC 0x71 transferDataSuspended when the data goes beyond the
                announced size; NRC 0x72 generalProgrammingFailure when the compressed
                stream is corrupt. Either ends the download.
        """
        if self._inflate is None:
            if self.written + len(block) > self.size:
                raise self._too_much(self.written + len(block))
            data = block
        else:
            data = self._decompress(block)
        self.transferred += len(block)
        self._crc = zlib.crc32(block, self._crc)
        self.written += len(data)
        self._verifier.feed(data)
        return len(data)

    def _decompress(self, block: bytes) -> bytes:
        """Inflate one block, refusing output beyond the announced size."""
        assert self._inflate is not None
        if self._inflate.eof and block:
            raise self._too_much(self.written + 1, after_end=True)
        remaining = self.size - self.written
        try:
            # Bounded, so a compression bomb cannot fill memory: one byte past the end is
            # enough to know that the data is too long.
            data = self._inflate.decompress(block, remaining + 1)
        except zlib.error as exc:
            raise DownloadError(
                f"compressed data is corrupt after {self.transferred} bytes: {exc}",
                nrc=Nrc.GENERAL_PROGRAMMING_FAILURE,
            ) from exc
        if len(data) > remaining or self._inflate.unconsumed_tail:
            raise self._too_much(self.written + len(data))
        if self._inflate.eof and self._inflate.unused_data:
            raise self._too_much(self.written + len(data), after_end=True)
        return data

    def _too_much(self, total: int, *, after_end: bool = False) -> DownloadError:
        """Return the error for data beyond the announced memorySize."""
        what = "data after the end of the compressed stream" if after_end else f"{total} bytes"
        return DownloadError(
            f"{what}: more than the {self.size} bytes announced in RequestDownload",
            nrc=Nrc.TRANSFER_DATA_SUSPENDED,
        )

    @property
    def result(self) -> DownloadResult:
        """What the region would hold if the download ended now."""
        header = self._verifier.header
        unit = str(header.sgbm) if header is not None else None
        problem: str | None
        if not self.complete:
            problem = f"download incomplete: {self.written} of {self.size} bytes written"
        else:
            problem = self._verifier.problem
        if (
            problem is None
            and header is not None
            and header.sgbm.process_class.name != self.region.process_class
        ):
            problem = (
                f"unit {header.sgbm} is no {self.region.process_class} and cannot go into "
                f"the {self.region.process_class} region at 0x{self.region.address:X}"
            )
        return DownloadResult(unit=unit, valid=problem is None, problem=problem)
