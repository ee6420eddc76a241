"""Look-ups over verified P-Data catalogs: what the plan and execute layers ask.

A :class:`Catalog` holds the ``catalog.json`` of one or more series, each read from bytes
that were verified against the signed metadata first (the store's job). It answers the
KIS question, target SVK for (series, I-level, variant, hardware, VO), and gives ECU
metadata, unit images' target paths and hashes, coding rules, FSC applications, retrofits
and DTC texts. Images themselves are never loaded here: :meth:`Catalog.unit` gives the
path, size and SHA-256 with which the store streams a unit's verified bytes.
"""

from __future__ import annotations

from collections.abc import Iterable

from ecuworks.errors import ConfigError, PDataMismatch
from ecuworks.pdata.model import (
    BusInfo,
    CodingRule,
    DtcDescription,
    EcuInfo,
    FscApplication,
    ILevelRelease,
    Retrofit,
    SeriesCatalog,
    TargetSvk,
    UnitInfo,
)
from ecuworks.wire.ilevel import ILevel
from ecuworks.wire.sgbm import SgbmId
from ecuworks.wire.vo import VehicleOrder

__all__ = ["Catalog"]


class Catalog:
    """The verified catalogs of several series.

    Args:
        catalogs: one per series.

    Raises:
        ConfigError: two catalogs of the same series.
    """

    def __init__(self, catalogs: Iterable[SeriesCatalog]) -> None:
        self._series: dict[str, SeriesCatalog] = {}
        self._units: dict[str, tuple[str, UnitInfo]] = {}
        # Built on first use: planning asks for ~100 ECUs against thousands of targets.
        self._targets: dict[tuple[str, str], dict[tuple[str, str], TargetSvk]] = {}
        self._by_address: dict[str, dict[int, EcuInfo]] = {}
        for cat in catalogs:
            if cat.series in self._series:
                raise ConfigError(f"two catalogs of series {cat.series}")
            self._series[cat.series] = cat
            for unit in cat.units:
                self._units[unit.sgbm] = (cat.series, unit)

    @classmethod
    def from_json(cls, *blobs: bytes) -> Catalog:
        """Read verified ``catalog.json`` bytes, one per series.

        Raises:
            ConfigError: a catalog is invalid; the message names the field.
        """
        return cls(SeriesCatalog.from_bytes(b) for b in blobs)

    @property
    def series(self) -> tuple[str, ...]:
        """The series held, sorted."""
        return tuple(sorted(self._series))

    def catalog(self, series: str) -> SeriesCatalog:
        """Return one series' catalog.

        Raises:
            PDataMismatch: ``unknown-unit``: no P-Data for that series.
        """
        try:
            return self._series[series]
        except KeyError:
            raise PDataMismatch(
                unit=series,
                reason="unknown-unit",
                detail=f"no P-Data for series {series} (have: {', '.join(self.series) or 'none'})",
            ) from None

    def ilevels(self, series: str) -> list[ILevel]:
        """Return the series' I-levels, oldest first."""
        return [r.level for r in self.catalog(series).ilevels]

    def latest(self, series: str) -> ILevel:
        """Return the series' newest I-level."""
        return self.ilevels(series)[-1]

    def release(self, series: str, ilevel: ILevel | str) -> ILevelRelease:
        """Return one I-level's release (date, target SVKs).

        Raises:
            PDataMismatch: ``unknown-unit``: the series has no such I-level.
        """
        text = str(ilevel)
        for release in self.catalog(series).ilevels:
            if release.ilevel == text:
                return release
        raise PDataMismatch(
            unit=text,
            reason="unknown-unit",
            detail=f"series {series} has no I-level {text}; latest is {self.latest(series)}",
        )

    def target_svk(
        self, series: str, ilevel: ILevel | str, ecu_variant: str, hardware: str, vo: VehicleOrder
    ) -> list[SgbmId]:
        """Return the target SVK of one ECU: the units whose VO condition holds.

        Args:
            series: the vehicle's series.
            ilevel: the target I-level.
            ecu_variant: the ECU's base variant.
            hardware: the ECU's HWEL SGBM-ID (its version included).
            vo: the vehicle order.

        Raises:
            PDataMismatch: ``unknown-unit``: the I-level lists no SVK for that variant and
                hardware (the hardware is not released for this I-level).
        """
        release = self.release(series, ilevel)
        wanted = str(SgbmId.parse(hardware)) if isinstance(hardware, str) else str(hardware)
        index = self._targets.get((series, release.ilevel))
        if index is None:
            index = {(t.variant, t.hardware): t for t in release.targets}
            self._targets[(series, release.ilevel)] = index
        target = index.get((ecu_variant, wanted))
        if target is not None:
            return [
                SgbmId.parse(u.sgbm) for u in target.units if u.when is None or u.when.matches(vo)
            ]
        known = sorted(t.hardware for t in release.targets if t.variant == ecu_variant)
        raise PDataMismatch(
            unit=f"{ecu_variant} {wanted}",
            reason="unknown-unit",
            detail=f"I-level {release.ilevel} has no target for variant {ecu_variant} with "
            f"hardware {wanted} (released hardware: {', '.join(known) or 'none'})",
        )

    def ecu(self, series: str, key: int | str) -> EcuInfo:
        """Return ECU metadata by diagnostic address, name, or variant.

        Raises:
            PDataMismatch: ``unknown-unit``: no such ECU.
            ConfigError: the variant names several ECUs (give the address).
        """
        ecus = self.catalog(series).ecus
        if isinstance(key, int):
            by_address = self._by_address.get(series)
            if by_address is None:
                by_address = self._by_address[series] = {e.address: e for e in ecus}
            found = [by_address[key]] if key in by_address else []
        else:
            found = [e for e in ecus if e.name == key] or [e for e in ecus if e.variant == key]
        if len(found) > 1:
            addresses = ", ".join(f"0x{e.address:02X}" for e in found)
            raise ConfigError(f"variant {key} is at several addresses ({addresses}); give one")
        if not found:
            label = f"0x{key:02X}" if isinstance(key, int) else str(key)
            raise PDataMismatch(
                unit=label, reason="unknown-unit", detail=f"series {series} has no ECU {label}"
            )
        return found[0]

    def bus(self, series: str, name: str) -> BusInfo | None:
        """Return one bus of the series, or None when the catalog does not describe it."""
        return self.catalog(series).bus(name)

    def unit(self, sgbm: SgbmId | str) -> UnitInfo:
        """Return a flashable unit's image: target path, size, SHA-256, segments.

        The TUF target path is ``<series>/<UnitInfo.path>``: see :meth:`target_path`.

        Raises:
            PDataMismatch: ``unknown-unit``: no catalog holds the unit.
        """
        return self._unit(sgbm)[1]

    def target_path(self, sgbm: SgbmId | str) -> str:
        """Return the unit image's TUF target path, ``<series>/units/<SGBM-ID>.bin``."""
        series, info = self._unit(sgbm)
        return f"{series}/{info.path}"

    def _unit(self, sgbm: SgbmId | str) -> tuple[str, UnitInfo]:
        text = str(sgbm)
        try:
            return self._units[text]
        except KeyError:
            raise PDataMismatch(
                unit=text, reason="unknown-unit", detail="no P-Data image for this unit"
            ) from None

    def coding_rules(self, series: str, address: int) -> list[CodingRule]:
        """Return the CAFD rules of one ECU, in order."""
        return [r for r in self.catalog(series).coding_rules if r.address == address]

    def coding_values(self, series: str, address: int, vo: VehicleOrder) -> dict[str, str]:
        """Return parameter -> value name for one ECU and VO: the first rule that holds."""
        values: dict[str, str] = {}
        for rule in self.coding_rules(series, address):
            if rule.parameter not in values and (rule.when is None or rule.when.matches(vo)):
                values[rule.parameter] = rule.value
        return values

    def fsc(self, series: str) -> tuple[FscApplication, ...]:
        """Return the FSC application catalog."""
        return self.catalog(series).fsc

    def retrofit(self, series: str, option: str) -> Retrofit:
        """Return what retrofitting ``option`` takes.

        Raises:
            PDataMismatch: ``unknown-unit``: no retrofit for that option.
        """
        cat = self.catalog(series)
        for retrofit in cat.retrofits:
            if retrofit.option == option.upper():
                return retrofit
        offered = ", ".join(r.option for r in cat.retrofits) or "none"
        raise PDataMismatch(
            unit=option,
            reason="unknown-unit",
            detail=f"series {series} has no retrofit for {option} (offered: {offered})",
        )

    def retrofits(self, series: str) -> tuple[Retrofit, ...]:
        """Return the retrofit catalog."""
        return self.catalog(series).retrofits

    def dtc_text(self, series: str, code: int) -> str | None:
        """Return a DTC's description, or None if the P-Data has none."""
        found: list[DtcDescription] = [d for d in self.catalog(series).dtcs if d.code == code]
        return found[0].text if found else None
