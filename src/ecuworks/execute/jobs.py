"""The workshop jobs as the command line and the web UI both start them: which ECU a name
means, what one coding parameter holds, whether a retrofit fits the car and its parts
answer, and the plan builders handed to :func:`~ecuworks.execute.session.plan_job`.

One place for these, so ``ecuworks code set HU ...`` and the web UI's expert-coding form
resolve the same ECU, check the same value and warn about the same vehicle order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ecuworks.coding.expert import (
    check_value,
    decode_value,
    find_parameter,
    parameter_values,
    read_records,
    vo_value,
)
from ecuworks.errors import ConfigError, PDataMismatch, Refused
from ecuworks.execute.session import for_link, identify_vehicle
from ecuworks.pdata.catalog import Catalog
from ecuworks.pdata.model import EcuInfo, Retrofit
from ecuworks.pdata.source import PData
from ecuworks.plan.jobs import (
    build_coding_plan,
    build_expert_plan,
    build_replace_plan,
    build_retrofit_plan,
)
from ecuworks.plan.model import Plan
from ecuworks.transport.base import Link
from ecuworks.transport.url import open_link
from ecuworks.uds.client import UdsClient
from ecuworks.vehicle.identify import EcuMode, Identification, probe_ecu

__all__ = [
    "SCHEMA",
    "Builder",
    "ExpertCoding",
    "Part",
    "Reading",
    "RetrofitBuilder",
    "check_answering",
    "check_retrofit",
    "coding_builder",
    "label",
    "missing_parts",
    "parts_of",
    "read_parameter",
    "replace_builder",
    "resolve_ecu",
    "retrofit_builder",
    "series_of",
]

SCHEMA: Final = 1  # of Reading.to_json

Builder = Callable[[Identification, Catalog], Plan]


# -- names, against the P-Data of the identified vehicle ------------------------------------


def series_of(ident: Identification) -> str:
    """The vehicle's series, from the I-level its gateway holds.

    Raises:
        Refused: the gateway gave no I-level.
    """
    if ident.ilevel is None:
        raise Refused(
            f"the gateway (0x{ident.gateway:02X}) gave no I-level, so the vehicle's series and "
            "its coding data are unknown; identify again and check the gateway",
            check="vehicle",
        )
    return ident.ilevel.current.series


def resolve_ecu(catalog: Catalog, series: str, name: str) -> EcuInfo:
    """The series' ECU called ``name`` (any case) or at address ``name`` (``0x63``).

    Raises:
        ConfigError: no such ECU; the message lists the series' ECUs.
    """
    key: int | str
    try:
        key = int(name, 0)
    except ValueError:
        key = name
    try:
        return catalog.ecu(series, key)
    except PDataMismatch:
        ecus = sorted(catalog.catalog(series).ecus, key=lambda e: e.name)
        for ecu in ecus:
            if isinstance(key, str) and ecu.name.casefold() == key.casefold():
                return ecu
        known = ", ".join(label(e) for e in ecus)
        raise ConfigError(f"series {series} has no ECU {name}; its ECUs are: {known}") from None


def label(ecu: EcuInfo) -> str:
    """``HU (0x63)``."""
    return f"{ecu.name} (0x{ecu.address:02X})"


def _coded(ecu: EcuInfo) -> EcuInfo:
    """``ecu``, if P-Data describes its coding."""
    if not ecu.coding.records:
        raise ConfigError(f"{label(ecu)} has no coding in the P-Data: there is nothing to code")
    return ecu


def check_answering(ident: Identification, ecu: EcuInfo) -> None:
    """Refuse an ECU that is not running its application (no coding DIDs then).

    Raises:
        Refused: it is in its bootloader or does not answer.
    """
    try:
        state = ident.ecu(ecu.address).state
    except KeyError:
        state = EcuMode.NOT_ANSWERING
    if state is EcuMode.APPLICATION:
        return
    advice = (
        "program it first"
        if state is EcuMode.BOOTLOADER
        else "check that it is installed and powered"
    )
    raise Refused(
        f"{label(ecu)} is {state}: its coding cannot be read or written; {advice}",
        check="vehicle",
    )


def _in_ecu(ecu: EcuInfo, error: ConfigError) -> ConfigError:
    return ConfigError(f"{label(ecu)}: {error}")


# -- coding ---------------------------------------------------------------------------------


def coding_builder(names: Sequence[str] = ()) -> Builder:
    """VO coding of every ECU with coding, or of the ECUs ``names`` (names or addresses)."""

    def build(ident: Identification, catalog: Catalog) -> Plan:
        if not names:
            return build_coding_plan(ident, catalog)
        series = series_of(ident)
        chosen = [_coded(resolve_ecu(catalog, series, n)) for n in names]
        for info in chosen:
            check_answering(ident, info)
        return build_coding_plan(ident, catalog, ecus=sorted({e.address for e in chosen}))

    return build


@dataclass(kw_only=True)
class ExpertCoding:
    """One parameter of one ECU coded by hand: a :data:`Builder`, and once it has built,
    the ECU it resolved and what the vehicle order gives the parameter.

    Attributes:
        ecu: the ECU's name or address as the technician gave it.
        parameter: the parameter's name.
        value: the value name to code.
        info: the ECU, once built.
        vo_value: what the VO's coding rules give the parameter (None: no rule).
        vo_known: whether the gateway gave a vehicle order.
    """

    ecu: str
    parameter: str
    value: str
    info: EcuInfo | None = field(default=None, init=False)
    vo_value: str | None = field(default=None, init=False)
    vo_known: bool = field(default=False, init=False)

    @property
    def contradicts_vo(self) -> bool:
        """The value differs from what the vehicle order gives."""
        return self.vo_value is not None and self.vo_value != self.value

    @property
    def warning(self) -> str | None:
        """What to warn the technician of before coding, or None."""
        if not self.vo_known:
            return (
                f"the gateway gave no vehicle order, so {self.parameter} = {self.value} cannot "
                "be checked against it"
            )
        if self.contradicts_vo:
            return (
                f"{self.parameter} = {self.value} contradicts the vehicle order, which gives "
                f"{self.vo_value}; the next VO coding will set it back"
            )
        return None

    def __call__(self, ident: Identification, catalog: Catalog) -> Plan:
        """Build the expert-coding plan.

        Raises:
            ConfigError: no such ECU, parameter or value.
            Refused: the ECU does not run its application.
        """
        series = series_of(ident)
        info = resolve_ecu(catalog, series, self.ecu)
        try:
            find_parameter(info.coding, self.parameter)
            check_value(info.coding, self.parameter, self.value)
        except ConfigError as error:
            raise _in_ecu(info, error) from None
        check_answering(ident, info)
        self.info = info
        self.vo_known = ident.vo is not None
        self.vo_value = None
        if ident.vo is not None:
            self.vo_value = vo_value(catalog, series, info.address, ident.vo, self.parameter)
        return build_expert_plan(
            ident,
            catalog,
            ecu=info.address,
            parameter=self.parameter,
            value=self.value,
            vo_value=self.vo_value,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """One parameter as read from the ECU, beside what the vehicle order gives it.

    Attributes:
        vin: the vehicle.
        ecu: the ECU's P-Data metadata.
        parameter: the parameter's name.
        value: the value it holds now; None when its bits hold no named value.
        values: the values it may take.
        vo_value: what the VO's coding rules give it; None when no rule does.
        vo_known: whether the vehicle order could be read at all.
    """

    vin: str
    ecu: EcuInfo
    parameter: str
    value: str | None
    values: Sequence[str]
    vo_value: str | None
    vo_known: bool

    @property
    def contradicts_vo(self) -> bool:
        """The ECU holds something other than what the vehicle order gives."""
        return self.vo_value is not None and self.value != self.vo_value

    def to_json(self) -> dict[str, Any]:
        """The ``code get --json`` object."""
        return {
            "schema": SCHEMA,
            "vin": self.vin,
            "ecu": self.ecu.name,
            "address": self.ecu.address,
            "parameter": self.parameter,
            "value": self.value,
            "values": list(self.values),
            "vo_value": self.vo_value,
            "vo_known": self.vo_known,
            "contradicts_vo": self.contradicts_vo,
        }


async def read_parameter(vci: str, pdata: PData, ecu_name: str, parameter: str) -> Reading:
    """Identify the vehicle, read the ECU's coding records and decode one parameter.

    Raises:
        ConfigError: no such ECU or parameter.
        Refused: the series is unknown or the ECU does not run its application.
    """
    catalog = pdata.catalog
    async with open_link(vci) as link:
        ident = await identify_vehicle(link, pdata)
        series = series_of(ident)
        ecu = resolve_ecu(catalog, series, ecu_name)
        try:
            values = parameter_values(ecu.coding, parameter)
        except ConfigError as error:
            raise _in_ecu(ecu, error) from None
        check_answering(ident, ecu)
        client = UdsClient(link, ecu.address, timing=for_link(vci, None).timing)
        records = await read_records(client, ecu.coding)
    given = None
    if ident.vo is not None:
        given = vo_value(catalog, series, ecu.address, ident.vo, parameter)
    return Reading(
        vin=ident.vin,
        ecu=ecu,
        parameter=parameter,
        value=decode_value(ecu.coding, records, parameter),
        values=values,
        vo_value=given,
        vo_known=ident.vo is not None,
    )


# -- replacement and retrofit ---------------------------------------------------------------


def replace_builder(ecu: str) -> Builder:
    """Replacement of the ECU ``ecu`` (name or address, resolved in the series identified)."""

    def build(ident: Identification, catalog: Catalog) -> Plan:
        address = resolve_ecu(catalog, series_of(ident), ecu).address
        return build_replace_plan(ident, catalog, ecu=address)

    return build


@dataclass(frozen=True, slots=True)
class RetrofitBuilder:
    """The plan builder of the retrofit of ``option`` (``$610``), its parts installed and
    answering. ``expects``: the parts' addresses, which the identification before the plan
    reads physically: a retrofit-only ECU is not expected by P-Data, and the vehicle-wide
    read may end before a new part's answer arrives."""

    option: str
    expects: frozenset[int] = frozenset()

    def __call__(self, ident: Identification, catalog: Catalog) -> Plan:
        return build_retrofit_plan(ident, catalog, option=self.option)


