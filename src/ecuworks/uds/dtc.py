"""Diagnostic trouble codes as read with ReadDTCInformation (0x19, ISO 14229-1)."""

from __future__ import annotations

from dataclasses import dataclass

from udsoncan.exceptions import InvalidResponseException
from udsoncan.Response import Response
from udsoncan.services.ReadDTCInformation import ReadDTCInformation

from ecuworks.errors import UnexpectedResponse

__all__ = ["REPORT_DTC_BY_STATUS_MASK", "Dtc", "parse_dtc_report"]

# reportDTCByStatusMask: ``19 02 <mask>`` -> ``59 02 <availability mask> (DTC(3) status)*``
REPORT_DTC_BY_STATUS_MASK = 0x02


@dataclass(frozen=True, slots=True, kw_only=True)
class Dtc:
    """One stored fault: a 3-byte DTC number and its status byte (ISO 14229-1 DTCStatusMask).

    Attributes:
        code: the DTC number, 0x000000-0xFFFFFF.
        status: the DTC status byte (bit 0 testFailed ... bit 7 warningIndicatorRequested).
    """

    code: int
    status: int

    @property
    def test_failed(self) -> bool:
        """Status bit 0: the most recent test of this fault failed."""
        return bool(self.status & 0x01)

    @property
    def confirmed(self) -> bool:
        """Status bit 3: the fault is confirmed (stored in fault memory)."""
        return bool(self.status & 0x08)

    def __str__(self) -> str:
        return f"0x{self.code:06X}"


def parse_dtc_report(response: bytes) -> list[Dtc]:
    """Decode the positive response to ``19 02 <mask>`` (reportDTCByStatusMask).

    Records that are all zero (DTC 000000, padding from some ECUs) are dropped.

    Args:
        response: the complete response, starting with ``59 02``.

    Returns:
        The DTCs in the order the ECU listed them.

    Raises:
        UnexpectedResponse: not a well-formed reportDTCByStatusMask response.
    """
    if len(response) >= 2 and response[0] == 0x59 and response[1] != REPORT_DTC_BY_STATUS_MASK:
        # udsoncan decodes by the sub-function it is told, not the one echoed: check here.
        raise UnexpectedResponse(
            f"asked for DTCs by status mask (sub-function 0x02), the ECU answered "
            f"sub-function 0x{response[1]:02X}"
        )
    decoded = Response.from_payload(response)
    if not decoded.valid or not decoded.positive:
        raise UnexpectedResponse(
            f"not a ReadDTCInformation answer: {response[:16].hex(' ')} ({decoded.invalid_reason})"
        )
    try:
        interpreted = ReadDTCInformation.interpret_response(
            decoded, subfunction=REPORT_DTC_BY_STATUS_MASK
        )
    except (InvalidResponseException, ValueError) as exc:
        raise UnexpectedResponse(f"malformed DTC report: {exc}") from exc
    return [
        Dtc(code=dtc.id, status=dtc.status.get_byte_as_int())
        for dtc in interpreted.service_data.dtcs
    ]
