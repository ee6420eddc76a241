"""Server-side ISO-TP (ISO 15765-2:2016): an ECU's segmentation and reassembly, sans-I/O.

E-series ECUs sit on D-CAN behind the VCI. The simulator receives CAN frames (arbitration
id + data), so it reassembles requests and segments responses itself; this is that code,
written from the standard and independent of can-isotp (which the client uses).

:func:`parse_frame` and :func:`encode_frame` are the frame codec (clause 9.6);
:class:`IsotpEndpoint` is one ECU's protocol state machine. It never reads a clock:
``now`` (simulated seconds) comes with every call, frames to send come back with the
earliest time they may go on the bus, and timeouts are applied by :meth:`~IsotpEndpoint.poll`
at :meth:`~IsotpEndpoint.next_deadline`, like the ECU server (docs/adr/0003).

Protocol control information (PCI), first byte(s) after the optional address byte::

    single frame       0L [data]             L = SF_DL 1-7   (CAN_DL <= 8)
                       00 LL [data]          escape, CAN FD frames over 8 bytes
    first frame        1L LL [data]          FF_DL 8-4095 in 12 bits
                       10 00 LLLLLLLL [data] escape, FF_DL > 4095 in 32 bits (2016)
    consecutive frame  2N [data]             N = sequence number 1, 2, ... F, 0, 1 ...
    flow control       3S BS ST              S: 0 continue to send, 1 wait, 2 overflow
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Final, Literal

from ecuworks.errors import ConfigError, ParseError

__all__ = [
    "BMW_TESTER_ADDRESS",
    "ConsecutiveFrame",
    "Error",
    "Event",
    "FirstFrame",
    "FlowControl",
    "FlowStatus",
    "Frame",
    "IsotpEndpoint",
    "MessageReceived",
    "NResult",
    "Pdu",
    "SendFrames",
    "SingleFrame",
    "decode_stmin",
    "encode_frame",
    "encode_stmin",
    "parse_frame",
]

# CAN FD data lengths (ISO 11898-1:2015, table 5); TX_DL/RX_DL take the values >= 8.
_FD_LENGTHS: Final = (8, 12, 16, 20, 24, 32, 48, 64)
_CLASSIC_DL: Final = 8
_FF_DL_12BIT_MAX: Final = 0xFFF
_FF_DL_MAX: Final = 0xFFFF_FFFF
# 10.4.2.2: CAN FD frames over 8 bytes are filled up to the next DLC step with 0xCC.
_FD_FILLER: Final = 0xCC
_STMIN_MAX_MS: Final = 0x7F
BMW_TESTER_ADDRESS: Final = 0xF1
_BMW_REQUEST_ID: Final = 0x6F1
_BMW_RESPONSE_BASE: Final = 0x600
_BMW_FUNCTIONAL: Final = 0xDF


class FlowStatus(IntEnum):
    """FlowStatus of a flow control frame (ISO 15765-2:2016, 9.6.5.1, table 18)."""

    CONTINUE_TO_SEND = 0
    WAIT = 1
    OVERFLOW = 2


class NResult(StrEnum):
    """Why a transfer failed: the N_Result values of ISO 15765-2:2016, 8.3.7."""

    TIMEOUT_BS = "N_TIMEOUT_Bs"  # no flow control after our first frame or block
    TIMEOUT_CR = "N_TIMEOUT_Cr"  # the next consecutive frame did not come
    WRONG_SN = "N_WRONG_SN"
    INVALID_FS = "N_INVALID_FS"
    UNEXP_PDU = "N_UNEXP_PDU"
    BUFFER_OVFLW = "N_BUFFER_OVFLW"
    ERROR = "N_ERROR"  # here: a malformed frame ISO 15765-2 tells the receiver to ignore


# --- frames ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SingleFrame:
    """A whole message in one frame (9.6.2)."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class FirstFrame:
    """The first frame of a segmented message (9.6.3): its total length and first bytes."""

    length: int
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsecutiveFrame:
    """A following frame (9.6.4); ``data`` may include the last frame's padding."""

    sequence: int
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowControl:
    """The receiver's flow control (9.6.5); ``status`` is kept raw (3-15 are invalid)."""

    status: int
    block_size: int = 0
    stmin: int = 0

    @property
    def stmin_s(self) -> float:
        """STmin in seconds, reserved values read as 127 ms (9.6.5.5)."""
        return decode_stmin(self.stmin)


