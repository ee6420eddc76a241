"""Identify a vehicle over any link: who it is, what is installed, and in what state.

The steps, as the trade's tool runs them (DOMAIN.md, "Identify"):

1. **Inventory**: one functional ``22 F101`` (SVK); every ECU that answers is installed.
   The answers are collected until as many ECUs as the caller expects (from P-Data) have
   answered, and at most :data:`DISCOVERY_WINDOW`: nothing says when the last ECU of an
   unknown vehicle has spoken, so a caller who expects nothing always waits it out. ECUs the
   caller expects that stayed silent get one physical ``22 F101`` each, in parallel with
   a short timeout, and only if that fails too are they reported "not answering".
2. **State** of every answering ECU, in parallel: DID F186 (active session). The
   programming session (0x02) runs in the bootloader. An ECU in the default session may be
   in its bootloader too: after an interrupted application flash or as a blank spare part
   it restarts into the bootloader's default session. The bootloader has no fault memory,
   so ReadDTCInformation answered with NRC 0x11 serviceNotSupported tells it apart from
   the application (a read-only probe; the application answers it or refuses otherwise).
3. **Gateway** (ZGW 0x10 on F/G-series, CAS 0x40 on E-series): F190 VIN, F1A0 I-level
   triple, F1A1 vehicle order, F1A2 battery voltage in mV. The bootloader has no F1A0-F1A2:
   a gateway in its bootloader leaves them ``None`` with a note saying why.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from ecuworks.errors import (
    ConfigError,
    LinkTimeout,
    NegativeResponse,
    ParseError,
    TransportNack,
    UdsError,
)
from ecuworks.transport.base import Link
from ecuworks.uds.client import Timing, UdsClient
from ecuworks.uds.functional import functional_request
from ecuworks.wire.ilevel import ILevelTriple
from ecuworks.wire.sgbm import SgbmId, parse_svk
from ecuworks.wire.uds import Did, Nrc, Session, decode_battery_volts
from ecuworks.wire.vo import VehicleOrder

__all__ = [
    "DISCOVERY_WINDOW",
    "GATEWAY_CANDIDATES",
    "SCHEMA",
    "EcuMode",
    "EcuState",
    "Identification",
    "find_gateway",
    "identify",
    "probe_ecu",
    "read_vehicle_order",
]

SCHEMA: Final = 1
# Where VIN, VO and I-level live when the caller does not say: the central gateway ZGW of
# F- and G-series cars, else the car access system CAS of E-series cars (DOMAIN.md).
GATEWAY_CANDIDATES: Final = (0x10, 0x40)
# How long the vehicle-wide SVK read collects answers at most (seconds). An ECU answers
# within P2server_max (ISO 14229-2; commonly 50 ms, as the simulator's) of receiving the
# request; the rest is margin for the gateway routing the request onto every bus and for
# the answers of some forty ECUs queueing on a shared CAN bus (about 0.1 s at 500 kbit/s).
# Waiting for `timeout` instead cost 2 s on every identification without P-Data. An ECU
# slower than this is still found when it is expected: it gets a physical read of its own.
DISCOVERY_WINDOW: Final = 0.3

_READ_SVK: Final = b"\x22" + Did.SVK.to_bytes(2, "big")
# Errors that mean "this one read failed"; LinkClosed (the whole link is gone) propagates.
_READ_FAILED: Final = (UdsError, ParseError, LinkTimeout, TransportNack)


class EcuMode(StrEnum):
    """What an ECU runs, as far as the tester can tell."""

    APPLICATION = "application"
    BOOTLOADER = "bootloader"
    NOT_ANSWERING = "not answering"


@dataclass(frozen=True, slots=True, kw_only=True)
class EcuState:
    """One ECU of the inventory.

    Attributes:
        address: diagnostic address.
        state: application, bootloader or not answering.
        svk: its installed units (SVK, DID F101), empty if it could not be read.
        problem: why something about this ECU could not be read, for a technician.
    """

    address: int
    state: EcuMode
    svk: tuple[SgbmId, ...] = ()
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ECU as ``identify --json`` shows it."""
        out: dict[str, Any] = {
            "address": self.address,
            "state": str(self.state),
            "svk": [str(unit) for unit in self.svk],
        }
        if self.problem is not None:
            out["problem"] = self.problem
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Identification:
    """The identified vehicle.

    Attributes:
        vin: vehicle identification number.
        vo: vehicle order (FA), ``None`` if the gateway could not give it.
        ilevel: I-level triple, ``None`` if the gateway could not give it.
        battery_volts: battery voltage the gateway measures, ``None`` if unknown.
        ecus: every ECU found or expected, sorted by address.
        gateway: the address VIN, VO and I-levels were read from.
        notes: what could not be read, and why.
    """

    vin: str
    vo: VehicleOrder | None
    ilevel: ILevelTriple | None
    battery_volts: float | None
    ecus: tuple[EcuState, ...]
    gateway: int
    notes: tuple[str, ...] = field(default=())

    @property
    def svt(self) -> dict[int, list[str]]:
        """The actual SVT: ``{address: [SGBM-ID, ...]}`` of every ECU whose SVK was read."""
        return {ecu.address: [str(unit) for unit in ecu.svk] for ecu in self.ecus if ecu.svk}

    def ecu(self, address: int) -> EcuState:
        """Return one ECU's entry.

        Raises:
            KeyError: no ECU at that address was found or expected.
        """
        for ecu in self.ecus:
            if ecu.address == address:
                return ecu
        raise KeyError(f"no ECU at 0x{address:02X}")

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the canonical JSON of VIN, VO text, I-level triple and SVT.

        A plan carries it, so that it is never applied to a vehicle that changed since.
        """
        canonical = {
            "vin": self.vin,
            "vo": None if self.vo is None else str(self.vo),
            "ilevel": self._ilevel_json(),
            "svt": _svt_json(self.svt),
        }
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode("ascii")).hexdigest()

    def _ilevel_json(self) -> dict[str, str] | None:
        if self.ilevel is None:
            return None
        return {
            "current": str(self.ilevel.current),
            "last": str(self.ilevel.last),
            "shipment": str(self.ilevel.shipment),
        }

    def to_json(self) -> dict[str, Any]:
        """The ``identify --json`` object (DESIGN.md); ``svt`` has the plan's shape."""
        vo: dict[str, Any] | None = None
        if self.vo is not None:
            vo = {
                "type_key": self.vo.type_key,
                "time_criterion": self.vo.time_criterion,
                "paint": self.vo.paint,
                "upholstery": self.vo.upholstery,
                "options": list(self.vo.options),
                "e_words": list(self.vo.e_words),
                "ho_words": list(self.vo.ho_words),
                "text": str(self.vo),
            }
        return {
            "schema": SCHEMA,
            "vin": self.vin,
            "vo": vo,
            "ilevel": self._ilevel_json(),
            "battery": {"volts": self.battery_volts},
            "svt": _svt_json(self.svt),
            "ecus": [ecu.to_json() for ecu in self.ecus],
            "gateway": self.gateway,
            "fingerprint": self.fingerprint,
            "notes": list(self.notes),
        }


