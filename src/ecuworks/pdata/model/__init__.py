"""The P-Data model of one vehicle series, and its JSON form (``<series>/catalog.json``).

Terms (DOMAIN.md): an *I-level* is a tested whole-vehicle release; for each one the catalog
gives the target SVK of every ECU variant and hardware (HWEL), the trade's KIS rules in data
form. Units may carry a VO condition (a head-unit unit only with option ``$609``). *CAFD*
coding rules map VO conditions to parameter values; *FSC* applications are what enabling
codes unlock; a *retrofit* installs hardware for an option and lists what to program, code
and enable.

Every object checks itself when built and :meth:`from_json` refuses unknown or missing
keys, raising :class:`~ecuworks.errors.ConfigError` that names the field
(``catalog.json: ilevels[2].targets[5].units[1].sgbm: ...``).

Modules: :mod:`.release` (I-levels, target SVKs, VO conditions), :mod:`.units` (flashable
units and their images), :mod:`.bus` (the buses), :mod:`.ecu` (ECU metadata and coding
layout), :mod:`.services` (coding rules, FSC, retrofits, DTCs), :mod:`.series` (the
whole catalog), and :mod:`._json` (the checked JSON reader they share).
"""

from ecuworks.pdata.model.bus import BUS_KINDS, BusInfo
from ecuworks.pdata.model.ecu import (
    CodingLayout,
    CodingParameter,
    CodingRecord,
    EcuInfo,
    RegionInfo,
)
from ecuworks.pdata.model.release import Condition, ILevelRelease, TargetSvk, TargetUnit
from ecuworks.pdata.model.series import SCHEMA, SeriesCatalog
from ecuworks.pdata.model.services import CodingRule, DtcDescription, FscApplication, Retrofit
from ecuworks.pdata.model.units import CompressedForm, Segment, UnitInfo

__all__ = [
    "BUS_KINDS",
    "SCHEMA",
    "BusInfo",
    "CodingLayout",
    "CodingParameter",
    "CodingRecord",
    "CodingRule",
    "CompressedForm",
    "Condition",
    "DtcDescription",
    "EcuInfo",
    "FscApplication",
    "ILevelRelease",
    "RegionInfo",
    "Retrofit",
    "Segment",
    "SeriesCatalog",
    "TargetSvk",
    "TargetUnit",
    "UnitInfo",
]