Pdu = SingleFrame | FirstFrame | ConsecutiveFrame | FlowControl


def decode_stmin(value: int) -> float:
    """Seconds an STmin byte asks for (ISO 15765-2:2016, 9.6.5.5, table 20).

    0x00-0x7F are milliseconds, 0xF1-0xF9 are 100-900 µs. A sender that receives a
    reserved value uses the longest STmin, 0x7F = 127 ms.

    >>> decode_stmin(0x14), decode_stmin(0xF3), decode_stmin(0x80)
    (0.02, 0.0003, 0.127)
    """
    if 0 <= value <= _STMIN_MAX_MS:
        return value / 1000
    if 0xF1 <= value <= 0xF9:
        return (value - 0xF0) / 10_000
    return _STMIN_MAX_MS / 1000


def encode_stmin(seconds: float) -> int:
    """The STmin byte for at least ``seconds`` (rounded up: STmin is a minimum).

    >>> encode_stmin(0), encode_stmin(0.0003), encode_stmin(0.001), encode_stmin(0.0015)
    (0, 243, 1, 2)

    Raises:
        ConfigError: negative, or over 127 ms (the longest STmin ISO 15765-2 can say).
    """
    micros = math.ceil(round(seconds * 1e6, 3))
    if micros < 0 or micros > _STMIN_MAX_MS * 1000:
        raise ConfigError(f"STmin {seconds} s is outside 0-127 ms (ISO 15765-2, 9.6.5.5)")
    if micros == 0:
        return 0
    if micros <= 900:  # 0xF1-0xF9: 100-900 µs; 901-999 µs round up to 1 ms
        return 0xF0 + math.ceil(micros / 100)
    return math.ceil(micros / 1000)


def parse_frame(frame: bytes, *, extended: bool = False) -> tuple[int | None, Pdu]:
    """Decode one CAN frame's data field: (address byte or None, PDU).

    Applies the receiver's checks of ISO 15765-2:2016, 9.6 and 9.8: frames that the
    standard says to ignore raise :class:`ParseError`.

    >>> parse_frame(bytes.fromhex("021003CCCCCCCCCC"))
    (None, SingleFrame(data=b'\\x10\\x03'))
    >>> parse_frame(bytes.fromhex("12021003"), extended=True)
    (18, SingleFrame(data=b'\\x10\\x03'))

    Raises:
        ParseError: not a valid ISO-TP frame.
    """
    can_dl = len(frame)
    ext = 1 if extended else 0
    if can_dl > max(_FD_LENGTHS) or (can_dl > _CLASSIC_DL and can_dl not in _FD_LENGTHS):
        raise ParseError(f"{can_dl} data bytes is no CAN or CAN FD frame length")
    if can_dl <= ext:
        raise ParseError("frame too short for its protocol control information")
    address = frame[0] if extended else None
    body = frame[ext:]
    kind, low = body[0] >> 4, body[0] & 0xF
    if kind == 0:
        return address, _parse_single(body, low, can_dl, ext)
    if kind == 1:
        return address, _parse_first(body, low, can_dl, ext)
    if kind == 2:
        return address, ConsecutiveFrame(sequence=low, data=bytes(body[1:]))
    if kind == 3:
        if len(body) < 3:
            raise ParseError("flow control frame shorter than its 3 PCI bytes")
        return address, FlowControl(status=low, block_size=body[1], stmin=body[2])
    raise ParseError(f"PCI type {kind} is not defined by ISO 15765-2 (0-3)")