def _svt_json(svt: Mapping[int, list[str]]) -> dict[str, list[str]]:
    return {str(address): units for address, units in sorted(svt.items())}


async def identify(
    link: Link,
    *,
    gateway: int | None = None,
    expected: Iterable[int] = (),
    timeout: float = 2.0,
    retry_timeout: float = 0.5,
) -> Identification:
    """Identify the vehicle behind ``link``.

    Args:
        link: an open link to the vehicle.
        gateway: the ECU holding VIN, VO and I-levels; ``None``: the first of
            :data:`GATEWAY_CANDIDATES` that answers the inventory.
        expected: addresses of the ECUs the vehicle should have (P-Data); those that do
            not answer are listed as "not answering".
        timeout: P2 of each physical read; the vehicle-wide SVK read collects answers
            for this long at most, and never longer than :data:`DISCOVERY_WINDOW`.
        retry_timeout: P2 of the second, physical SVK read of a silent expected ECU.

    Returns:
        The identification.

    Raises:
        LinkTimeout: no ECU answered at all, or no ECU gave the VIN.
        LinkError: the link failed.
    """
    wanted = frozenset(expected)
    window = min(timeout, DISCOVERY_WINDOW)
    # With P-Data the collection ends as soon as as many ECUs as expected have answered.
    answers = await functional_request(
        link, _READ_SVK, timeout=window, expected=len(wanted) or None
    )
    found: dict[int, tuple[tuple[SgbmId, ...], str | None]] = {
        address: _svk_of(answer) for address, answer in answers.items()
    }
    missing = sorted(wanted - found.keys())
    retried = await asyncio.gather(
        *(_read_svk(link, address, retry_timeout) for address in missing)
    )
    silent: list[EcuState] = []
    for address, result in zip(missing, retried, strict=True):
        if result is None:
            silent.append(
                EcuState(
                    address=address,
                    state=EcuMode.NOT_ANSWERING,
                    problem="did not answer the SVK read, functional or physical",
                )
            )
        else:
            found[address] = result
    if not found:
        raise LinkTimeout(
            f"no ECU answered the vehicle-wide SVK read within {window:g} s; is the ignition "
            "on and the interface connected to the vehicle?"
        )
    if gateway is None:
        present = tuple(a for a in GATEWAY_CANDIDATES if a in found) or GATEWAY_CANDIDATES
        gateway, _ = await find_gateway(link, candidates=present, timeout=timeout)

    physical = Timing(p2=timeout)
    states, gateway_data = await asyncio.gather(
        asyncio.gather(*(_mode_of(link, address, physical) for address in sorted(found))),
        _read_gateway(link, gateway, sorted(found), physical),
    )
    ecus = [
        EcuState(address=address, state=mode, svk=found[address][0], problem=found[address][1])
        for address, mode in zip(sorted(found), states, strict=True)
    ]
    vin, vo, ilevel, volts, notes = gateway_data
    return Identification(
        vin=vin,
        vo=vo,
        ilevel=ilevel,
        battery_volts=volts,
        ecus=tuple(sorted([*ecus, *silent], key=lambda e: e.address)),
        gateway=gateway,
        notes=tuple(notes),
    )