def retrofit_builder(option: str, parts: Iterable[Part] = ()) -> RetrofitBuilder:
    """The retrofit of ``option``, whose installed ``parts`` must answer."""
    return RetrofitBuilder(option, frozenset(part.address for part in parts))


@dataclass(frozen=True, slots=True)
class Part:
    """A part a retrofit installs: its name, diagnostic address and bus."""

    name: str
    address: int
    bus: str

    def instruction(self, retrofit: Retrofit) -> str:
        """What to tell the technician."""
        return (
            f"Install the {self.name} for {retrofit.name} (address 0x{self.address:02X}, "
            f"bus {self.bus})"
        )


def parts_of(retrofit: Retrofit) -> list[Part]:
    """The parts ``retrofit`` installs."""
    return [
        Part(str(t["name"]), int(t["address"]), str(t.get("bus", "?"))) for t in retrofit.install
    ]


def check_retrofit(ident: Identification, catalog: Catalog, option: str) -> Retrofit:
    """The retrofit of ``option``, when the car's P-Data offers it and its VO lacks it.

    Raises:
        Refused: the gateway gave no I-level or vehicle order.
        PDataMismatch: no such retrofit for the series (the message lists those offered).
        ConfigError: the vehicle order has the option already.
    """
    if ident.ilevel is None or ident.vo is None:
        raise Refused(
            "the gateway gave no I-level or vehicle order; identify again", check="vehicle"
        )
    retrofit = catalog.retrofit(ident.ilevel.current.series, option)
    if ident.vo.has(option):
        raise ConfigError(f"the vehicle order has {option} already: nothing to retrofit")
    return retrofit


async def missing_parts(link: Link, retrofit: Retrofit) -> list[Part]:
    """The retrofit's parts that do not answer yet."""
    missing = []
    for part in parts_of(retrofit):
        if (await probe_ecu(link, part.address))[0] is EcuMode.NOT_ANSWERING:
            missing.append(part)
    return missing
