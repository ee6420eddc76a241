"""How UDS addresses map to CAN identifiers for ISO-TP (ISO 15765-2 addressing modes).

BMW's D-CAN uses *extended* addressing on 11-bit identifiers: the tester sends on 0x6F1 with
the ECU's address as the first data byte, ECU n answers on 0x600 + n with the tester's
address (0xF1) first; functional requests go on 0x6F1 to 0xDF. Other makes mostly use
*normal* addressing, one request and one response identifier per ECU (OBD: 0x7E0/0x7E8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import isotp

from ecuworks.errors import ConfigError

__all__ = ["BMW_DCAN", "CanAddressing", "normal_11bit"]

_MAX_11BIT_ID: Final = 0x7FF
# PCI types that begin a message (ISO 15765-2, 9.6.1): single frame 0, first frame 1.
_OPENING_PCI: Final = (0x0, 0x1)


@dataclass(frozen=True, slots=True, kw_only=True)
class CanAddressing:
    """How ECU addresses map to CAN identifiers (ISO 15765-2, 10.3 network address info).

    Two schemes exist:

    * ``"extended"`` (ISO-TP extended addressing, ISO 15765-2 10.3.4): every node sends on
      CAN id ``base + its own address`` and the first data byte names the receiver. BMW
      D-CAN works this way (:data:`BMW_DCAN`).
    * ``"normal"`` (ISO 15765-2 10.3.2): one CAN id per direction and ECU,
      ``request_base + ecu`` and ``response_base + ecu``; functional requests on their
      own id. The tester address does not appear on the bus.

    Attributes:
        name: a short name, used in messages and URLs.
        mode: ``"extended"`` or ``"normal"``.
        request_base: extended: the tester sends on ``request_base + tester``; normal:
            requests to ECU ``n`` go on ``request_base + n``.
        response_base: ECU ``n`` answers on ``response_base + n``.
        functional_id: normal: CAN id of functional requests; extended: unused (a
            functional request goes on the tester's id with the functional address as
            target byte).
        padding: filler byte for unused bytes of a frame. Frames are always sent with the
            full data length; receivers do not interpret the filler (ISO 15765-2:2016,
            10.4.2), so its value only shows in traces.
    """

    name: str
    mode: Literal["extended", "normal"]
    request_base: int
    response_base: int
    functional_id: int | None = None
    padding: int = 0xCC

    @property
    def _span(self) -> int:
        """How many ECU addresses fit the scheme."""
        top = _MAX_11BIT_ID + 1 - max(self.request_base, self.response_base)
        if self.mode == "extended":
            return max(0, min(top, 0x100))
        # Request and response id ranges must not overlap.
        gap = abs(self.response_base - self.request_base)
        return max(0, min(gap, top, 0x100))

    def _check(self, ecu: int) -> None:
        if not 0 <= ecu < self._span:
            raise ConfigError(
                f"ECU address 0x{ecu:02X} does not fit {self.name} addressing (requests from "
                f"0x{self.request_base:03X}, responses from 0x{self.response_base:03X}, "
                f"{self._span} addresses); choose request and response bases that leave "
                f"room, e.g. ?addressing=normal&request_base=0x700&response_base=0x780"
            )

    def physical(self, ecu: int, *, tester: int) -> isotp.Address:
        """The can-isotp address of one ECU as seen from the tester.

        Raises:
            ConfigError: the ECU address does not fit this scheme.
        """
        self._check(ecu)
        try:
            if self.mode == "extended":
                return isotp.Address(
                    isotp.AddressingMode.Extended_11bits,
                    txid=self.request_base + tester,
                    rxid=self.response_base + ecu,
                    target_address=ecu,
                    source_address=tester,
                )
            return isotp.Address(
                isotp.AddressingMode.Normal_11bits,
                txid=self.request_base + ecu,
                rxid=self.response_base + ecu,
            )
        except ValueError as exc:
            raise ConfigError(f"cannot address ECU 0x{ecu:02X} with {self.name}: {exc}") from exc

    def functional(self, functional_address: int, *, tester: int) -> isotp.Address:
        """The can-isotp address functional requests are sent with.

        Raises:
            ConfigError: the scheme has no functional id or the ids do not fit.
        """
        try:
            if self.mode == "extended":
                return isotp.Address(
                    isotp.AddressingMode.Extended_11bits,
                    txid=self.request_base + tester,
                    rxid=self.response_base + functional_address,
                    target_address=functional_address,
                    source_address=tester,
                )
            if self.functional_id is None:
                raise ConfigError(f"{self.name} addressing has no functional CAN id")
            # can-isotp insists on a receive id; frames are routed by IsotpLink, never to
            # this transmit-only stack, so any id other than the transmit id will do.
            placeholder = self.functional_id ^ 1
            return isotp.Address(
                isotp.AddressingMode.Normal_11bits, txid=self.functional_id, rxid=placeholder
            )
        except ValueError as exc:
            raise ConfigError(f"cannot send functional requests with {self.name}: {exc}") from exc

    def source_of(
        self, arbitration_id: int, is_extended_id: bool, data: bytes | bytearray, *, tester: int
    ) -> int | None:
        """The ECU that sent a received frame to this tester, or None if it is not for us."""
        if is_extended_id:
            return None
        source = arbitration_id - self.response_base
        if not 0 <= source < self._span:
            return None
        if self.mode == "extended":
            if not data or data[0] != tester or source == tester:
                return None
        elif arbitration_id == self.functional_id:
            return None
        return source

    def opens_message(self, data: bytes | bytearray) -> bool:
        """Whether a frame is a single or first frame, i.e. may start a conversation."""
        at = 1 if self.mode == "extended" else 0
        return len(data) > at and data[at] >> 4 in _OPENING_PCI


BMW_DCAN: Final = CanAddressing(
    name="bmw-dcan",
    mode="extended",
    request_base=0x600,
    response_base=0x600,
    padding=0xFF,
)
"""BMW E-series D-CAN: 11-bit ids, ISO-TP extended addressing.

The tester (0xF1) sends on CAN id 0x6F1 with the ECU's address as first data byte; ECU
``n`` answers on 0x600 + ``n`` with 0xF1 as first data byte. Functional requests go on
0x6F1 with target byte 0xDF. Frames are padded to 8 bytes with 0xFF.
"""


def normal_11bit(
    request_base: int = 0x7E0,
    response_base: int = 0x7E8,
    functional_id: int = 0x7DF,
    *,
    padding: int = 0xCC,
) -> CanAddressing:
    """Normal addressing with 11-bit ids, for ECUs that do not use BMW's scheme.

    The defaults are the ISO 15765-4 (OBD) layout: ECUs 0-7 take requests on 0x7E0-0x7E7,
    answer on 0x7E8-0x7EF, and functional requests go on 0x7DF. Padding defaults to 0xCC,
    the filler ISO 15765-2:2016 10.4.2.1 recommends.

    Raises:
        ConfigError: an id is not an 11-bit id.
    """
    for what, value in (
        ("request_base", request_base),
        ("response_base", response_base),
        ("functional_id", functional_id),
    ):
        if not 0 <= value <= _MAX_11BIT_ID:
            raise ConfigError(f"{what} 0x{value:X} is not an 11-bit CAN id (0x000-0x7FF)")
    return CanAddressing(
        name="normal",
        mode="normal",
        request_base=request_base,
        response_base=response_base,
        functional_id=functional_id,
        padding=padding,
    )
