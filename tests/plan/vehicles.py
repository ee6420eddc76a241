"""Synthetic identifications of the simulated vehicles, as they leave the factory."""

from __future__ import annotations

from dataclasses import replace

from ecuworks.profiles import load_profile
from ecuworks.vehicle.identify import EcuMode, EcuState, Identification
from ecuworks.wire.ilevel import ILevel, ILevelTriple
from ecuworks.wire.sgbm import SgbmId
from ecuworks.wire.vo import VehicleOrder


def factory_ident(vehicle: str = "f-series") -> Identification:
    """What identify reads from a factory-fresh simulated vehicle: every ECU answering."""
    profile = load_profile(vehicle)
    ecus = tuple(
        EcuState(
            address=e.address,
            state=EcuMode.APPLICATION,
            svk=tuple(SgbmId.parse(u) for u in e.svk()),
        )
        for e in sorted(profile.ecus, key=lambda e: e.address)
    )
    return Identification(
        vin=profile.vin,
        vo=VehicleOrder.parse(profile.vo),
        ilevel=ILevelTriple(
            current=ILevel.parse(profile.ilevel_current),
            last=ILevel.parse(profile.ilevel_last),
            shipment=ILevel.parse(profile.ilevel_shipment),
        ),
        battery_volts=13.8,
        ecus=ecus,
        gateway=profile.gateway_address,
    )


def with_ecu(ident: Identification, address: int, **changes: object) -> Identification:
    """``ident`` with one ECU's entry changed (or added, if no ECU has that address)."""
    ecus = {e.address: e for e in ident.ecus}
    base = ecus.get(address, EcuState(address=address, state=EcuMode.APPLICATION))
    ecus[address] = replace(base, **changes)  # type: ignore[arg-type]
    return replace(ident, ecus=tuple(ecus[a] for a in sorted(ecus)))


def older(unit: SgbmId) -> SgbmId:
    """The same unit one patch version earlier."""
    return replace(unit, patch=unit.patch - 1) if unit.patch else replace(unit, sub=unit.sub - 1)