def _parse_single(body: bytes, low: int, can_dl: int, ext: int) -> SingleFrame:
    # Table 10/12: a 4-bit SF_DL in frames up to 8 bytes, the escape form above.
    if low:
        if can_dl > _CLASSIC_DL:
            raise ParseError("single frame over 8 bytes without the SF_DL escape")
        if low > len(body) - 1:
            raise ParseError(f"single frame says {low} bytes but carries {len(body) - 1}")
        return SingleFrame(data=bytes(body[1 : 1 + low]))
    if can_dl <= _CLASSIC_DL or len(body) < 2:
        raise ParseError("single frame with SF_DL 0")
    length = body[1]
    if not 0 < length <= can_dl - 2 - ext:
        raise ParseError(f"escaped single frame with SF_DL {length} in a {can_dl}-byte frame")
    return SingleFrame(data=bytes(body[2 : 2 + length]))


def _parse_first(body: bytes, low: int, can_dl: int, ext: int) -> FirstFrame:
    # 9.6.3: the first frame fills its frame, which sets RX_DL: at least 8 bytes.
    if can_dl < _CLASSIC_DL:
        raise ParseError(f"first frame of {can_dl} bytes (at least 8)")
    length = (low << 8) | body[1]
    start = 2
    if length == 0:
        length = int.from_bytes(body[2:6], "big")
        start = 6
        if length <= _FF_DL_12BIT_MAX:
            raise ParseError(f"escaped first frame with FF_DL {length} (must exceed 4095)")
    # FF_DLmin (table 14): a message that would fit a single frame is not segmented.
    minimum = (_CLASSIC_DL if can_dl == _CLASSIC_DL else can_dl - 1) - ext
    if length < minimum:
        raise ParseError(f"first frame with FF_DL {length} (minimum {minimum})")
    return FirstFrame(length=length, data=bytes(body[start:]))


def encode_frame(
    pdu: Pdu, *, address: int | None = None, padding: int | None = 0xCC, fd: bool = False
) -> bytes:
    """Encode one PDU as a CAN data field, ``address`` first for extended addressing.

    With ``padding`` the frame is filled to 8 bytes (10.4.2.1); CAN FD frames over 8 bytes
    are always filled to the next DLC step (10.4.2.2). A single frame uses the SF_DL
    escape when it does not fit 8 bytes.

    >>> encode_frame(SingleFrame(data=b"\\x10\\x03")).hex(" ")
    '02 10 03 cc cc cc cc cc'
    >>> encode_frame(SingleFrame(data=b"\\x10\\x03"), address=0x12, padding=None).hex(" ")
    '12 02 10 03'

    Raises:
        ValueError: the PDU does not fit one frame.
    """
    prefix = b"" if address is None else bytes([address])
    ext = len(prefix)
    if isinstance(pdu, SingleFrame):
        if ext + 1 + len(pdu.data) <= _CLASSIC_DL:
            pci = bytes([len(pdu.data)])
        else:
            pci = bytes([0, len(pdu.data)])
        body = pci + pdu.data
    elif isinstance(pdu, FirstFrame):
        if pdu.length <= _FF_DL_12BIT_MAX:
            pci = (0x1000 | pdu.length).to_bytes(2, "big")
        else:
            pci = b"\x10\x00" + pdu.length.to_bytes(4, "big")
        body = pci + pdu.data
    elif isinstance(pdu, ConsecutiveFrame):
        body = bytes([0x20 | (pdu.sequence & 0xF)]) + pdu.data
    else:
        body = bytes([0x30 | (pdu.status & 0xF), pdu.block_size, pdu.stmin])
    frame = prefix + body
    limit = max(_FD_LENGTHS) if fd else _CLASSIC_DL
    if len(frame) > limit:
        raise ValueError(f"{len(frame)} bytes do not fit one {'CAN FD' if fd else 'CAN'} frame")
    if padding is not None and len(frame) < _CLASSIC_DL:
        frame += bytes([padding]) * (_CLASSIC_DL - len(frame))
    if len(frame) > _CLASSIC_DL:
        size = next(n for n in _FD_LENGTHS if n >= len(frame))
        frame += bytes([_FD_FILLER if padding is None else padding]) * (size - len(frame))
    return frame


