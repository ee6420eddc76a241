"""Fault memory of the whole vehicle: every ECU read in parallel, described from P-Data, cleared.

The trade's "diagnosis" job (DOMAIN.md): the fault memory (DTCs, diagnostic trouble codes)
of every ECU that answered the identification is read at once, each entry with its
description from P-Data, and may be cleared.

* Read: physical ReadDTCInformation reportDTCByStatusMask ``19 02 FF`` (ISO 14229-1,
  11.3): mask FF matches every status bit, so every stored entry is reported. The answer is
  ``59 02 <DTCStatusAvailabilityMask> {DTC(3) statusOfDTC(1)}*``.
* Clear: physical ClearDiagnosticInformation ``14 FF FF FF`` (ISO 14229-1, 11.2), group
  FFFFFF being every group, answered ``54``.

An ECU in its bootloader keeps no fault memory and refuses both (NRC 0x11): it is listed
as unreadable, with the reason, never as clean. Errors of one ECU stay that ECU's; only a
link that is gone (``LinkClosed``) ends the whole read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from ecuworks.errors import (
    LinkTimeout,
    NegativeResponse,
    PDataMismatch,
    TransportNack,
    UdsError,
)
from ecuworks.pdata.catalog import Catalog
from ecuworks.transport.base import Link
from ecuworks.uds.client import Timing, UdsClient
from ecuworks.uds.dtc import parse_dtc_report
from ecuworks.vehicle.identify import EcuMode, Identification
from ecuworks.wire.uds import Nrc

__all__ = [
    "CLEAR_ALL",
    "NO_DESCRIPTION",
    "READ_ALL",
    "SCHEMA",
    "Describe",
    "EcuFaults",
    "FaultEntry",
    "FaultMemory",
    "FaultState",
    "clear_fault_memory",
    "decode_fault_memory",
    "describer",
    "read_fault_memory",
    "read_vehicle_fault_memory",
    "readable",
    "status_flags",
]

SCHEMA: Final = 1
# reportDTCByStatusMask with every status bit set: every stored entry.
READ_ALL: Final = b"\x19\x02\xff"
# groupOfDTC FFFFFF: every group (ISO 14229-1, 11.2.2.2).
CLEAR_ALL: Final = b"\x14\xff\xff\xff"
NO_DESCRIPTION: Final = "no description in P-Data"

# statusOfDTC bits (ISO 14229-1, D.2), in the short words a technician reads.
_STATUS_BITS: Final = (
    "test failed",  # bit 0 testFailed
    "failed this cycle",  # bit 1 testFailedThisOperationCycle
    "pending",  # bit 2 pendingDTC
    "confirmed",  # bit 3 confirmedDTC
    "not tested since clear",  # bit 4 testNotCompletedSinceLastClear
    "failed since clear",  # bit 5 testFailedSinceLastClear
    "not tested this cycle",  # bit 6 testNotCompletedThisOperationCycle
    "warning lamp",  # bit 7 warningIndicatorRequested
)
# Errors that mean "this ECU did not answer"; LinkClosed (the whole link is gone) propagates.
_SILENT: Final = (LinkTimeout, TransportNack)

Describe = Callable[[int], str | None]
"""A DTC's description by its code, or None when there is none."""


def _no_description(_: int) -> None:
    return None


class FaultState(StrEnum):
    """Whether an ECU's fault memory could be read."""

    ANSWERING = "answering"
    NOT_ANSWERING = "not answering"
    # It answered, but not with its fault memory: a refusal (bootloader) or garbage.
    UNREADABLE = "unreadable"


def status_flags(status: int) -> list[str]:
    """The status bits set in a statusOfDTC byte, in bit order, as short words."""
    return [word for bit, word in enumerate(_STATUS_BITS) if status >> bit & 1]


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultEntry:
    """One fault memory entry.

    Attributes:
        code: the 3-byte DTC.
        status: its statusOfDTC byte.
        text: its description from P-Data, or :data:`NO_DESCRIPTION`.
    """

    code: int
    status: int
    text: str

    def to_json(self) -> dict[str, Any]:
        """The entry as ``diag dtc --json`` shows it."""
        return {"code": f"0x{self.code:06X}", "status": self.status, "text": self.text}


