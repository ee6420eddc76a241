"""Bus arithmetic: how long a message occupies a bus (classic CAN, CAN FD, Ethernet, FlexRay).

Pure functions, no clock and no I/O. The simulator (:mod:`ecuworks.sim.timing`) books its
buses with them, and the measures plan (:mod:`ecuworks.plan`) estimates a programming
session's duration with the very same figures, so that plan and simulator agree.

The reference figures of DOMAIN.md ("Times and limits") come out of these functions; the
doc examples below are those figures, and the tests check them:

>>> round(4093 / isotp_transfer_seconds(4095, bitrate=500_000, stuffing="none") / 1e3)
31
>>> round(4093 / isotp_transfer_seconds(4095, bitrate=500_000, stuffing="worst") / 1e3)
26
>>> round(4093 / isotp_transfer_seconds(
...     4095, bitrate=500_000, stmin_s=0.001, stuffing="none") / 1e3, 1)
5.7
>>> round(4093 / isotp_transfer_seconds(
...     4095, bitrate=500_000, frame_data=64, fd_data_bitrate=2_000_000, stuffing="none") / 1e3)
186
>>> round(1e7 / ethernet_transfer_seconds(10_000_000, 100_000_000) / 1e6, 1)
11.9
"""

from __future__ import annotations

import functools
import math
from typing import Final, Literal, Protocol

from ecuworks.errors import ConfigError

__all__ = [
    "CANFD_LENGTHS",
    "FLEXRAY_DIAG_SHARE",
    "Addressing",
    "Bus",
    "Stuffing",
    "can_frame_bits",
    "can_frame_seconds",
    "canfd_frame_seconds",
    "canfd_length",
    "ethernet_transfer_seconds",
    "flexray_transfer_seconds",
    "isotp_transfer_seconds",
    "transfer_seconds",
]

Stuffing = Literal["none", "typical", "worst"]
Addressing = Literal["normal", "extended"]


class Bus(Protocol):
    """What :func:`transfer_seconds` needs of a bus: a profile's or a catalog's.

    Both :class:`~ecuworks.profiles.model.BusProfile` and P-Data's ``BusInfo`` fit; the
    object must hash (the function is cached).
    """

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def bitrate(self) -> int: ...

    @property
    def data_bitrate(self) -> int | None: ...


# --- classic CAN (ISO 11898-1:2015, 10.4.2 data frame) -----------------------------------

_SOF: Final = 1
# Arbitration + control fields up to the DLC, without SOF.
_CBFF_HEADER: Final = 11 + 1 + 1 + 1 + 4  # base id, RTR, IDE, r0, DLC
_CEFF_HEADER: Final = 11 + 1 + 1 + 18 + 1 + 1 + 1 + 4  # base id, SRR, IDE, ext id, RTR, r1, r0, DLC
_CRC15: Final = 15
# Not subject to bit stuffing (10.5): CRC delimiter, ACK slot and delimiter, EOF; then the
# 3-bit intermission of the interframe space (10.4.5) before the next SOF.
_TRAILER: Final = 1 + 2 + 7
_INTERMISSION: Final = 3
# Random payload (compressed or encrypted images) gets one stuff bit per 30 bits on
# average: a run of five equal bits has mean length 2**5 - 2 after a stuff bit, which
# itself opens the next run.
_TYPICAL_STUFF_PERIOD: Final = 30.0


