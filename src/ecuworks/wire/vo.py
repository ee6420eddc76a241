"""Vehicle order (FA / VO): what the vehicle was built with.

ecuworks' canonical text form, modelled on the trade's FA stream, with a separator in front
of every field so that it reads without a schema::

    TTTT#MMYY*PAINT%UPHO&$OPT$OPT...-EWRD...+HOWD...
    5A31#0724*A96%LCSW&$1CA$205$609-E11A+HW01

* ``TTTT`` type key: 4 letters or digits;
* ``#MMYY`` time criterion (build month and year): 4 digits, month 01-12;
* ``*PAINT`` paint code and ``%UPHO`` upholstery code: 3-4 letters or digits each;
* ``&`` then the option codes (SALAPA), each ``$`` + 3 letters or digits; none is fine;
* then the E-words, each ``-`` + 4 letters or digits, then the HO-words, each ``+`` + 4.

Letters are upper case and the sections come in exactly that order; anything else is a
:class:`~ecuworks.errors.ParseError`, so one vehicle order has one text. Codes keep the
order they were given in, because the gateway's copy is compared byte for byte after it is
written back; a code given twice is an error rather than silently dropped. Methods that take
a single option code (:meth:`VehicleOrder.has`, :meth:`~VehicleOrder.with_option`) accept it
with or without ``$`` and in either case, as a technician types it.

The binary form (the gateway's VO record in this project) is the ASCII of the text form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ecuworks.errors import ConfigError, ParseError

__all__ = ["VehicleOrder"]

_EXAMPLE = "5A31#0724*A96%LCSW&$1CA$205$609-E11A+HW01"
_HEAD = re.compile(r"([^#]*)#([^*]*)\*([^%]*)%(.*)", re.DOTALL)
_TOKEN = re.compile(r"[$+-][^$+-]*")
_PREFIXES = "$-+"  # in their required order: options, E-words, HO-words
_SECTION_NAMES = ("option", "E-word", "HO-word")
_TYPE_KEY = re.compile(r"[A-Z0-9]{4}")
_TIME = re.compile(r"(0[1-9]|1[0-2])[0-9]{2}")
_COLOUR = re.compile(r"[A-Z0-9]{3,4}")
# Options keep their "$" ("$609", as the trade writes them and DESIGN.md's state JSON shows);
# E-words and HO-words are stored without their separator.
_CODES = (
    ("", re.compile(r"\$[A-Z0-9]{3}"), "$ and 3"),
    ("-", re.compile(r"[A-Z0-9]{4}"), "- and 4"),
    ("+", re.compile(r"[A-Z0-9]{4}"), "+ and 4"),
)


def _quoted(text: str) -> str:
    """Return ``text`` quoted for an error message, cut short if long."""
    return repr(text if len(text) <= 60 else text[:60] + "...")


def _problem(
    type_key: str,
    time_criterion: str,
    paint: str,
    upholstery: str,
    sections: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]],
) -> str | None:
    """Return what is wrong with these fields, or None when they form a vehicle order."""
    head = (
        ("type key", type_key, _TYPE_KEY, "4 upper-case letters or digits"),
        ("time criterion", time_criterion, _TIME, "MMYY, month 01-12"),
        ("paint code", paint, _COLOUR, "3-4 upper-case letters or digits"),
        ("upholstery code", upholstery, _COLOUR, "3-4 upper-case letters or digits"),
    )
    for name, value, pattern, shape in head:
        if not pattern.fullmatch(value):
            return f"{name} {_quoted(value)} must be {shape}"
    for name, (sep, pattern, shape), codes in zip(_SECTION_NAMES, _CODES, sections, strict=True):
        seen: set[str] = set()
        for code in codes:
            if not pattern.fullmatch(code):
                return f"{name} {_quoted(sep + code)} must be {shape} upper-case letters or digits"
            if code in seen:
                return f"{name} {sep}{code} appears twice"
            seen.add(code)
    return None


def _option_code(code: str) -> str:
    """Return an option code as stored (``"$609"``) from ``"$609"``, ``"609"`` or ``"$6ak"``."""
    stored = "$" + code.removeprefix("$").upper()
    if not (code.isascii() and _CODES[0][1].fullmatch(stored)):
        raise ConfigError(f"option code {code!r} must be 3 letters or digits, as in $609")
    return stored


@dataclass(frozen=True, slots=True, kw_only=True)
class VehicleOrder:
    """A vehicle order.

    Attributes:
        type_key: 4-character type key.
        time_criterion: build month and year as ``MMYY``.
        paint: paint code.
        upholstery: upholstery code.
        options: option codes with their ``$`` (``"$609"``), in the order given.
        e_words: E-words without the ``-`` separator, in the order given.
        ho_words: HO-words without the ``+`` separator, in the order given.
    """

    type_key: str
    time_criterion: str
    paint: str
    upholstery: str
    options: tuple[str, ...]
    e_words: tuple[str, ...] = ()
    ho_words: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problem = _problem(
            self.type_key,
            self.time_criterion,
            self.paint,
            self.upholstery,
            (self.options, self.e_words, self.ho_words),
        )
        if problem is not None:
            raise ConfigError(f"vehicle order: {problem}")

    @classmethod
    def parse(cls, text: str) -> VehicleOrder:
        """Parse the canonical text form (see the module docstring).

        Raises:
            ParseError: the text is not a vehicle order; the message names the wrong part.
        """
        where = f"vehicle order {_quoted(text)}"
        shape = f"expected TTTT#MMYY*PAINT%UPHO&$OPT...-EWRD...+HOWD..., as in {_EXAMPLE}"
        if not text.isascii():
            raise ParseError(f"{where}: must be ASCII; {shape}")
        head, amp, tail = text.partition("&")
        head_match = _HEAD.fullmatch(head)
        if not amp or head_match is None:
            raise ParseError(f"{where}: {shape}")
        if tail and tail[0] not in _PREFIXES:
            raise ParseError(f"{where}: after '&' every code starts with $, - or +; {shape}")
        sections: tuple[list[str], list[str], list[str]] = ([], [], [])
        stage = 0
        for token in _TOKEN.findall(tail):
            kind = _PREFIXES.index(token[0])
            if kind < stage:
                raise ParseError(
                    f"{where}: {_SECTION_NAMES[kind]} {_quoted(token)} is out of order; "
                    "options ($) come first, then E-words (-), then HO-words (+)"
                )
            stage = kind
            # Options keep their "$", the other words lose their separator.
            sections[kind].append(token if kind == 0 else token[1:])
        options, e_words, ho_words = (tuple(s) for s in sections)
        type_key, time_criterion, paint, upholstery = head_match.groups()
        problem = _problem(
            type_key, time_criterion, paint, upholstery, (options, e_words, ho_words)
        )
        if problem is not None:
            raise ParseError(f"{where}: {problem}")
        return cls(
            type_key=type_key,
            time_criterion=time_criterion,
            paint=paint,
            upholstery=upholstery,
            options=options,
            e_words=e_words,
            ho_words=ho_words,
        )

    def __str__(self) -> str:
        return (
            f"{self.type_key}#{self.time_criterion}*{self.paint}%{self.upholstery}&"
            + "".join(self.options)
            + "".join("-" + word for word in self.e_words)
            + "".join("+" + word for word in self.ho_words)
        )

    def encode(self) -> bytes:
        """Return the ASCII bytes of the canonical text form."""
        return str(self).encode("ascii")

    @classmethod
    def decode(cls, data: bytes) -> VehicleOrder:
        """Decode the ASCII record written by :meth:`encode`.

        Raises:
            ParseError: not ASCII, or not a vehicle order.
        """
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise ParseError(
                f"vehicle order record is not ASCII text: {data[:32].hex()}"
                + ("..." if len(data) > 32 else "")
            ) from None
        return cls.parse(text)

    def has(self, option: str) -> bool:
        """Tell whether the order holds an option (``"$609"``, ``"609"`` or ``"$6ak"``).

        Raises:
            ConfigError: ``option`` is not an option code.
        """
        return _option_code(option) in self.options

    def with_option(self, option: str) -> VehicleOrder:
        """Return this order with ``option`` added at the end; unchanged if already there.

        Raises:
            ConfigError: ``option`` is not an option code.
        """
        code = _option_code(option)
        if code in self.options:
            return self
        return replace(self, options=(*self.options, code))

    def without_option(self, option: str) -> VehicleOrder:
        """Return this order without ``option``; unchanged if it was not there.

        Raises:
            ConfigError: ``option`` is not an option code.
        """
        code = _option_code(option)
        if code not in self.options:
            return self
        return replace(self, options=tuple(c for c in self.options if c != code))
