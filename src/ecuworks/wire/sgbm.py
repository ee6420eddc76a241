"""SGBM-ID: the name of one software or hardware unit, and the SVK that lists them.

Text form (the trade's): ``CLASS-XXXXXXXX-MMM.mmm.ppp``, e.g. ``SWFL-0000ABCD-001.002.003``:
the process class, the unit id as 8 hex digits, and the version as main, sub and patch, each
three decimal digits 000-255. Parsing accepts lower case; ``str()`` gives upper case.

Binary form (8 bytes, as inside an SVK record and in a unit image header): process class
code (1 byte), unit id (4 bytes, big-endian), main, sub, patch (1 byte each).

SVK (DID 0xF101) in this project: a 1-byte unit count, then that many 8-byte SGBM-IDs, and
nothing else. (The trade's SVK record carries more, such as a programming date and a
fingerprint; ecuworks keeps to the units, which is what the measures plan needs.)
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from ecuworks.errors import ConfigError, ParseError

__all__ = ["ProcessClass", "SgbmId", "encode_svk", "parse_svk"]


class ProcessClass(IntEnum):
    """Kind of unit, with the code used in the binary form.

    Only the classes in DOMAIN.md's table; others exist in the trade and are added when a
    vehicle needs them (an unknown code does not decode).
    """

    HWEL = 1  # hardware
    HWAP = 2  # hardware application
    HWFR = 3
    GWTB = 4  # gateway table
    CAFD = 5  # coding data
    BTLD = 6  # bootloader
    FLSL = 7  # flash loader
    SWFL = 8  # application software
    SWFF = 9
    SWPF = 10
    ONPS = 11
    IBAD = 12  # operating manual data
    SWFK = 13  # software function
    FAFP = 15


_EXAMPLE = "SWFL-0000ABCD-001.002.003"
_BINARY = struct.Struct(">BIBBB")
_UNIT_ID = re.compile(r"[0-9A-Fa-f]{8}")
_VERSION = re.compile(r"([0-9]{3})\.([0-9]{3})\.([0-9]{3})")
_KNOWN = ", ".join(c.name for c in ProcessClass)


def _quoted(text: str) -> str:
    """Return ``text`` quoted for an error message, cut short if long."""
    return repr(text if len(text) <= 40 else text[:40] + "...")


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class SgbmId:
    """One unit: process class, unit id and version.

    Ordered by class, then unit id, then version, so that sorting an SVK groups the
    versions of one unit together, oldest first.

    Attributes:
        process_class: the kind of unit.
        unit_id: 32-bit unit identifier.
        main: main version, 0-255.
        sub: sub version, 0-255.
        patch: patch version, 0-255.
    """

    process_class: ProcessClass
    unit_id: int
    main: int
    sub: int
    patch: int

    def __post_init__(self) -> None:
        if not isinstance(self.process_class, ProcessClass):
            raise ConfigError(f"process class must be a ProcessClass, got {self.process_class!r}")
        if not 0 <= self.unit_id <= 0xFFFF_FFFF:
            raise ConfigError(f"SGBM unit id must fit in 32 bits, got {self.unit_id}")
        for part in (self.main, self.sub, self.patch):
            if not 0 <= part <= 255:
                raise ConfigError(f"SGBM version parts must be 0-255, got {self.version}")

    @classmethod
    def parse(cls, text: str) -> SgbmId:
        """Parse ``CLASS-XXXXXXXX-MMM.mmm.ppp``.

        Raises:
            ParseError: the text is not of that shape; the message says which part is wrong.
        """
        where = f"SGBM-ID {_quoted(text)}"
        parts = text.split("-")
        # ASCII first: str.upper() maps some non-ASCII letters onto ASCII ones.
        if not text.isascii() or len(parts) != 3:
            raise ParseError(f"{where}: expected CLASS-XXXXXXXX-MMM.mmm.ppp, as in {_EXAMPLE}")
        class_text, unit_text, version_text = parts
        try:
            process_class = ProcessClass[class_text.upper()]
        except KeyError:
            raise ParseError(
                f"{where}: unknown process class {_quoted(class_text)} (known: {_KNOWN})"
            ) from None
        if not _UNIT_ID.fullmatch(unit_text):
            raise ParseError(f"{where}: unit id must be 8 hex digits, as in {_EXAMPLE}")
        version = _VERSION.fullmatch(version_text)
        if version is None:
            raise ParseError(
                f"{where}: version must be three 3-digit numbers MMM.mmm.ppp, as in {_EXAMPLE}"
            )
        main, sub, patch = (int(v) for v in version.groups())
        if max(main, sub, patch) > 255:
            raise ParseError(f"{where}: version parts must be 000-255")
        return cls(
            process_class=process_class, unit_id=int(unit_text, 16), main=main, sub=sub, patch=patch
        )

    def __str__(self) -> str:
        return (
            f"{self.process_class.name}-{self.unit_id:08X}-"
            f"{self.main:03d}.{self.sub:03d}.{self.patch:03d}"
        )

    def encode(self) -> bytes:
        """Return the 8-byte binary form."""
        return _BINARY.pack(self.process_class, self.unit_id, self.main, self.sub, self.patch)

    @classmethod
    def decode(cls, data: bytes) -> SgbmId:
        """Decode the 8-byte binary form.

        Raises:
            ParseError: ``data`` is not 8 bytes or names an unknown process class.
        """
        if len(data) != _BINARY.size:
            raise ParseError(f"binary SGBM-ID must be 8 bytes, got {len(data)}")
        code, unit_id, main, sub, patch = _BINARY.unpack(data)
        try:
            process_class = ProcessClass(code)
        except ValueError:
            raise ParseError(
                f"binary SGBM-ID {data.hex()}: unknown process class code {code}"
            ) from None
        return cls(process_class=process_class, unit_id=unit_id, main=main, sub=sub, patch=patch)

    @property
    def version(self) -> tuple[int, int, int]:
        """``(main, sub, patch)``, comparable as a tuple."""
        return (self.main, self.sub, self.patch)

    def same_unit(self, other: SgbmId) -> bool:
        """Tell whether ``other`` is the same unit (class and id), whatever its version."""
        return self.process_class == other.process_class and self.unit_id == other.unit_id


def parse_svk(data: bytes) -> list[SgbmId]:
    """Decode a DID 0xF101 payload: a count byte, then ``count`` 8-byte SGBM-IDs.

    Raises:
        ParseError: empty, the length does not match the count, or an entry is invalid.
    """
    if not data:
        raise ParseError("SVK is empty: expected a count byte and 8 bytes per unit")
    count = data[0]
    if len(data) != 1 + 8 * count:
        raise ParseError(
            f"SVK says {count} unit(s), which needs {1 + 8 * count} bytes, got {len(data)}"
        )
    units = []
    for i in range(count):
        entry = data[1 + 8 * i : 9 + 8 * i]
        try:
            units.append(SgbmId.decode(entry))
        except ParseError as exc:
            raise ParseError(f"SVK entry {i + 1} of {count}: {exc}") from exc
    return units


def encode_svk(units: Iterable[SgbmId]) -> bytes:
    """Encode SGBM-IDs as a DID 0xF101 payload, in the order given.

    Raises:
        ConfigError: more than 255 units, which the count byte cannot hold.
    """
    entries = [unit.encode() for unit in units]
    if len(entries) > 255:
        raise ConfigError(f"an SVK holds at most 255 units, got {len(entries)}")
    return bytes((len(entries),)) + b"".join(entries)