def _stuff_bits(stuffable: int, stuffing: Stuffing) -> float:
    """Stuff bits added to ``stuffable`` bits (ISO 11898-1, 10.5: after five equal bits)."""
    if stuffing == "none":
        return 0.0
    if stuffing == "worst":
        # Every fourth bit after the first can complete a run (Davis et al., 2007).
        return float((stuffable - 1) // 4) if stuffable > 0 else 0.0
    if stuffing == "typical":
        return stuffable / _TYPICAL_STUFF_PERIOD
    raise ConfigError(f"stuffing {stuffing!r} is not one of none, typical, worst")


def _check_rate(what: str, bitrate: float) -> None:
    if not (math.isfinite(bitrate) and bitrate > 0):
        raise ConfigError(f"{what} {bitrate!r} is not a positive bit rate in bit/s")


def can_frame_bits(
    data_bytes: int, *, extended_id: bool = False, stuffing: Stuffing = "typical"
) -> float:
    """Bits one classic CAN data frame occupies on the bus, intermission included.

    SOF, arbitration, control, data and CRC are bit-stuffed; CRC delimiter, ACK, EOF and
    the intermission are not (ISO 11898-1:2015, 10.4.2 and 10.5).

    >>> can_frame_bits(8, stuffing="none"), can_frame_bits(8, stuffing="worst")
    (111.0, 135.0)

    Args:
        data_bytes: 0 to 8.
        extended_id: 29-bit instead of 11-bit identifier.
        stuffing: ``"none"`` (the ceiling), ``"typical"`` (random data) or ``"worst"``.

    Raises:
        ConfigError: ``data_bytes`` outside 0-8 or an unknown ``stuffing``.
    """
    if not 0 <= data_bytes <= 8:
        raise ConfigError(f"a classic CAN frame carries 0-8 data bytes, not {data_bytes}")
    header = _CEFF_HEADER if extended_id else _CBFF_HEADER
    stuffable = _SOF + header + 8 * data_bytes + _CRC15
    return stuffable + _stuff_bits(stuffable, stuffing) + _TRAILER + _INTERMISSION


def can_frame_seconds(
    data_bytes: int, bitrate: float, *, extended_id: bool = False, stuffing: Stuffing = "typical"
) -> float:
    """Seconds one classic CAN frame occupies a bus of ``bitrate`` bit/s."""
    _check_rate("bitrate", bitrate)
    return can_frame_bits(data_bytes, extended_id=extended_id, stuffing=stuffing) / bitrate


# --- CAN FD (ISO 11898-1:2015, 10.4.2 FD frames) -------------------------------------------

CANFD_LENGTHS: Final = (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64)
"""Data lengths a CAN FD frame can have: DLC 0-15 (ISO 11898-1:2015, table 5)."""

# Sent at the arbitration rate up to the BRS bit: SOF, id, RRS (FD's RTR), IDE, FDF, res,
# BRS; 29-bit ids add SRR and the 18-bit extension.
_FD_ARB_BASE: Final = 1 + 11 + 1 + 1 + 1 + 1 + 1
_FD_ARB_EXTENDED: Final = 1 + 11 + 1 + 1 + 18 + 1 + 1 + 1 + 1
_FD_CONTROL: Final = 1 + 4  # ESI, DLC: data phase
_FD_STUFF_COUNT: Final = 4  # 3-bit gray-coded count + parity (2015 edition)
# CRC-17 up to 16 data bytes, CRC-21 above (10.4.2.6).
_FD_CRC17_MAX: Final = 16


def canfd_length(data_bytes: int) -> int:
    """The CAN FD frame length that carries ``data_bytes``: the next DLC step.

    >>> canfd_length(9), canfd_length(62), canfd_length(64)
    (12, 64, 64)

    Raises:
        ConfigError: more than 64 bytes.
    """
    for length in CANFD_LENGTHS:
        if length >= data_bytes:
            return length
    raise ConfigError(f"a CAN FD frame carries at most 64 data bytes, not {data_bytes}")


def canfd_frame_seconds(
    data_bytes: int,
    arbitration_bitrate: float,
    data_bitrate: float,
    *,
    extended_id: bool = False,
    stuffing: Stuffing = "typical",
) -> float:
    """Seconds one CAN FD frame (with bit rate switch) occupies the bus.

    Arbitration phase (SOF to BRS, then CRC delimiter, ACK, EOF and intermission) at
    ``arbitration_bitrate``; data phase (ESI, DLC, data, stuff count, CRC with its fixed
    stuff bits) at ``data_bitrate``. Dynamic stuffing covers SOF to the end of the data;
    the stuff count and CRC carry a fixed stuff bit before every fourth bit (10.5).
    ``data_bytes`` is rounded up to the next DLC step.

    >>> round(canfd_frame_seconds(64, 500_000, 2_000_000, stuffing="none") * 1e6, 1)
    334.5

    Raises:
        ConfigError: more than 64 bytes, a bit rate that is not positive.
    """
    _check_rate("arbitration bit rate", arbitration_bitrate)
    _check_rate("data bit rate", data_bitrate)
    length = canfd_length(data_bytes)
    arbitration = _FD_ARB_EXTENDED if extended_id else _FD_ARB_BASE
    data = _FD_CONTROL + 8 * length
    crc = 17 if length <= _FD_CRC17_MAX else 21
    fixed = _FD_STUFF_COUNT + crc
    fixed += math.ceil(fixed / 4)
    if stuffing == "worst":
        total = _stuff_bits(arbitration + data, "worst")
        arbitration_stuff = _stuff_bits(arbitration, "worst")
        data_stuff = total - arbitration_stuff
    else:
        arbitration_stuff = _stuff_bits(arbitration, stuffing)
        data_stuff = _stuff_bits(data, stuffing)
    slow = arbitration + arbitration_stuff + _TRAILER + _INTERMISSION
    fast = data + data_stuff + fixed
    return slow / arbitration_bitrate + fast / data_bitrate


# --- ISO-TP (ISO 15765-2:2016) ------------------------------------------------------------

_CLASSIC_DL: Final = 8
_FF_DL_12BIT_MAX: Final = 0xFFF  # larger messages use the escape FF (9.6.3.1, table 14)
_FC_PCI: Final = 3  # FS, BS, STmin (9.6.5)


def _isotp_frames(payload_bytes: int, frame_data: int, ext: int, fd: bool) -> tuple[list[int], int]:
    """CAN data lengths of the sender's frames, and how many are consecutive frames."""

    def on_bus(used: int) -> int:
        # Frames are padded (ISO 15765-2:2016, 10.4.2): classic to 8 bytes, CAN FD to at
        # least 8 and then to the next DLC step.
        return canfd_length(max(_CLASSIC_DL, used)) if fd else _CLASSIC_DL

    sf_classic = _CLASSIC_DL - 1 - ext  # SF_DL in the low nibble (table 10)
    sf_max = frame_data - 2 - ext if frame_data > _CLASSIC_DL else sf_classic
    if payload_bytes <= sf_max:
        pci = 1 if payload_bytes <= sf_classic else 2  # escape: 0x00 then SF_DL
        return [on_bus(ext + pci + payload_bytes)], 0
    ff_pci = 2 if payload_bytes <= _FF_DL_12BIT_MAX else 6
    rest = payload_bytes - (frame_data - ext - ff_pci)
    per_cf = frame_data - ext - 1
    count, last = divmod(rest, per_cf)
    frames = [frame_data] + [frame_data] * count
    if last:
        frames.append(on_bus(ext + 1 + last))
        count += 1
    return frames, count


def isotp_transfer_seconds(
    payload_bytes: int,
    *,
    bitrate: float,
    frame_data: int = 8,
    addressing: Addressing = "normal",
    stmin_s: float = 0.0,
    block_size: int = 0,
    fd_data_bitrate: float | None = None,
    stuffing: Stuffing = "typical",
    fc_turnaround_s: float = 0.0,
    extended_id: bool = False,
) -> float:
    """Seconds one ISO-TP message takes on a CAN or CAN FD bus, flow control included.

    A message that fits is one single frame (ISO 15765-2:2016, 9.6.2: up to 7 bytes with
    normal, 6 with extended addressing in 8-byte frames; with CAN FD up to 62/61 using the
    SF_DL escape). Otherwise: a first frame (9.6.3; the 32-bit FF_DL escape above 4095
    bytes), then the receiver's flow control (9.6.5) -- one after the first frame and one
    after every ``block_size`` consecutive frames when it is not 0 -- and the consecutive
    frames (9.6.4). Each flow control frame travels on the same bus after
    ``fc_turnaround_s``. STmin separates the *end* of a consecutive frame from the *start*
    of the next (9.6.5.4), so a consecutive frame that follows another costs its frame
    time plus STmin; the first after a flow control frame is sent at once. All frames are
    padded (10.4.2).

    Args:
        payload_bytes: the message length (a UDS request or response); 0 takes no time.
        bitrate: the bus bit rate (CAN FD: the arbitration rate), bit/s.
        frame_data: the sender's TX_DL: 8, or a CAN FD length 12-64.
        addressing: ``"extended"`` spends the first byte of every frame on the address.
        stmin_s: STmin from the receiver's flow control, seconds.
        block_size: BS from the receiver's flow control; 0 means one flow control only.
        fd_data_bitrate: CAN FD data-phase rate; given, or ``frame_data`` > 8, means CAN
            FD frames (with bit rate switch when the rates differ).
        stuffing: see :func:`can_frame_bits`.
        fc_turnaround_s: the receiver's delay before each flow control frame.
        extended_id: 29-bit CAN identifiers.

    Raises:
        ConfigError: impossible parameters (frame length, negative STmin or block size).
    """
    if payload_bytes <= 0:
        return 0.0
    fd = frame_data > _CLASSIC_DL or fd_data_bitrate is not None
    if frame_data < _CLASSIC_DL or frame_data not in CANFD_LENGTHS:
        raise ConfigError(f"ISO-TP frame length {frame_data} is not 8 or a CAN FD length 12-64")
    if stmin_s < 0 or block_size < 0 or fc_turnaround_s < 0:
        raise ConfigError("STmin, block size and flow control turnaround cannot be negative")
    data_rate = bitrate if fd_data_bitrate is None else fd_data_bitrate

    def frame(length: int) -> float:
        if fd:
            return canfd_frame_seconds(
                length, bitrate, data_rate, extended_id=extended_id, stuffing=stuffing
            )
        return can_frame_seconds(length, bitrate, extended_id=extended_id, stuffing=stuffing)

    ext = 1 if addressing == "extended" else 0
    lengths, consecutive = _isotp_frames(payload_bytes, frame_data, ext, fd)
    seconds = sum(frame(length) for length in lengths)
    if consecutive:
        flow_controls = math.ceil(consecutive / block_size) if block_size else 1
        fc_length = canfd_length(max(_CLASSIC_DL, ext + _FC_PCI)) if fd else _CLASSIC_DL
        seconds += flow_controls * (fc_turnaround_s + frame(fc_length))
        seconds += (consecutive - flow_controls) * stmin_s
    return seconds


# --- Ethernet and FlexRay ------------------------------------------------------------------

# Per TCP segment on the wire: preamble + SFD 8, Ethernet header 14, FCS 4, interframe gap
# 12 (IEEE 802.3), IPv4 header 20 (RFC 791), TCP header 20 without options (RFC 9293).
_ETH_OVERHEAD: Final = 8 + 14 + 4 + 12 + 20 + 20
# A frame is at least 64 bytes from header to FCS (IEEE 802.3, 4.4.2): 84 on the wire.
_ETH_MIN_WIRE: Final = 8 + 64 + 12

FLEXRAY_DIAG_SHARE: Final = 0.1
"""Share of a FlexRay bus's raw rate that diagnostic transfers get (an assumption).

FlexRay (ISO 17458) runs a fixed schedule: static slots belong to their senders, and
diagnostics (ISO 10681-2) get a few static slots or part of the dynamic segment. The model
does not lay out a schedule; it treats the bus as a fixed-rate pipe at this share of the
raw rate, frame coding included: 10 Mbit/s x 0.1 = 125 kB/s.
"""


def ethernet_transfer_seconds(
    payload_bytes: int, bitrate: float, *, mss: int = 1460, overhead_per_segment: int = 78
) -> float:
    """Seconds ``payload_bytes`` of TCP payload take on an Ethernet link.

    The payload is cut into segments of ``mss`` bytes; each costs ``overhead_per_segment``
    more bytes on the wire (78: preamble, Ethernet header and FCS, interframe gap, IPv4
    and TCP headers) and at least a minimum-size frame. ACKs travel the other way of the
    full-duplex link and cost nothing here. 100BASE-TX gives 1460 / 1538 x 12.5 MB/s ≈
    11.9 MB/s goodput, 1000BASE-T1 ≈ 119 MB/s (DOMAIN.md).

    Raises:
        ConfigError: a bit rate or MSS that is not positive.
    """
    _check_rate("bitrate", bitrate)
    if mss <= 0 or overhead_per_segment < 0:
        raise ConfigError(f"MSS {mss} and per-segment overhead {overhead_per_segment} invalid")
    if payload_bytes <= 0:
        return 0.0
    full, last = divmod(payload_bytes, mss)
    wire = full * max(_ETH_MIN_WIRE, mss + overhead_per_segment)
    if last:
        wire += max(_ETH_MIN_WIRE, last + overhead_per_segment)
    return 8 * wire / bitrate


def flexray_transfer_seconds(
    payload_bytes: int, bitrate: float, *, share: float = FLEXRAY_DIAG_SHARE
) -> float:
    """Seconds ``payload_bytes`` take on FlexRay at ``share`` of its raw ``bitrate``.

    A deliberately simple model; see :data:`FLEXRAY_DIAG_SHARE`.

    Raises:
        ConfigError: a bit rate or share that is not positive.
    """
    _check_rate("bitrate", bitrate)
    if not 0 < share <= 1:
        raise ConfigError(f"FlexRay diagnostic share {share!r} is not in (0, 1]")
    return max(0, payload_bytes) * 8 / (bitrate * share)


@functools.lru_cache(maxsize=4096)
def transfer_seconds(
    bus: Bus,
    payload_bytes: int,
    *,
    stmin_s: float = 0.0,
    block_size: int = 0,
    addressing: Addressing = "normal",
    stuffing: Stuffing = "typical",
    fc_turnaround_s: float = 0.0,
) -> float:
    """Seconds one message of ``payload_bytes`` occupies ``bus``, by the bus's kind.

    ``can`` and ``canfd`` are ISO-TP (:func:`isotp_transfer_seconds`; CAN FD with 64-byte
    frames at ``bus.data_bitrate``), ``ethernet`` is TCP
    (:func:`ethernet_transfer_seconds`), ``flexray`` is :func:`flexray_transfer_seconds`.
    The ISO-TP parameters are ignored on the other kinds. Cached: a download repeats the
    same block size thousands of times, and ISO-TP's arithmetic walks every frame (the cost
    of a 4 KiB block on CAN was 1-2 ms of CPU, which at a high time scale added more than
    the bus time itself).

    Raises:
        ConfigError: an unknown bus kind or impossible parameters.
    """
    if bus.kind == "can":
        return isotp_transfer_seconds(
            payload_bytes,
            bitrate=bus.bitrate,
            addressing=addressing,
            stmin_s=stmin_s,
            block_size=block_size,
            stuffing=stuffing,
            fc_turnaround_s=fc_turnaround_s,
        )
    if bus.kind == "canfd":
        return isotp_transfer_seconds(
            payload_bytes,
            bitrate=bus.bitrate,
            frame_data=64,
            fd_data_bitrate=bus.data_bitrate or bus.bitrate,
            addressing=addressing,
            stmin_s=stmin_s,
            block_size=block_size,
            stuffing=stuffing,
            fc_turnaround_s=fc_turnaround_s,
        )
    if bus.kind == "ethernet":
        return ethernet_transfer_seconds(payload_bytes, bus.bitrate)
    if bus.kind == "flexray":
        return flexray_transfer_seconds(payload_bytes, bus.bitrate)
    raise ConfigError(f"bus {bus.name!r} has unknown kind {bus.kind!r}")
