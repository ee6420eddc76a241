"""Flash images from Intel HEX, Motorola S-record and raw binary files.

Intel HEX and S-record go through bincopy, which sorts the records by address and merges
adjacent data. A raw binary is never read into memory here: its segment keeps the file's
path and offset and streams the bytes when they are needed, so a 64 MiB image costs no
more than a 64 KiB one until it is sent.
"""

from __future__ import annotations

import hashlib
import itertools
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import bincopy

from ecuworks.errors import ParseError

__all__ = [
    "CHUNK_SIZE",
    "FileSegment",
    "ImageFormat",
    "ImportedImage",
    "Segment",
    "load_image",
    "parse_records",
]

ImageFormat = Literal["auto", "ihex", "srec", "binary"]

CHUNK_SIZE = 64 * 1024
"""Default chunk size for streaming segment data (bytes)."""

_IHEX_SUFFIXES = frozenset({".hex", ".ihex", ".ihx"})
_SREC_SUFFIXES = frozenset({".s19", ".s28", ".s37", ".srec", ".mot"})
_BINARY_SUFFIXES = frozenset({".bin", ".img", ".raw"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """A contiguous run of bytes held in memory, to be written at ``address``."""

    address: int
    data: bytes

    @property
    def length(self) -> int:
        """Number of bytes in the segment."""
        return len(self.data)

    @property
    def end(self) -> int:
        """First address after the segment."""
        return self.address + len(self.data)

    def iter_chunks(self, size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the segment's bytes in pieces of at most ``size`` bytes."""
        _check_chunk_size(size)
        view = memoryview(self.data)
        for start in range(0, len(view), size):
            yield bytes(view[start : start + size])

    def read(self) -> bytes:
        """Return all of the segment's bytes."""
        return self.data


@dataclass(frozen=True, slots=True, kw_only=True)
class FileSegment:
    """A contiguous run of bytes left in a file, read only when streamed."""

    address: int
    path: Path
    offset: int
    length: int

    @property
    def end(self) -> int:
        """First address after the segment."""
        return self.address + self.length

    def iter_chunks(self, size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the segment's bytes from the file in pieces of at most ``size`` bytes.

        Raises:
            ParseError: the file got shorter since it was imported.
        """
        _check_chunk_size(size)
        remaining = self.length
        with self.path.open("rb") as f:
            f.seek(self.offset)
            while remaining:
                chunk = f.read(min(size, remaining))
                if not chunk:
                    raise ParseError(
                        f"{self.path}: file ended {remaining} bytes early; it changed after "
                        "it was imported, import it again"
                    )
                remaining -= len(chunk)
                yield chunk

    def read(self) -> bytes:
        """Return all of the segment's bytes (loads them into memory)."""
        return b"".join(self.iter_chunks())


AnySegment = Segment | FileSegment


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportedImage:
    """An image ready to flash: segments sorted by address, none overlapping.

    Raises:
        ParseError: segments out of address order or overlapping.
    """

    segments: tuple[AnySegment, ...]
    source: str

    def __post_init__(self) -> None:
        check_segments(self.segments, self.source)

    @property
    def total_size(self) -> int:
        """Sum of the segment lengths (gaps not counted)."""
        return sum(s.length for s in self.segments)

    def iter_chunks(self, size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Yield all segment data, in address order, in pieces of at most ``size`` bytes."""
        for segment in self.segments:
            yield from segment.iter_chunks(size)

    def sha256(self) -> str:
        """Hex SHA-256 over the concatenated segment data in address order (gaps skipped)."""
        digest = hashlib.sha256()
        for chunk in self.iter_chunks():
            digest.update(chunk)
        return digest.hexdigest()

    def crc32(self) -> int:
        """CRC-32 (ISO-HDLC, as zlib) over the concatenated segment data in address order."""
        crc = 0
        for chunk in self.iter_chunks():
            crc = zlib.crc32(chunk, crc)
        return crc


def check_segments(segments: tuple[AnySegment, ...], source: str) -> None:
    """Raise ParseError unless ``segments`` are sorted by address and do not overlap."""
    for before, after in itertools.pairwise(segments):
        if after.address < before.end:
            raise ParseError(
                f"{source}: segment at 0x{after.address:08X} overlaps or precedes the one at "
                f"0x{before.address:08X}..0x{before.end - 1:08X}; each address may be written "
                "once, in ascending order"
            )


def load_image(path: Path, *, format: ImageFormat = "auto", base_address: int = 0) -> ImportedImage:
    """Import a flash image file.

    Args:
        path: Intel HEX, Motorola S-record or raw binary file.
        format: the file's format; ``auto`` decides by extension, then by content.
        base_address: where a raw binary starts in ECU memory (ignored for HEX/S-record,
            which carry their own addresses).

    Returns:
        The image, segments sorted by address and adjacent data merged.

    Raises:
        ParseError: the file cannot be read, its format cannot be told, a record is
            malformed, or records overlap; the message names the file and the line.
    """
    source = str(path)
    try:
        if format == "auto":
            format = _detect_format(path)
        if format == "binary":
            return _load_binary(path, base_address=base_address)
        raw = path.read_bytes()
    except OSError as exc:
        raise ParseError(f"{source}: cannot read the image: {exc.strerror or exc}") from exc
    return ImportedImage(segments=parse_records(raw, format=format, source=source), source=source)


def parse_records(
    raw: bytes, *, format: Literal["ihex", "srec"], source: str
) -> tuple[Segment, ...]:
    """Decode Intel HEX or S-record text into segments sorted by address, adjacent merged.

    Raises:
        ParseError: malformed or overlapping records, or no data at all; names ``source``
            and the first offending line.
    """
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ParseError(
            f"{source}: not {_format_name(format)} text (byte 0x{raw[exc.start]:02X} at "
            f"offset {exc.start}); give the right format"
        ) from exc
    binfile = bincopy.BinFile()
    add = binfile.add_ihex if format == "ihex" else binfile.add_srec
    try:
        add(text)
    except bincopy.Error as exc:
        line = _first_failing_line(text, format)
        what = "records overlap" if isinstance(exc, bincopy.AddDataError) else str(exc)
        raise ParseError(f"{source}, line {line}: {what}; fix or regenerate the file") from exc
    segments = tuple(
        Segment(address=s.minimum_address, data=bytes(s.data)) for s in binfile.segments
    )
    if not segments:
        raise ParseError(f"{source}: no data records in this {_format_name(format)} file")
    return segments


def _first_failing_line(text: str, format: Literal["ihex", "srec"]) -> int:
    """Find the first line whose record makes bincopy fail, by bisecting on prefixes.

    bincopy reports no line numbers; it parses in order, so a prefix fails if and only if it
    contains the first bad line. Run only when an error already happened.
    """
    lines = text.splitlines(keepends=True)

    def fails(count: int) -> bool:
        binfile = bincopy.BinFile()
        add = binfile.add_ihex if format == "ihex" else binfile.add_srec
        try:
            add("".join(lines[:count]))
        except bincopy.Error:
            return True
        return False

    low, high = 1, len(lines)
    while low < high:
        mid = (low + high) // 2
        if fails(mid):
            high = mid
        else:
            low = mid + 1
    return low


def _load_binary(path: Path, *, base_address: int) -> ImportedImage:
    size = path.stat().st_size
    if size == 0:
        raise ParseError(f"{path}: the binary image is empty")
    if base_address < 0:
        raise ParseError(f"{path}: base address {base_address} is negative")
    segment = FileSegment(address=base_address, path=path.resolve(), offset=0, length=size)
    return ImportedImage(segments=(segment,), source=str(path))


def _detect_format(path: Path) -> Literal["ihex", "srec", "binary"]:
    suffix = path.suffix.lower()
    if suffix in _IHEX_SUFFIXES:
        return "ihex"
    if suffix in _SREC_SUFFIXES:
        return "srec"
    if suffix in _BINARY_SUFFIXES:
        return "binary"
    with path.open("rb") as f:
        head = f.read(256).lstrip()
    if head[:1] == b":":
        return "ihex"
    if head[:1] == b"S" and head[1:2].isdigit():
        return "srec"
    raise ParseError(
        f"{path}: cannot tell the image format from the name or the content; "
        "give the format (ihex, srec or binary) explicitly"
    )


def _format_name(format: Literal["ihex", "srec"]) -> str:
    return "Intel HEX" if format == "ihex" else "Motorola S-record"


def _check_chunk_size(size: int) -> None:
    if size <= 0:
        raise ValueError(f"chunk size must be positive, not {size}")