async def find_gateway(
    link: Link, *, candidates: Iterable[int] = GATEWAY_CANDIDATES, timeout: float = 0.5
) -> tuple[int, ILevelTriple | None]:
    """Find the ECU that holds the I-level triple, and read it.

    Every candidate is asked for DID F1A0 at once; the first (in the order given) that
    gives a triple is the gateway. If none does (a gateway in its bootloader has no F1A0),
    the first that answered at all is, with no triple; if none answered, the first
    candidate.

    Args:
        link: an open link to the vehicle.
        candidates: addresses to try, most likely first.
        timeout: P2 of each read.

    Returns:
        ``(gateway address, its I-level triple or None)``.
    """
    addresses = list(dict.fromkeys(candidates))
    if not addresses:
        raise ConfigError("find_gateway needs at least one candidate address")
    timing = Timing(p2=timeout)

    async def ask(address: int) -> tuple[bool, ILevelTriple | None]:
        try:
            record = await UdsClient(link, address, timing=timing).read_did(Did.ILEVEL)
        except UdsError:
            return True, None
        except (LinkTimeout, TransportNack):
            return False, None
        try:
            return True, ILevelTriple.decode(record)
        except ParseError:
            return True, None

    answers = await asyncio.gather(*(ask(address) for address in addresses))
    for address, (_, triple) in zip(addresses, answers, strict=True):
        if triple is not None:
            return address, triple
    for address, (answered, _) in zip(addresses, answers, strict=True):
        if answered:
            return address, None
    return addresses[0], None


def _svk_of(answer: bytes | NegativeResponse) -> tuple[tuple[SgbmId, ...], str | None]:
    """The SVK in an answer to ``22 F101``, or no units and why."""
    if isinstance(answer, NegativeResponse):
        return (), f"refused the SVK read: {answer}"
    if answer[1:3] != _READ_SVK[1:]:
        return (), f"answered the SVK read with another DID: {answer[:3].hex(' ')}"
    try:
        return tuple(parse_svk(answer[3:])), None
    except ParseError as error:
        return (), f"sent an SVK that does not decode: {error}"


async def _read_svk(
    link: Link, address: int, p2: float
) -> tuple[tuple[SgbmId, ...], str | None] | None:
    """A physical SVK read; None when the ECU does not answer at all."""
    try:
        answer = await UdsClient(link, address, timing=Timing(p2=p2)).request(_READ_SVK)
    except NegativeResponse as error:
        return _svk_of(error)
    except (LinkTimeout, TransportNack):
        return None
    return _svk_of(answer)


