"""I-level (I-Stufe): the integration level, a tested whole-vehicle software release.

Text form ``SSSS-YY-MM-NNN``, e.g. ``F020-24-07-550``: the series (3 or 4 characters, a letter
then letters or digits), the year (2 digits), the month (01-12) and the build (3 digits).
Parsing accepts lower case; ``str()`` gives upper case.

I-levels compare only within one series: ``F020-24-07-550 < F020-24-11-520`` is true, and
comparing an F020 I-level with a G020 one raises :class:`TypeError`, because "later" has no
meaning across series and a silent answer would let a plan target another car's software.

The gateway keeps three of them, the :class:`ILevelTriple` (current, last, shipment). Its
DID record in this project is three fixed-width ASCII fields of 14 bytes each, in that
order, each the text form padded on the right with spaces (a 3-character series gives a
13-character I-level, hence one pad byte): 42 bytes in all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ecuworks.errors import ConfigError, ParseError

__all__ = ["ILevel", "ILevelTriple"]

_EXAMPLE = "F020-24-07-550"
_SERIES = re.compile(r"[A-Z][A-Z0-9]{2,3}")
_SHAPE = re.compile(r"([A-Za-z0-9]+)-([0-9]{2})-([0-9]{2})-([0-9]{3})")
_FIELD_WIDTH = 14


def _quoted(text: str) -> str:
    """Return ``text`` quoted for an error message, cut short if long."""
    return repr(text if len(text) <= 40 else text[:40] + "...")


@dataclass(frozen=True, slots=True, kw_only=True)
class ILevel:
    """One integration level.

    Attributes:
        series: vehicle series, upper case, e.g. ``"F020"``.
        year: two-digit year, 0-99.
        month: 1-12.
        build: build number, 0-999.
    """

    series: str
    year: int
    month: int
    build: int

    def __post_init__(self) -> None:
        if not (self.series.isascii() and _SERIES.fullmatch(self.series)):
            raise ConfigError(
                f"I-level series must be 3-4 upper-case letters or digits starting with a "
                f"letter, got {self.series!r}"
            )
        if not (0 <= self.year <= 99 and 1 <= self.month <= 12 and 0 <= self.build <= 999):
            raise ConfigError(
                f"I-level needs year 0-99, month 1-12, build 0-999, got "
                f"{self.year}, {self.month}, {self.build}"
            )

    @classmethod
    def parse(cls, text: str) -> ILevel:
        """Parse ``SSSS-YY-MM-NNN``.

        Raises:
            ParseError: the text is not of that shape; the message says which part is wrong.
        """
        where = f"I-level {_quoted(text)}"
        match = _SHAPE.fullmatch(text) if text.isascii() else None
        if match is None:
            raise ParseError(f"{where}: expected SSSS-YY-MM-NNN, as in {_EXAMPLE}")
        series = match[1].upper()
        if not _SERIES.fullmatch(series):
            raise ParseError(
                f"{where}: series must be 3-4 letters or digits starting with a letter, "
                f"as in {_EXAMPLE}"
            )
        month = int(match[3])
        if not 1 <= month <= 12:
            raise ParseError(f"{where}: month must be 01-12, got {match[3]}")
        return cls(series=series, year=int(match[2]), month=month, build=int(match[4]))

    def __str__(self) -> str:
        return f"{self.series}-{self.year:02d}-{self.month:02d}-{self.build:03d}"

    @property
    def sort_key(self) -> tuple[int, int, int]:
        """``(year, month, build)``: the order within one series."""
        return (self.year, self.month, self.build)

    def _key_against(self, other: ILevel) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """Return both sort keys, or raise TypeError if the series differ."""
        if self.series != other.series:
            raise TypeError(
                f"cannot order I-levels of different series: {self} and {other} "
                "(compare within one series, or sort by (series, sort_key))"
            )
        return self.sort_key, other.sort_key

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, ILevel):
            return NotImplemented
        mine, theirs = self._key_against(other)
        return mine < theirs

    def __le__(self, other: object) -> bool:
        if not isinstance(other, ILevel):
            return NotImplemented
        mine, theirs = self._key_against(other)
        return mine <= theirs

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, ILevel):
            return NotImplemented
        mine, theirs = self._key_against(other)
        return mine > theirs

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, ILevel):
            return NotImplemented
        mine, theirs = self._key_against(other)
        return mine >= theirs


@dataclass(frozen=True, slots=True, kw_only=True)
class ILevelTriple:
    """The three I-levels kept in the gateway.

    Attributes:
        current: the I-level the vehicle has now.
        last: the I-level before the last programming.
        shipment: the I-level the vehicle left the factory with.
    """

    current: ILevel
    last: ILevel
    shipment: ILevel

    def encode(self) -> bytes:
        """Return the 42-byte record: three 14-byte space-padded ASCII fields."""
        return b"".join(
            str(level).encode("ascii").ljust(_FIELD_WIDTH, b" ")
            for level in (self.current, self.last, self.shipment)
        )

    @classmethod
    def decode(cls, data: bytes) -> ILevelTriple:
        """Decode the 42-byte record.

        Raises:
            ParseError: not 42 bytes, or a field is not an I-level padded with spaces; the
                message names the field.
        """
        if len(data) != 3 * _FIELD_WIDTH:
            raise ParseError(
                f"I-level triple must be {3 * _FIELD_WIDTH} bytes (3 fields of {_FIELD_WIDTH}), "
                f"got {len(data)}"
            )
        levels = []
        for i, name in enumerate(("current", "last", "shipment")):
            field = data[i * _FIELD_WIDTH : (i + 1) * _FIELD_WIDTH]
            try:
                text = field.rstrip(b" ").decode("ascii")
            except UnicodeDecodeError:
                raise ParseError(
                    f"I-level triple, {name} field {field.hex()}: not ASCII text"
                ) from None
            try:
                levels.append(ILevel.parse(text))
            except ParseError as exc:
                raise ParseError(f"I-level triple, {name} field: {exc}") from exc
        current, last, shipment = levels
        return cls(current=current, last=last, shipment=shipment)
