"""HSFZ, BMW's diagnostics over Ethernet ("High-Speed-Fahrzeug-Zugang") for F-series cars.

The tester talks to the central gateway (ZGW) on TCP 6801; vehicle identification also runs
on UDP 6811. Every frame is a 6-byte header and the data it announces::

    length (4, BE) | control word (2, BE) | data (length bytes)

Diagnostic frames (0x0001) and the gateway's acknowledge (0x0002) carry addresses first::

    data = source (1) | target (1) | UDS payload        length = 2 + len(payload)

so ``22 F1 90`` from the tester 0xF4 to the gateway 0x10 is ``00000005 0001 F4 10 22F190``.

Layouts decided here, with their sources (public: scapy's ``contrib/automotive/bmw/hsfz.py``
layer and its tests, EdiabasLib's ``EdInterfaceEnet.cs``, BMW's own ``diagnose`` tool, the
ENET discovery parsers seen in the field; DOMAIN.md):

- Acknowledge echoes the request's source and target (unswapped) and the start of its
  payload; gateways echo up to five bytes (EdiabasLib accepts ack frames of at most 13
  bytes and compares them with the request). Any length is accepted.
- Identification reply text ``DIAGADR10BMWMAC<12 hex>BMWVIN<17 chars>``: the diagnostic
  address is in *hexadecimal* (``DIAGADR10`` is the gateway 0x10; EdiabasLib matches the
  literal ``DIAGADR10``, the other parsers read two hex digits). We write two upper-case
  digits and read one or two.
- Alive check (0x0012) from the vehicle: empty, or two bytes that scapy names source and
  target. The tester answers 0x0013 with two bytes, its address as a big-endian 16-bit
  number (``00 F4``), as EdiabasLib does.
- Error words (0x0040-0x0045, 0x00FF) keep their data as bytes; 0x0040 carries the expected
  and the received tester address.

Sans-I/O: :func:`parse` decodes one whole frame, :class:`HsfzDecoder` frames a TCP stream,
every message's ``encode()`` returns the whole frame. Decoding raises only
:class:`~ecuworks.errors.ParseError`; encoding a field out of range raises
:class:`~ecuworks.errors.ConfigError` (a programming error).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from ecuworks.errors import ConfigError, ParseError

__all__ = [
    "ERROR_WORDS",
    "FUNCTIONAL_ADDRESS",
    "GATEWAY_ADDRESS",
    "HEADER",
    "HEADER_SIZE",
    "MAX_FRAME_DATA",
    "TCP_PORT",
    "TESTER_ADDRESS",
    "UDP_PORT",
    "Acknowledge",
    "AliveCheck",
    "AliveCheckReply",
    "ControlWord",
    "DiagnosticMessage",
    "ErrorFrame",
    "HsfzDecoder",
    "HsfzMessage",
    "IdentificationReply",
    "IdentificationRequest",
    "IgnitionStatus",
    "diagnostic_header",
    "encode_diagnostic",
    "parse",
    "parse_identification",
]

TCP_PORT: Final = 6801  # diagnostics
UDP_PORT: Final = 6811  # vehicle identification
TESTER_ADDRESS: Final = 0xF4
GATEWAY_ADDRESS: Final = 0x10
FUNCTIONAL_ADDRESS: Final = 0xDF  # the gateway fans a request out to every ECU

HEADER: Final = struct.Struct(">IH")
HEADER_SIZE: Final = 6
_DIAG_HEADER: Final = struct.Struct(">IHBB")  # header + source + target
_U16: Final = struct.Struct(">H")
# The decoder refuses longer frames before buffering them: a 16 MiB UDS message is far
# beyond any ECU's maxNumberOfBlockLength, so more is a corrupt or hostile stream.
MAX_FRAME_DATA: Final = 16 * 1024 * 1024 + 2


class ControlWord(IntEnum):
    """HSFZ control words (scapy ``HSFZ.control_words``)."""

    DIAGNOSTIC = 0x0001  # request or response
    ACKNOWLEDGE = 0x0002
    IGNITION_STATUS = 0x0010  # terminal 15
    VEHICLE_IDENTIFICATION = 0x0011
    ALIVE_CHECK = 0x0012  # from the vehicle
    ALIVE_CHECK_REPLY = 0x0013  # "status data inquiry": the tester's answer
    INCORRECT_TESTER_ADDRESS = 0x0040
    INCORRECT_CONTROL_WORD = 0x0041
    INCORRECT_FORMAT = 0x0042
    INCORRECT_DESTINATION_ADDRESS = 0x0043
    MESSAGE_TOO_LARGE = 0x0044
    DIAGNOSTIC_APPLICATION_NOT_READY = 0x0045
    NEGATIVE_ACKNOWLEDGE = 0x00FF  # "out of memory"


ERROR_WORDS: Final = frozenset(
    {
        ControlWord.INCORRECT_TESTER_ADDRESS,
        ControlWord.INCORRECT_CONTROL_WORD,
        ControlWord.INCORRECT_FORMAT,
        ControlWord.INCORRECT_DESTINATION_ADDRESS,
        ControlWord.MESSAGE_TOO_LARGE,
        ControlWord.DIAGNOSTIC_APPLICATION_NOT_READY,
        ControlWord.NEGATIVE_ACKNOWLEDGE,
    }
)


def _frame(control: int, data: bytes) -> bytes:
    try:
        return HEADER.pack(len(data), control) + data
    except struct.error as exc:
        raise ConfigError(f"cannot encode HSFZ frame 0x{control:04X}: {exc}") from None  # too long


def _bad_field(what: str, exc: struct.error) -> ConfigError:
    return ConfigError(f"cannot encode HSFZ {what} (addresses are 0..255): {exc}")


def diagnostic_header(source: int, target: int, payload_length: int) -> bytes:
    """The 8 bytes before a diagnostic payload, for callers that write header and payload
    separately (``transport.writelines``) and so never copy the payload.

    Raises:
        ConfigError: an address is outside 0..255 or the payload is too long.
    """
    try:
        return _DIAG_HEADER.pack(payload_length + 2, 0x0001, source, target)
    except struct.error as exc:
        raise _bad_field("diagnostic frame", exc) from None


def encode_diagnostic(source: int, target: int, payload: bytes) -> bytes:
    """Encode a whole diagnostic frame: one pack and one copy of ``payload``.

    Raises:
        ConfigError: an address is outside 0..255 or the payload is too long.
    """
    try:
        return _DIAG_HEADER.pack(len(payload) + 2, 0x0001, source, target) + payload
    except struct.error as exc:
        raise _bad_field("diagnostic frame", exc) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class DiagnosticMessage:
    """A UDS request or response (0x0001) between ``source`` and ``target``."""

    source: int
    target: int
    payload: bytes

    def encode(self) -> bytes:
        """The whole frame."""
        return encode_diagnostic(self.source, self.target, self.payload)


@dataclass(frozen=True, slots=True, kw_only=True)
class Acknowledge:
    """The gateway took a diagnostic frame (0x0002).

    Source and target are the request's, not swapped; ``echo`` is the start of its payload.
    """

    source: int
    target: int
    echo: bytes = b""

    def encode(self) -> bytes:
        """The whole frame."""
        echo = self.echo
        try:
            return _DIAG_HEADER.pack(len(echo) + 2, 0x0002, self.source, self.target) + echo
        except struct.error as exc:
            raise _bad_field("acknowledge", exc) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorFrame:
    """The gateway refused a frame: an error word (0x0040-0x0045) or 0x00FF.

    ``data`` is kept as sent; for INCORRECT_TESTER_ADDRESS it is the expected and the
    received tester address (see :attr:`expected`, :attr:`received`).
    """

    control: ControlWord
    data: bytes = b""

    @property
    def expected(self) -> int | None:
        """The tester address the gateway wants (INCORRECT_TESTER_ADDRESS only)."""
        if self.control == ControlWord.INCORRECT_TESTER_ADDRESS and len(self.data) >= 2:
            return self.data[0]
        return None

    @property
    def received(self) -> int | None:
        """The tester address the gateway got (INCORRECT_TESTER_ADDRESS only)."""
        if self.control == ControlWord.INCORRECT_TESTER_ADDRESS and len(self.data) >= 2:
            return self.data[1]
        return None

    def encode(self) -> bytes:
        """The whole frame."""
        if self.control not in ERROR_WORDS:
            raise ConfigError(f"0x{self.control:04X} is not an HSFZ error word")
        return _frame(self.control, self.data)


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentificationRequest:
    """Ask the gateway for VIN, MAC and diagnostic address (0x0011, no data; UDP 6811)."""

    def encode(self) -> bytes:
        """The whole frame."""
        return HEADER.pack(0, ControlWord.VEHICLE_IDENTIFICATION)


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentificationReply:
    """The gateway's identification (0x0011 with text).

    ``text`` is what goes on the wire; the other fields are read from it. Build one with
    :meth:`build`, or read one with :func:`parse_identification`.
    """

    diag_address: int
    mac: str  # 12 hex digits, as sent
    vin: str
    text: str

    @classmethod
    def build(
        cls, *, diag_address: int = GATEWAY_ADDRESS, mac: str, vin: str
    ) -> IdentificationReply:
        """Format the text the way gateways do (``DIAGADR10BMWMAC...BMWVIN...``).

        Raises:
            ConfigError: the address, MAC or VIN would not parse back.
        """
        if not 0 <= diag_address <= 0xFF:
            raise ConfigError(f"diagnostic address {diag_address} is outside 0..255")
        text = f"DIAGADR{diag_address:02X}BMWMAC{mac.upper()}BMWVIN{vin}"
        try:
            reply = parse_identification(text)
        except ParseError as exc:
            raise ConfigError(f"cannot build HSFZ identification: {exc}") from None
        if reply.vin != vin or reply.mac != mac.upper():
            raise ConfigError(f"MAC {mac!r} or VIN {vin!r} is too long")
        return reply

    def encode(self) -> bytes:
        """The whole frame.

        Raises:
            ConfigError: the fields do not match ``text``.
        """
        try:
            parsed = parse_identification(self.text)
        except ParseError as exc:
            raise ConfigError(f"cannot encode HSFZ identification: {exc}") from None
        if parsed != self:
            raise ConfigError(f"identification fields do not match its text {self.text!r}")
        return _frame(ControlWord.VEHICLE_IDENTIFICATION, self.text.encode("ascii"))


# Hex address, then the MAC, then the VIN (digits and capitals, ISO 3779). Anything after
# the VIN is kept in ``text`` for gateways that append fields.
_IDENTIFICATION: Final = re.compile(
    r"DIAGADR([0-9A-Fa-f]{1,2})BMWMAC([0-9A-Fa-f]{12})BMWVIN([0-9A-Z]{17})", re.ASCII
)


def parse_identification(text: str) -> IdentificationReply:
    """Read an identification reply's text.

    Raises:
        ParseError: the text is not ``DIAGADR<hex>BMWMAC<12 hex>BMWVIN<17 chars>...``.
    """
    match = _IDENTIFICATION.match(text)
    if match is None or not text.isascii():
        raise ParseError(f"not an HSFZ identification reply: {text[:80]!r}")
    address, mac, vin = match.groups()
    return IdentificationReply(diag_address=int(address, 16), mac=mac, vin=vin, text=text)


@dataclass(frozen=True, slots=True, kw_only=True)
class AliveCheck:
    """The vehicle asks whether the tester is still there (0x0012); empty or 2 bytes."""

    source: int | None = None
    target: int | None = None

    def encode(self) -> bytes:
        """The whole frame.

        Raises:
            ConfigError: only one address is given, or one is outside 0..255.
        """
        if self.source is None and self.target is None:
            return HEADER.pack(0, ControlWord.ALIVE_CHECK)
        if self.source is None or self.target is None:
            raise ConfigError("an alive check carries both addresses or neither")
        try:
            return _DIAG_HEADER.pack(2, ControlWord.ALIVE_CHECK, self.source, self.target)
        except struct.error as exc:
            raise _bad_field("alive check", exc) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class AliveCheckReply:
    """The tester's answer to an alive check (0x0013): its address as 2 bytes, ``00 F4``.

    ``tester`` is None for an empty reply (accepted on receipt; testers send the address).
    """

    tester: int | None = TESTER_ADDRESS

    def encode(self) -> bytes:
        """The whole frame.

        Raises:
            ConfigError: ``tester`` is outside 0..0xFFFF.
        """
        if self.tester is None:
            return HEADER.pack(0, ControlWord.ALIVE_CHECK_REPLY)
        try:
            return _frame(ControlWord.ALIVE_CHECK_REPLY, _U16.pack(self.tester))
        except struct.error as exc:
            raise ConfigError(f"cannot encode HSFZ alive check reply: {exc}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class IgnitionStatus:
    """Terminal 15 (ignition) status (0x0010); its data is kept as sent."""

    data: bytes = b""

    def encode(self) -> bytes:
        """The whole frame."""
        return _frame(ControlWord.IGNITION_STATUS, self.data)


HsfzMessage = (
    DiagnosticMessage
    | Acknowledge
    | ErrorFrame
    | IdentificationRequest
    | IdentificationReply
    | AliveCheck
    | AliveCheckReply
    | IgnitionStatus
)


def _decode(control: int, view: memoryview) -> HsfzMessage:
    """Decode the data of one frame; ``view`` is exactly the data."""
    if control in (0x0001, 0x0002):  # the hot path first
        if len(view) < 2:
            raise ParseError(
                f"HSFZ frame 0x{control:04X} needs source and target; got {len(view)} bytes"
            )
        if control == 0x0001:
            return DiagnosticMessage(source=view[0], target=view[1], payload=bytes(view[2:]))
        return Acknowledge(source=view[0], target=view[1], echo=bytes(view[2:]))
    try:
        word = ControlWord(control)
    except ValueError:
        raise ParseError(f"unknown HSFZ control word 0x{control:04X}") from None
    if word in ERROR_WORDS:
        return ErrorFrame(control=word, data=bytes(view))
    if word is ControlWord.IGNITION_STATUS:
        return IgnitionStatus(data=bytes(view))
    if word is ControlWord.VEHICLE_IDENTIFICATION:
        return _decode_identification(view)
    return _decode_alive(word, view)


def _decode_identification(view: memoryview) -> IdentificationRequest | IdentificationReply:
    if not view:
        return IdentificationRequest()
    try:
        text = bytes(view).decode("ascii")
    except UnicodeDecodeError:
        raise ParseError("HSFZ identification reply is not ASCII") from None
    return parse_identification(text)


def _decode_alive(word: ControlWord, view: memoryview) -> AliveCheck | AliveCheckReply:
    if len(view) not in (0, 2):
        raise ParseError(f"HSFZ {word.name.lower()} carries 0 or 2 bytes; got {len(view)}")
    if word is ControlWord.ALIVE_CHECK:
        return AliveCheck(source=view[0], target=view[1]) if view else AliveCheck()
    tester: int | None = _U16.unpack(view)[0] if view else None
    return AliveCheckReply(tester=tester)


def parse(frame: bytes | bytearray | memoryview) -> HsfzMessage:
    """Decode exactly one whole HSFZ frame.

    Raises:
        ParseError: truncated, trailing bytes, unknown control word, a diagnostic or
            acknowledge frame without both addresses, or a bad identification text.
    """
    with memoryview(frame) as view:
        if len(view) < HEADER_SIZE:
            raise ParseError(f"an HSFZ frame has a 6-byte header; got {len(view)} bytes")
        length, control = HEADER.unpack_from(view)
        if len(view) != HEADER_SIZE + length:
            raise ParseError(
                f"HSFZ header announces {length} data bytes; the frame carries "
                f"{len(view) - HEADER_SIZE}"
            )
        return _decode(control, view[HEADER_SIZE:])


class HsfzDecoder:
    """Frame an HSFZ TCP byte stream into messages.

    Feed it whatever the socket delivered; it returns every message completed so far and
    keeps the rest. Whole frames in a chunk that arrives with nothing pending are decoded
    straight from it, so the payload is copied once. A frame that does not decode (absurd
    length, unknown control word, bad data) breaks the stream: the messages before it are
    returned, then this and every later ``feed`` raises :class:`ParseError`; HSFZ has no
    resynchronisation, so close the connection.

    Args:
        max_frame_data: frames announcing more data bytes are refused before any of it is
            buffered.
    """

    __slots__ = ("_buffer", "_error", "max_frame_data")

    def __init__(self, max_frame_data: int = MAX_FRAME_DATA) -> None:
        self._buffer = bytearray()
        self._error: ParseError | None = None
        self.max_frame_data = max_frame_data

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a whole message."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[HsfzMessage]:
        """Add received bytes; return the messages they complete, in order.

        Raises:
            ParseError: the stream broke (see the class docstring).
        """
        if self._error is not None:
            raise ParseError(f"HSFZ stream unusable after an earlier error: {self._error}")
        messages: list[HsfzMessage] = []
        buffer = self._buffer
        with memoryview(data) as incoming:
            used = 0
            if buffer:
                # Complete the pending frame from the head of ``data`` only, so the frames
                # behind it are decoded in place instead of being copied into the buffer.
                used = self._top_up(incoming)
                if self._complete():
                    with memoryview(buffer) as view:
                        self._drain(view, messages)
                    buffer.clear()
            if not buffer and self._error is None:
                used += self._drain(incoming[used:], messages)
                buffer += incoming[used:]
        if self._error is not None and not messages:
            raise self._error
        return messages

    def _top_up(self, incoming: memoryview) -> int:
        """Move bytes from ``incoming`` into the buffer until its frame is whole; return
        how many were taken. Refuses (sets the error) an over-long frame before its data."""
        buffer = self._buffer
        taken = 0
        if len(buffer) < HEADER_SIZE:
            taken = min(HEADER_SIZE - len(buffer), len(incoming))
            buffer += incoming[:taken]
            if len(buffer) < HEADER_SIZE:
                return taken
        length: int = HEADER.unpack_from(buffer)[0]
        if length > self.max_frame_data:
            self._error = self._too_long(length)
            return taken
        need = min(HEADER_SIZE + length - len(buffer), len(incoming) - taken)
        buffer += incoming[taken : taken + need]
        return taken + need

    def _complete(self) -> bool:
        """Whether the buffer holds exactly one whole frame."""
        buffer = self._buffer
        if self._error is not None or len(buffer) < HEADER_SIZE:
            return False
        length: int = HEADER.unpack_from(buffer)[0]
        return len(buffer) == HEADER_SIZE + length

    def _too_long(self, length: int) -> ParseError:
        return ParseError(
            f"HSFZ frame announces {length} data bytes, over the {self.max_frame_data}-byte "
            "limit; the stream is corrupt"
        )

    def _drain(self, view: memoryview, messages: list[HsfzMessage]) -> int:
        """Decode whole frames from ``view`` into ``messages``; return the bytes used."""
        offset = 0
        end = len(view)
        limit = self.max_frame_data
        while end - offset >= HEADER_SIZE:
            length, control = HEADER.unpack_from(view, offset)
            if length > limit:
                self._error = self._too_long(length)
                break
            start = offset + HEADER_SIZE
            if end - start < length:
                break
            try:
                messages.append(_decode(control, view[start : start + length]))
            except ParseError as exc:
                # A fresh error without the traceback: its frames hold slices of ``view``,
                # which would keep the buffer exported, and clearing it would fail.
                self._error = ParseError(str(exc))
                break
            offset = start + length
        return offset