async def probe_ecu(
    link: Link, address: int, *, timeout: float = 1.0
) -> tuple[EcuMode, tuple[SgbmId, ...]]:
    """One ECU's mode and SVK now (a part being installed, a swap detected)."""
    mode = await _mode_of(link, address, Timing(p2=timeout))
    if mode is EcuMode.NOT_ANSWERING:
        return mode, ()
    found = await _read_svk(link, address, timeout)
    return mode, () if found is None else found[0]


async def _mode_of(link: Link, address: int, timing: Timing) -> EcuMode:
    """Application or bootloader (see the module docstring), from F186 and a DTC probe."""
    client = UdsClient(link, address, timing=timing)
    try:
        session = await client.read_did(Did.ACTIVE_SESSION)
    except NegativeResponse:
        session = b""
    except (LinkTimeout, TransportNack):
        return EcuMode.NOT_ANSWERING
    if session[:1] == bytes((Session.PROGRAMMING,)):
        return EcuMode.BOOTLOADER
    try:
        await client.read_dtcs()
    except NegativeResponse as refused:
        if refused.nrc == Nrc.SERVICE_NOT_SUPPORTED:
            return EcuMode.BOOTLOADER
    except (LinkTimeout, TransportNack):
        return EcuMode.NOT_ANSWERING
    except UdsError:
        pass  # a fault memory it answers, however oddly, is the application's
    return EcuMode.APPLICATION


_GatewayData = tuple[str, VehicleOrder | None, ILevelTriple | None, float | None, list[str]]


async def read_vehicle_order(link: Link, gateway: int, timeout: float) -> VehicleOrder | None:
    """The gateway's vehicle order (DID 3F1C), or None when it cannot give one now."""
    try:
        record = await UdsClient(link, gateway, timing=Timing(p2=timeout)).read_did(
            Did.VEHICLE_ORDER
        )
        return VehicleOrder.decode(record)
    except _READ_FAILED:
        return None


async def _read_gateway(
    link: Link, gateway: int, present: list[int], timing: Timing
) -> _GatewayData:
    """VIN, VO, I-level triple and battery volts from the gateway, with notes on failures."""
    client = UdsClient(link, gateway, timing=timing)
    notes: list[str] = []
    vin = await _read_vin(link, gateway, present, timing, notes)

    async def record(did: int, what: str) -> bytes | None:
        try:
            return await client.read_did(did)
        except _READ_FAILED as error:
            notes.append(f"{what} (DID {did:04X}) not read from 0x{gateway:02X}: {error}")
            return None

    # One ECU answers one request at a time (link.lock): these run one after another.
    ilevel_record = await record(Did.ILEVEL, "I-level triple")
    vo_record = await record(Did.VEHICLE_ORDER, "vehicle order")
    battery_record = await record(Did.BATTERY_MV, "battery voltage")
    ilevel = vo = volts = None
    try:
        if ilevel_record is not None:
            ilevel = ILevelTriple.decode(ilevel_record)
    except ParseError as error:
        notes.append(f"the gateway's I-level triple does not decode: {error}")
    try:
        if vo_record is not None:
            vo = VehicleOrder.decode(vo_record)
    except ParseError as error:
        notes.append(f"the gateway's vehicle order does not decode: {error}")
    if battery_record is not None:
        try:
            volts = decode_battery_volts(battery_record)
        except ParseError as error:
            notes.append(str(error))
    return vin, vo, ilevel, volts, notes


async def _read_vin(
    link: Link, gateway: int, present: list[int], timing: Timing, notes: list[str]
) -> str:
    """The VIN from the gateway, else from the first other ECU that gives it."""
    failures: list[str] = []
    for address in [gateway, *(a for a in present if a != gateway)]:
        try:
            record = await UdsClient(link, address, timing=timing).read_did(Did.VIN)
            vin = record.decode("ascii")
        except UnicodeDecodeError:
            failures.append(f"0x{address:02X} sent a VIN that is not ASCII: {record.hex(' ')}")
            continue
        except _READ_FAILED as error:
            failures.append(f"0x{address:02X}: {error}")
            continue
        if failures:
            notes.append(
                f"VIN read from 0x{address:02X}; the gateway did not give it: {failures[0]}"
            )
        return vin
    raise LinkTimeout(
        "no ECU gave the VIN (DID F190): " + "; ".join(failures[:3]) + ". Is the ignition on?"
    )
