"""What the ECU server's service modules share: replies, refusals, timing and voltage.

:class:`Reply` is public through :mod:`ecuworks.sim.ecu`; the rest is the plumbing between
``ecu.py`` (dispatch, sessions, security, reset), ``ecu_data.py`` (DIDs and DTCs) and
``ecu_programming.py`` (routines and the download services).
"""

from __future__ import annotations

from dataclasses import dataclass

from ecuworks.sim.state import VehicleState
from ecuworks.wire.uds import NEGATIVE_RESPONSE_SID, Nrc

__all__ = [
    "MAX_VOLTS",
    "MIN_VOLTS",
    "P2_SERVER_MAX",
    "P2_STAR_SERVER_MAX",
    "PENDING_INTERVAL",
    "S3_SERVER",
    "Refusal",
    "Reply",
    "check_voltage",
    "negative",
    "replies_after",
]

# Server timing (ISO 14229-2, session layer timing): the ECU answers within P2server_max,
# or sends 0x78 responsePending and then answers within P2*server_max of each 0x78.
P2_SERVER_MAX = 0.050
P2_STAR_SERVER_MAX = 5.0
# The ECU repeats 0x78 well inside P2*server_max, as ECUs in the field do.
PENDING_INTERVAL = 2.0
# S3server: a non-default session without any request for this long ends.
S3_SERVER = 5.0

# Flash work is refused outside this window (NRC 0x93 voltageTooLow / 0x92 voltageTooHigh).
MIN_VOLTS = 10.5
MAX_VOLTS = 16.0


@dataclass(frozen=True, slots=True)
class Reply:
    """One message the ECU sends.

    Attributes:
        delay: simulated seconds after the request reached the ECU.
        data: the UDS response.
    """

    delay: float
    data: bytes


class Refusal(Exception):
    """A request the ECU answers with ``7F <sid> <nrc>``; never leaves the server.

    Attributes:
        nrc: the negative response code.
    """

    def __init__(self, nrc: Nrc, why: str = "") -> None:
        super().__init__(f"NRC 0x{nrc:02X} {why}".rstrip())
        self.nrc = nrc


def negative(sid: int, nrc: int) -> bytes:
    """Return the negative response ``7F <sid> <nrc>``."""
    return bytes((NEGATIVE_RESPONSE_SID, sid, nrc))


def replies_after(
    sid: int, duration: float, final: bytes, *, pending: bool = False, scale: float = 1.0
) -> list[Reply]:
    """Return the answer to work that takes ``duration`` simulated seconds.

    Work longer than P2server_max (or any, with ``pending``) answers 0x78 responsePending
    at once and every :data:`PENDING_INTERVAL` seconds until the final answer
    (ISO 14229-1, negative response code 0x78). The whole stream is returned up front, with
    increasing delays; the gateway sends each at its time. ``scale`` (the clock's time
    scale) keeps those protocol times constant in real time, as the tester measures them.
    """
    if not pending and duration <= P2_SERVER_MAX * scale:
        return [Reply(duration, final)]
    wait = negative(sid, Nrc.REQUEST_CORRECTLY_RECEIVED_RESPONSE_PENDING)
    replies: list[Reply] = []
    at = 0.0
    while at < duration or not replies:
        replies.append(Reply(at, wait))
        at += PENDING_INTERVAL * scale
    replies.append(Reply(duration, final))
    return replies


def check_voltage(vehicle: VehicleState) -> None:
    """Refuse flash work when the battery is outside the safe window.

    Raises:
        Refusal: NRC 0x93 voltageTooLow below :data:`MIN_VOLTS`, 0x92 voltageTooHigh above
            :data:`MAX_VOLTS`.
    """
    volts = vehicle.battery.supply_volts
    if volts < MIN_VOLTS:
        raise Refusal(Nrc.VOLTAGE_TOO_LOW, f"battery {volts:.2f} V")
    if volts > MAX_VOLTS:
        raise Refusal(Nrc.VOLTAGE_TOO_HIGH, f"battery {volts:.2f} V")