# --- endpoint events --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """A CAN data field to send on the endpoint's ``tx_id``, no earlier than ``at``."""

    data: bytes
    at: float


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A complete request; ``functional`` when it came to the functional address."""

    payload: bytes
    functional: bool = False


@dataclass(frozen=True, slots=True)
class SendFrames:
    """Frames the endpoint needs sent: its flow control, or released consecutive frames."""

    frames: tuple[Frame, ...]


@dataclass(frozen=True, slots=True)
class Error:
    """A protocol error (an event, not an exception): what was lost or ignored, and why.

    ``direction`` is ``"rx"`` for the request being received, ``"tx"`` for the response
    being sent; a ``"tx"`` error other than a stray frame means the response was dropped.
    """

    result: NResult
    detail: str
    direction: Literal["rx", "tx"] = "rx"


Event = MessageReceived | SendFrames | Error


@dataclass(slots=True)
class _Reception:
    length: int
    data: bytearray
    rx_dl: int
    sequence: int = 1
    in_block: int = 0
    deadline: float = 0.0


@dataclass(slots=True)
class _Transmission:
    payload: bytes
    offset: int
    sequence: int = 1
    waiting: bool = True  # for a flow control frame
    deadline: float = 0.0


class IsotpEndpoint:
    """One ECU's ISO-TP endpoint: reassembles requests, segments responses. Sans-I/O.

    The runtime routes frames whose CAN id is ``rx_id`` (and that :meth:`accepts`) to
    :meth:`feed`, sends what :meth:`send` and the :class:`SendFrames` events return on
    ``tx_id`` no earlier than each frame's ``at``, and calls :meth:`poll` at
    :meth:`next_deadline`. Receiving and sending are independent (full duplex); responses
    sent while one is in transfer are queued.

    Args:
        rx_id: CAN id requests arrive on.
        tx_id: CAN id responses go out on.
        addressing: ``"extended"`` (ISO 15765-2, 10.3.4): the first data byte is the
            receiver's address; ``"normal"``: no address byte.
        rx_ext_address: extended: the first byte of frames for this ECU (its address).
        tx_ext_address: extended: the first byte of frames it sends (the tester's address).
        functional_ext_address: extended: first byte of functional requests (single frames
            only); with normal addressing pass ``functional=True`` to :meth:`feed` instead.
        frame_data: TX_DL: 8 for classic CAN, or a CAN FD length 12-64.
        padding: filler for unused bytes (10.4.2). 0xCC is what ISO 15765-2:2016 recommends
            and the default; BMW D-CAN ECUs pad with 0xFF (:meth:`bmw_dcan`); ``None``
            sends classic frames only as long as needed.
        stmin_s: the STmin this ECU asks for in its flow control (at most 127 ms).
        block_size: the BS it asks for; 0 = one flow control per message.
        max_message: the longest request it accepts; a longer first frame is answered with
            flow status overflow. Above 4095 the tester must use the 32-bit FF_DL escape.
        n_bs: N_Bs timeout: how long it waits for the tester's flow control (table 16).
        n_cr: N_Cr timeout: how long it waits for the tester's next consecutive frame.
        frame_s: seconds one frame occupies the bus. STmin runs from the end of a frame to
            the start of the next (9.6.5.4), so released frames are ``frame_s + STmin``
            apart; with 0 they are STmin apart and the runtime adds the bus time.

    Raises:
        ConfigError: inconsistent parameters.
    """

    def __init__(
        self,
        *,
        rx_id: int,
        tx_id: int,
        addressing: Literal["normal", "extended"] = "normal",
        rx_ext_address: int | None = None,
        tx_ext_address: int | None = None,
        functional_ext_address: int | None = None,
        frame_data: int = 8,
        padding: int | None = 0xCC,
        stmin_s: float = 0.0,
        block_size: int = 0,
        max_message: int = 0xFFF,
        n_bs: float = 1.0,
        n_cr: float = 1.0,
        frame_s: float = 0.0,
    ) -> None:
        if addressing == "extended" and (rx_ext_address is None or tx_ext_address is None):
            raise ConfigError("extended addressing needs rx_ext_address and tx_ext_address")
        if frame_data not in _FD_LENGTHS:
            raise ConfigError(f"frame length {frame_data} is not 8 or a CAN FD length 12-64")
        if not 0 <= block_size <= 0xFF:
            raise ConfigError(f"block size {block_size} is outside 0-255")
        if not 0 < max_message <= _FF_DL_MAX:
            raise ConfigError(f"maximum message length {max_message} is outside 1-2**32-1")
        if padding is not None and not 0 <= padding <= 0xFF:
            raise ConfigError(f"padding {padding} is not a byte")
        self.rx_id = rx_id
        self.tx_id = tx_id
        self.addressing = addressing
        self.rx_ext_address = rx_ext_address
        self.tx_ext_address = tx_ext_address
        self.functional_ext_address = functional_ext_address
        self.frame_data = frame_data
        self.padding = padding
        self.stmin_s = stmin_s
        self.block_size = block_size
        self.max_message = max_message
        self.n_bs = n_bs
        self.n_cr = n_cr
        self.frame_s = frame_s
        self._stmin_byte = encode_stmin(stmin_s)
        self._ext = 1 if addressing == "extended" else 0
        self._rx: _Reception | None = None
        self._tx: _Transmission | None = None
        self._queue: deque[bytes] = deque()
        self._free_at = -math.inf  # when the last released frame is off the bus

    @classmethod
    def bmw_dcan(
        cls,
        ecu: int,
        *,
        frame_data: int = 8,
        stmin_s: float = 0.0,
        block_size: int = 0,
        max_message: int = 0xFFF,
        n_bs: float = 1.0,
        n_cr: float = 1.0,
        frame_s: float = 0.0,
    ) -> IsotpEndpoint:
        """ECU ``ecu`` on BMW D-CAN (11-bit ids, extended addressing, 0xFF padding).

        Requests arrive on 0x6F1 with first byte ``ecu``, functional ones with first byte
        0xDF; answers go out on 0x600 + ``ecu`` with first byte 0xF1, the tester.
        """
        return cls(
            rx_id=_BMW_REQUEST_ID,
            tx_id=_BMW_RESPONSE_BASE + ecu,
            addressing="extended",
            rx_ext_address=ecu,
            tx_ext_address=BMW_TESTER_ADDRESS,
            functional_ext_address=_BMW_FUNCTIONAL,
            padding=0xFF,
            frame_data=frame_data,
            stmin_s=stmin_s,
            block_size=block_size,
            max_message=max_message,
            n_bs=n_bs,
            n_cr=n_cr,
            frame_s=frame_s,
        )

    # --- state -------------------------------------------------------------------------

    @property
    def receiving(self) -> bool:
        """A segmented request is being reassembled."""
        return self._rx is not None

    @property
    def sending(self) -> bool:
        """A segmented response is waiting for flow control, or more are queued."""
        return self._tx is not None or bool(self._queue)

    def accepts(self, arbitration_id: int, data: bytes) -> bool:
        """Whether a frame on the bus is for this endpoint."""
        if arbitration_id != self.rx_id:
            return False
        if not self._ext:
            return True
        return bool(data) and data[0] in (self.rx_ext_address, self.functional_ext_address)

    def next_deadline(self) -> float | None:
        """When :meth:`poll` must run next (N_Cr or N_Bs), or None."""
        deadlines = []
        if self._rx is not None:
            deadlines.append(self._rx.deadline)
        if self._tx is not None and self._tx.waiting:
            deadlines.append(self._tx.deadline)
        return min(deadlines, default=None)

    def poll(self, now: float) -> list[Event]:
        """Apply the timeouts due at ``now``: N_Cr aborts reception, N_Bs the response."""
        events: list[Event] = []
        if self._rx is not None and now >= self._rx.deadline:
            done = len(self._rx.data)
            self._rx = None
            events.append(Error(NResult.TIMEOUT_CR, f"request stopped after {done} bytes"))
        tx = self._tx
        if tx is not None and tx.waiting and now >= tx.deadline:
            self._tx = None
            events.append(
                Error(NResult.TIMEOUT_BS, f"no flow control after {tx.offset} bytes", "tx")
            )
            if frames := self._start_queued(now):
                events.append(SendFrames(tuple(frames)))
        return events

    # --- receiving ---------------------------------------------------------------------

    def feed(self, frame: bytes, now: float, *, functional: bool = False) -> list[Event]:
        """Take one received CAN data field; returns what happened.

        Frames addressed to another ECU (extended addressing) give no events; frames that
        ISO 15765-2 says to ignore give an :class:`Error` and change nothing.
        """
        if self._ext:
            if not frame or frame[0] not in (self.rx_ext_address, self.functional_ext_address):
                return []
            functional = functional or frame[0] == self.functional_ext_address
        try:
            _, pdu = parse_frame(frame, extended=bool(self._ext))
        except ParseError as exc:
            return [Error(NResult.ERROR, f"frame {frame.hex(' ')} ignored: {exc}")]
        if functional:
            return self._functional(pdu)
        return self._physical(pdu, len(frame), now)

    def _physical(self, pdu: Pdu, can_dl: int, now: float) -> list[Event]:
        if isinstance(pdu, SingleFrame):
            return [*self._abandon("single frame"), MessageReceived(pdu.data)]
        if isinstance(pdu, FirstFrame):
            return self._first(pdu, can_dl, now)
        if isinstance(pdu, ConsecutiveFrame):
            return self._consecutive(pdu, now)
        return self._flow_control(pdu, now)

    @staticmethod
    def _functional(pdu: Pdu) -> list[Event]:
        # Functional addressing carries single frames only (ISO 15765-2, 10.3.1); it does
        # not disturb a physical reception in progress.
        if isinstance(pdu, SingleFrame):
            return [MessageReceived(pdu.data, functional=True)]
        return [Error(NResult.UNEXP_PDU, "functional frame that is no single frame: ignored")]

    def _abandon(self, why: str) -> list[Event]:
        # 9.8.3, table 23: a new SF or FF during reception ends the old one.
        if self._rx is None:
            return []
        done, total = len(self._rx.data), self._rx.length
        self._rx = None
        return [Error(NResult.UNEXP_PDU, f"request abandoned at {done}/{total} bytes: {why}")]

    def _fc(self, status: FlowStatus, now: float) -> SendFrames:
        pdu = FlowControl(status=status, block_size=self.block_size, stmin=self._stmin_byte)
        return SendFrames((Frame(self._encode(pdu), now),))

    def _first(self, pdu: FirstFrame, can_dl: int, now: float) -> list[Event]:
        events = self._abandon("new first frame")
        if pdu.length > self.max_message:
            events.append(
                Error(
                    NResult.BUFFER_OVFLW,
                    f"request of {pdu.length} bytes exceeds {self.max_message}: overflow sent",
                )
            )
            events.append(self._fc(FlowStatus.OVERFLOW, now))
            return events
        self._rx = _Reception(
            length=pdu.length,
            data=bytearray(pdu.data[: pdu.length]),
            rx_dl=can_dl,
            deadline=now + self.n_cr,
        )
        events.append(self._fc(FlowStatus.CONTINUE_TO_SEND, now))
        return events

    def _consecutive(self, pdu: ConsecutiveFrame, now: float) -> list[Event]:
        rx = self._rx
        if rx is None:
            return [Error(NResult.UNEXP_PDU, "consecutive frame outside a transfer: ignored")]
        if pdu.sequence != rx.sequence:
            self._rx = None
            return [
                Error(
                    NResult.WRONG_SN,
                    f"expected sequence number {rx.sequence:X}, got {pdu.sequence:X}: "
                    f"request abandoned at {len(rx.data)}/{rx.length} bytes",
                )
            ]
        remaining = rx.length - len(rx.data)
        needed = min(remaining, rx.rx_dl - self._ext - 1)
        if len(pdu.data) < needed:
            # 9.8.2: a consecutive frame shorter than RX_DL that is not the last is ignored.
            return [Error(NResult.ERROR, f"consecutive frame with {len(pdu.data)} of {needed}")]
        rx.data += pdu.data[:needed]
        rx.sequence = (rx.sequence + 1) & 0xF
        rx.deadline = now + self.n_cr
        if len(rx.data) == rx.length:
            self._rx = None
            return [MessageReceived(bytes(rx.data))]
        rx.in_block += 1
        if self.block_size and rx.in_block == self.block_size:
            rx.in_block = 0
            return [self._fc(FlowStatus.CONTINUE_TO_SEND, now)]
        return []

    # --- sending -----------------------------------------------------------------------

    def send(self, payload: bytes, now: float) -> list[Frame]:
        """Start sending a response; returns the frames to send now (SF, or the FF).

        The consecutive frames follow in :class:`SendFrames` events once the tester's flow
        control arrives. While another response is in transfer this one is queued and its
        frames come in a later event.

        Raises:
            ValueError: an empty payload or one over 2**32 - 1 bytes.
        """
        if not 0 < len(payload) <= _FF_DL_MAX:
            raise ValueError(f"ISO-TP carries 1 to 2**32-1 bytes, not {len(payload)}")
        if self.sending:
            self._queue.append(bytes(payload))
            return []
        return self._start(bytes(payload), now)

    def _encode(self, pdu: Pdu) -> bytes:
        address = self.tx_ext_address if self._ext else None
        return encode_frame(
            pdu, address=address, padding=self.padding, fd=self.frame_data > _CLASSIC_DL
        )

    def _release(self, data: bytes, at: float) -> Frame:
        at = max(at, self._free_at)
        self._free_at = at + self.frame_s
        return Frame(data, at)

    def _start(self, payload: bytes, now: float) -> list[Frame]:
        room = self.frame_data - self._ext
        single = room - 2 if self.frame_data > _CLASSIC_DL else room - 1
        if len(payload) <= single:
            return [self._release(self._encode(SingleFrame(data=payload)), now)]
        head = room - (2 if len(payload) <= _FF_DL_12BIT_MAX else 6)
        frame = self._release(
            self._encode(FirstFrame(length=len(payload), data=payload[:head])), now
        )
        self._tx = _Transmission(payload=payload, offset=head, deadline=frame.at + self.n_bs)
        return [frame]

    def _start_queued(self, now: float) -> list[Frame]:
        frames: list[Frame] = []
        while self._tx is None and self._queue:
            frames.extend(self._start(self._queue.popleft(), now))
        return frames

    def _flow_control(self, pdu: FlowControl, now: float) -> list[Event]:
        tx = self._tx
        if tx is None or not tx.waiting:
            return [Error(NResult.UNEXP_PDU, "flow control while not waiting for one", "tx")]
        if pdu.status == FlowStatus.WAIT:
            tx.deadline = now + self.n_bs  # 9.6.5.2: a wait restarts N_Bs
            return []
        if pdu.status != FlowStatus.CONTINUE_TO_SEND:
            self._tx = None
            if pdu.status == FlowStatus.OVERFLOW:
                error = Error(NResult.BUFFER_OVFLW, "the tester cannot take the response", "tx")
            else:
                error = Error(NResult.INVALID_FS, f"flow status {pdu.status} is reserved", "tx")
            queued = self._start_queued(now)
            return [error, SendFrames(tuple(queued))] if queued else [error]
        # 9.6.5.4: STmin separates the end of one consecutive frame from the start of the
        # next; the first after a flow control frame may go at once.
        per_frame = self.frame_data - self._ext - 1
        gap = self.frame_s + pdu.stmin_s
        frames: list[Frame] = []
        at = now
        while tx.offset < len(tx.payload) and (not pdu.block_size or len(frames) < pdu.block_size):
            chunk = tx.payload[tx.offset : tx.offset + per_frame]
            pdu_cf = ConsecutiveFrame(sequence=tx.sequence, data=chunk)
            frame = self._release(self._encode(pdu_cf), at)
            frames.append(frame)
            at = frame.at + gap
            tx.offset += len(chunk)
            tx.sequence = (tx.sequence + 1) & 0xF
        if tx.offset < len(tx.payload):
            tx.deadline = frames[-1].at + self.frame_s + self.n_bs
        else:
            self._tx = None
            frames.extend(self._start_queued(now))
        return [SendFrames(tuple(frames))]
