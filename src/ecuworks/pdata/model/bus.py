"""The buses of a series: what plan estimates need to know of each (kind and bit rates)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ecuworks.errors import ConfigError
from ecuworks.pdata.model._json import JsonObject, check_name

__all__ = ["BUS_KINDS", "BusInfo"]

BUS_KINDS: Final = ("ethernet", "can", "canfd", "flexray")


@dataclass(frozen=True, slots=True, kw_only=True)
class BusInfo:
    """One bus of the series' vehicles.

    Attributes:
        name: the bus's name, as :attr:`EcuInfo.bus` names it (``"pt-can"``).
        kind: ``ethernet``, ``can``, ``canfd`` or ``flexray``.
        bitrate: bit/s (the arbitration rate for CAN FD).
        data_bitrate: the CAN FD data phase rate; None for every other kind.
    """

    name: str
    kind: str
    bitrate: int
    data_bitrate: int | None = None

    def __post_init__(self) -> None:
        check_name(self.name, "name")
        if self.kind not in BUS_KINDS:
            raise ConfigError(f"kind {self.kind!r} is not one of {', '.join(BUS_KINDS)}")
        if self.bitrate <= 0:
            raise ConfigError(f"bitrate must be positive, got {self.bitrate}")
        if self.kind == "canfd":
            if self.data_bitrate is None or self.data_bitrate < self.bitrate:
                raise ConfigError(
                    f"a CAN FD bus needs data_bitrate >= bitrate ({self.bitrate}), "
                    f"got {self.data_bitrate}"
                )
        elif self.data_bitrate is not None:
            raise ConfigError(f"data_bitrate applies to CAN FD only, not to {self.kind}")

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "bitrate": self.bitrate}
        if self.data_bitrate is not None:
            out["data_bitrate"] = self.data_bitrate
        return out

    @classmethod
    def from_json(cls, data: object, where: str) -> BusInfo:
        """Read the JSON form."""
        obj = JsonObject(data, where)
        return obj.build(
            cls,
            name=obj.text("name"),
            kind=obj.text("kind"),
            bitrate=obj.integer("bitrate"),
            data_bitrate=obj.get("data_bitrate", (int, type(None)), None),
        )
