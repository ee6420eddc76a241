"""The software unit image: a 64-byte ``EWU1`` header, then the payload (DESIGN.md).

What a tester downloads into one flash region (0x34/0x36/0x37) is an image; the ECU reads
its header to learn which unit it now holds (its SVK entry) and checks the payload against
the header's SHA-256 before the unit may become valid. Layout, all integers big-endian:

======  =====  ===================================================================
offset  size   field
======  =====  ===================================================================
0       4      magic ``EWU1``
4       1      process class code (:class:`~ecuworks.wire.sgbm.ProcessClass`)
5       4      unit id
9       3      version main, sub, patch
12      4      payload length in bytes
16      32     SHA-256 of the payload
48      16     reserved, zero
64      ...    payload
======  =====  ===================================================================

Bytes 4-11 are exactly the 8-byte binary SGBM-ID. Images can be hundreds of MiB, so
:class:`ImageVerifier` checks one as it streams past, holding only the header.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from ecuworks.errors import ConfigError, ParseError
from ecuworks.wire.sgbm import SgbmId

__all__ = ["HEADER_SIZE", "MAGIC", "ImageVerifier", "UnitHeader", "build_image"]

MAGIC = b"EWU1"
HEADER_SIZE = 64
_LAYOUT = struct.Struct(">4s8sI32s16s")
_RESERVED = bytes(16)
_MAX_PAYLOAD = 0xFFFF_FFFF
assert _LAYOUT.size == HEADER_SIZE


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitHeader:
    """The header of one unit image.

    Attributes:
        sgbm: the unit the image holds; it enters the ECU's SVK once the image is valid.
        payload_length: length of the payload after the header, in bytes.
        payload_sha256: SHA-256 digest of the payload, 32 bytes.
    """

    sgbm: SgbmId
    payload_length: int
    payload_sha256: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.payload_length <= _MAX_PAYLOAD:
            raise ConfigError(
                f"unit image payload length must fit in 32 bits, got {self.payload_length}"
            )
        if len(self.payload_sha256) != 32:
            raise ConfigError(
                f"unit image payload hash must be a 32-byte SHA-256, "
                f"got {len(self.payload_sha256)} bytes"
            )

    @classmethod
    def for_payload(cls, sgbm: SgbmId, payload: bytes) -> UnitHeader:
        """Return the header that describes ``payload`` as unit ``sgbm``.

        Raises:
            ConfigError: the payload is 4 GiB or larger.
        """
        return cls(
            sgbm=sgbm, payload_length=len(payload), payload_sha256=hashlib.sha256(payload).digest()
        )

    def encode(self) -> bytes:
        """Return the 64-byte header."""
        return _LAYOUT.pack(
            MAGIC, self.sgbm.encode(), self.payload_length, self.payload_sha256, _RESERVED
        )

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> UnitHeader:
        """Decode the header at the start of ``data`` (the header alone or a whole image).

        Raises:
            ParseError: fewer than 64 bytes, wrong magic, an unknown process class, or
                non-zero reserved bytes.
        """
        if len(data) < HEADER_SIZE:
            raise ParseError(
                f"unit image header needs {HEADER_SIZE} bytes, got {len(data)}: "
                "the image is truncated or is no ecuworks unit image"
            )
        magic, sgbm_bytes, length, digest, reserved = _LAYOUT.unpack_from(data)
        if magic != MAGIC:
            raise ParseError(
                f"unit image magic is {magic.hex()}, expected {MAGIC.hex()} ({MAGIC.decode()}): "
                "this is no ecuworks unit image"
            )
        if reserved != _RESERVED:
            raise ParseError(
                f"unit image header bytes 48-63 must be zero, got {reserved.hex()}: "
                "the header is corrupt or of a newer format"
            )
        try:
            sgbm = SgbmId.decode(sgbm_bytes)
        except ParseError as exc:
            raise ParseError(f"unit image header: {exc}") from exc
        return cls(sgbm=sgbm, payload_length=length, payload_sha256=digest)

    @property
    def image_length(self) -> int:
        """Length of the whole image, header included."""
        return HEADER_SIZE + self.payload_length


def build_image(sgbm: SgbmId, payload: bytes) -> bytes:
    """Return the image of ``payload`` as unit ``sgbm``: its header, then the payload.

    Raises:
        ConfigError: the payload is 4 GiB or larger.
    """
    return UnitHeader.for_payload(sgbm, payload).encode() + payload


class ImageVerifier:
    """Check an image as it arrives, in chunks of any size, holding only its header.

    Feed every byte of the image in order; the header is parsed as soon as its 64 bytes are
    in, and the payload is hashed as it passes. Nothing is raised for a bad image: the
    verifier records what is wrong, so that an ECU can go on accepting the transfer and
    refuse the unit at the check that follows, as a real one does.

    Attributes:
        received: bytes fed so far, header included.
    """

    __slots__ = ("_hash", "_head", "_header", "_header_error", "received")

    def __init__(self) -> None:
        self._head = bytearray()
        self._header: UnitHeader | None = None
        self._header_error: ParseError | None = None
        self._hash = hashlib.sha256()
        self.received = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Take the next bytes of the image."""
        self.received += len(data)
        if self._header is None and self._header_error is None:
            needed = HEADER_SIZE - len(self._head)
            self._head += data[:needed]
            data = data[needed:]
            if len(self._head) < HEADER_SIZE:
                return
            try:
                self._header = UnitHeader.parse(bytes(self._head))
            except ParseError as exc:
                self._header_error = exc
        if self._header is not None and data:
            self._hash.update(data)

    @property
    def header(self) -> UnitHeader | None:
        """The image's header once 64 valid header bytes are in, else None."""
        return self._header

    @property
    def header_error(self) -> ParseError | None:
        """Why the first 64 bytes are no unit header, or None."""
        return self._header_error

    @property
    def payload_received(self) -> int:
        """Payload bytes fed so far (bytes after the header)."""
        return max(0, self.received - HEADER_SIZE)

    @property
    def complete(self) -> bool:
        """Whether the header and at least all the payload it announces are in."""
        return self._header is not None and self.payload_received >= self._header.payload_length

    @property
    def valid(self) -> bool:
        """Whether the image is complete, exactly as long as announced, and hashes right."""
        return self.problem is None

    @property
    def problem(self) -> str | None:
        """What is wrong with the image so far, or None when it is valid.

        An image still arriving is not valid yet: the answer says how much is missing.
        """
        if self._header_error is not None:
            return str(self._header_error)
        if self._header is None:
            return f"unit image incomplete: {self.received} of {HEADER_SIZE} header bytes"
        expected = self._header.payload_length
        received = self.payload_received
        if received < expected:
            return f"unit {self._header.sgbm} incomplete: {received} of {expected} payload bytes"
        if received > expected:
            return (
                f"unit {self._header.sgbm} too long: header announces {expected} payload bytes, "
                f"{received} arrived"
            )
        digest = self._hash.digest()
        if digest != self._header.payload_sha256:
            return (
                f"unit {self._header.sgbm} payload SHA-256 is {digest.hex()}, header says "
                f"{self._header.payload_sha256.hex()}: the payload is corrupt or tampered with"
            )
        return None