@dataclass(frozen=True, slots=True, kw_only=True)
class EcuFaults:
    """One ECU's fault memory.

    Attributes:
        address: diagnostic address.
        name: its name from P-Data, None when P-Data does not know it.
        state: whether the memory was read.
        dtcs: its entries, in the ECU's order (empty unless ``state`` is answering).
        problem: why the memory could not be read, for a technician.
    """

    address: int
    name: str | None
    state: FaultState
    dtcs: tuple[FaultEntry, ...] = ()
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ECU as ``diag dtc --json`` shows it."""
        out: dict[str, Any] = {
            "address": self.address,
            "name": self.name,
            "state": str(self.state),
            "dtcs": [entry.to_json() for entry in self.dtcs],
        }
        if self.problem is not None:
            out["problem"] = self.problem
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultMemory:
    """The fault memory of a vehicle's ECUs.

    Attributes:
        vin: the vehicle's VIN, when known.
        ecus: every ECU asked or known to be silent, by address.
    """

    vin: str | None
    ecus: tuple[EcuFaults, ...]

    @property
    def entries(self) -> int:
        """How many entries all ECUs hold together."""
        return sum(len(ecu.dtcs) for ecu in self.ecus)

    def ecu(self, address: int) -> EcuFaults:
        """Return one ECU's fault memory.

        Raises:
            KeyError: that ECU was not asked.
        """
        for ecu in self.ecus:
            if ecu.address == address:
                return ecu
        raise KeyError(f"no ECU at 0x{address:02X}")

    def to_json(self) -> dict[str, Any]:
        """The ``diag dtc --json`` object, with its ``schema`` version."""
        return {
            "schema": SCHEMA,
            "vin": self.vin,
            "ecus": [ecu.to_json() for ecu in self.ecus],
        }


def decode_fault_memory(
    address: int,
    answer: bytes | UdsError | None,
    *,
    name: str | None = None,
    describe: Describe = _no_description,
) -> EcuFaults:
    """One ECU's fault memory from its answer to ``19 02 FF``.

    Args:
        address: the ECU's diagnostic address.
        answer: the positive response (``59 02 ...``), the ECU's refusal (or another
            answer that is none), or None when it did not answer.
        name: the ECU's name.
        describe: a DTC's description, None when there is none.

    Returns:
        The ECU's entries, or why there are none to show.
    """
    if answer is None:
        return EcuFaults(
            address=address,
            name=name,
            state=FaultState.NOT_ANSWERING,
            problem="did not answer the fault memory read",
        )
    if isinstance(answer, NegativeResponse):
        why = f"refused the fault memory read: NRC 0x{answer.nrc:02X} {answer.nrc_name}"
        if answer.nrc == Nrc.SERVICE_NOT_SUPPORTED:
            why += " (an ECU in its bootloader keeps no fault memory: program it first)"
        return EcuFaults(address=address, name=name, state=FaultState.UNREADABLE, problem=why)
    if isinstance(answer, UdsError):
        return EcuFaults(
            address=address,
            name=name,
            state=FaultState.UNREADABLE,
            problem=f"did not give its fault memory: {answer}",
        )
    try:
        dtcs = parse_dtc_report(answer)
    except UdsError as error:
        return EcuFaults(
            address=address,
            name=name,
            state=FaultState.UNREADABLE,
            problem=f"sent a fault memory that does not decode: {error}",
        )
    return EcuFaults(
        address=address,
        name=name,
        state=FaultState.ANSWERING,
        dtcs=tuple(
            FaultEntry(code=d.code, status=d.status, text=describe(d.code) or NO_DESCRIPTION)
            for d in dtcs
        ),
    )


def describer(catalog: Catalog | None, series: str | None) -> tuple[Describe, dict[int, str]]:
    """DTC descriptions and ECU names by address from P-Data for one series.

    A series P-Data does not hold (or no series, when the gateway could not say) describes
    nothing and names nothing.
    """
    if catalog is None or series is None:
        return _no_description, {}
    try:
        ecus = catalog.catalog(series).ecus
    except PDataMismatch:
        return _no_description, {}

    def describe(code: int) -> str | None:
        return catalog.dtc_text(series, code)

    return describe, {ecu.address: ecu.name for ecu in ecus}


async def read_fault_memory(
    link: Link,
    addresses: Iterable[int],
    *,
    timeout: float = 2.0,
    vin: str | None = None,
    names: Mapping[int, str] | None = None,
    describe: Describe = _no_description,
) -> FaultMemory:
    """Read the fault memory of every ECU in ``addresses``, all at once.

    Args:
        link: an open link to the vehicle.
        addresses: the ECUs to read.
        timeout: P2 of each read.
        vin: the vehicle's VIN, for the result.
        names: ECU names by address.
        describe: a DTC's description (see :func:`describer`).

    Returns:
        Each ECU's entries, or why they could not be read, by address.

    Raises:
        LinkError: the link failed (a silent ECU is not an error: it is listed).
    """
    targets = sorted(set(addresses))
    answers = await asyncio.gather(*(_ask(link, a, READ_ALL, timeout) for a in targets))
    known = names or {}
    return FaultMemory(
        vin=vin,
        ecus=tuple(
            decode_fault_memory(address, answer, name=known.get(address), describe=describe)
            for address, answer in zip(targets, answers, strict=True)
        ),
    )


async def clear_fault_memory(
    link: Link, addresses: Iterable[int], *, timeout: float = 2.0
) -> dict[int, bool | str]:
    """Clear the fault memory of every ECU in ``addresses`` (``14 FF FF FF``), all at once.

    Args:
        link: an open link to the vehicle.
        addresses: the ECUs to clear.
        timeout: P2 of each request (an ECU busy erasing answers "response pending").

    Returns:
        By address: True when the ECU confirmed (``54``), else why not, for a technician.

    Raises:
        LinkError: the link failed.
    """
    targets = sorted(set(addresses))
    answers = await asyncio.gather(*(_ask(link, a, CLEAR_ALL, timeout) for a in targets))
    results: dict[int, bool | str] = {}
    for address, answer in zip(targets, answers, strict=True):
        if answer is None:
            results[address] = "did not answer the clear request"
        elif isinstance(answer, NegativeResponse):
            results[address] = f"refused to clear: NRC 0x{answer.nrc:02X} {answer.nrc_name}"
        elif isinstance(answer, UdsError):
            results[address] = f"did not confirm the clear: {answer}"
        else:  # the client hands back only the positive answer, 54
            results[address] = True
    return results


def readable(memory: FaultMemory) -> list[int]:
    """The addresses whose fault memory was read: the ones a clear should reach."""
    return [ecu.address for ecu in memory.ecus if ecu.state is FaultState.ANSWERING]


async def read_vehicle_fault_memory(
    link: Link, ident: Identification, catalog: Catalog | None, *, timeout: float = 2.0
) -> FaultMemory:
    """Read the fault memory of every ECU that answered the identification.

    ECUs the identification found silent are listed as not answering, without another
    try; descriptions and names come from P-Data for the vehicle's series.

    Args:
        link: an open link to the vehicle.
        ident: the vehicle's identification over the same link.
        catalog: verified P-Data, None for none.
        timeout: P2 of each read.

    Raises:
        LinkError: the link failed.
    """
    series = None if ident.ilevel is None else ident.ilevel.current.series
    describe, names = describer(catalog, series)
    present = [e.address for e in ident.ecus if e.state is not EcuMode.NOT_ANSWERING]
    memory = await read_fault_memory(
        link, present, timeout=timeout, vin=ident.vin, names=names, describe=describe
    )
    silent = [
        EcuFaults(
            address=e.address,
            name=names.get(e.address),
            state=FaultState.NOT_ANSWERING,
            problem="did not answer the identification",
        )
        for e in ident.ecus
        if e.state is EcuMode.NOT_ANSWERING
    ]
    return FaultMemory(
        vin=ident.vin, ecus=tuple(sorted([*memory.ecus, *silent], key=lambda e: e.address))
    )


async def _ask(link: Link, address: int, request: bytes, timeout: float) -> bytes | UdsError | None:
    """One physical request: the positive answer, the ECU's error, or None for silence."""
    try:
        return await UdsClient(link, address, timing=Timing(p2=timeout)).request(request)
    except UdsError as error:  # a refusal, or "response pending" without end
        return error
    except _SILENT:
        return None
