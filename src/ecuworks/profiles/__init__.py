"""Vehicle profiles: the simulated vehicles' definitions, as data (ADR 0003).

Read by the simulator (to build the car) and by the demo P-Data (to build matching
programming data). Shipped: ``e-series``, ``f-series``, ``g-series``; plugins add more with
the entry point group ``ecuworks.vehicle_profiles``; any TOML file in the same layout loads
too (:mod:`ecuworks.profiles.loader` describes it).
"""

from ecuworks.profiles.loader import (
    ENTRY_POINT_GROUP,
    available_profiles,
    load_profile,
    parse_ecu,
    parse_profile,
    scaled_size,
)
from ecuworks.profiles.model import (
    BusProfile,
    EcuProfile,
    RegionProfile,
    VehicleProfile,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "BusProfile",
    "EcuProfile",
    "RegionProfile",
    "VehicleProfile",
    "available_profiles",
    "load_profile",
    "parse_ecu",
    "parse_profile",
    "scaled_size",
]
