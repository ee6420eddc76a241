"""The vehicle-wide steps of a plan, each journaled as ``step/<name>``.

Preparation: flash energy mode on the gateway (routine 0F0C), DTC setting and normal
communication off on every ECU (functional ``85 82``, ``28 81 01`` after ``10 83``).
Finish: the reverse, then the I-level triple and the VO written to the gateway, DTCs
cleared and read again (functional ``14 FFFFFF``, ``19 02 FF``), and the final check:
the vehicle identified again and its SVT compared with the plan's target.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Final

from ecuworks.errors import LinkError, ProgrammingFailed, UdsError
from ecuworks.execute.ecu_job import CODING_LEVEL
from ecuworks.execute.journal import Journal, Status
from ecuworks.execute.progress import Kind, Progress, ProgressCallback
from ecuworks.execute.report import Report
from ecuworks.pdata.model import EcuInfo
from ecuworks.plan.model import Plan
from ecuworks.transport.base import Link
from ecuworks.uds.client import UdsClient
from ecuworks.uds.functional import functional_request
from ecuworks.vehicle.dtc import clear_fault_memory
from ecuworks.vehicle.identify import EcuMode, Identification, identify
from ecuworks.wire.ilevel import ILevel, ILevelTriple
from ecuworks.wire.uds import Did, Routine, Session
from ecuworks.wire.vo import VehicleOrder

__all__ = ["Steps"]

ENERGY_FLASH: Final = b"\x03"
ENERGY_NORMAL: Final = b"\x00"
# Functional requests: answers are collected this long at most (real seconds).
_FUNCTIONAL_S: Final = 1.0
# P2 of each ECU's own clear request (an ECU busy erasing answers "response pending").
_CLEAR_P2_S: Final = 2.0


class Steps:
    """The vehicle-wide steps, each journaled as ``step/<name>``."""

    def __init__(  # noqa: PLR0917 -- one call site, each argument named there
        self,
        link: Link,
        plan: Plan,
        ident: Identification,
        gateway_info: EcuInfo,
        journal: Journal,
        session_id: int,
        progress: ProgressCallback,
    ) -> None:
        self.link = link
        self.plan = plan
        self.ident = ident
        self.journal = journal
        self.session_id = session_id
        self.progress = progress
        self.gateway = UdsClient(link, plan.gateway)
        self.gateway_info = gateway_info
        self.dtcs: dict[int, int] = {}
        self.not_cleared: dict[int, str] = {}
        self.final: Identification | None = None
        self._actions: dict[str, Callable[[], Awaitable[str | None]]] = {
            "energy-mode-flash": lambda: self._energy(ENERGY_FLASH),
            "dtc-setting-off": lambda: self._functional(b"\x85\x02"),
            "communication-off": lambda: self._functional(b"\x28\x01\x01"),
            "communication-on": lambda: self._functional(b"\x28\x00\x01"),
            "dtc-setting-on": lambda: self._functional(b"\x85\x01"),
            "energy-mode-normal": lambda: self._energy(ENERGY_NORMAL),
            "write-ilevel": self._write_ilevel,
            "write-vo": self._write_vo,
            "clear-dtcs": self._clear_dtcs,
            "clear-fault-memory": self._clear_fault_memory,
            "read-dtcs": self._read_dtcs,
            "final-check": self._final_check,
        }

    async def run(self, name: str) -> None:
        """Run one step, journaled; an unknown step name is refused."""
        work = self._actions.get(name)
        key = f"step/{name}"
        if work is None:
            raise ProgrammingFailed(f"the plan names an unknown step {name!r}", action=key)
        self.journal.record(self.session_id, key, Status.STARTED)
        self.progress(Progress(kind=Kind.STEP, key=key, status="Started"))
        try:
            detail = await work()
        except (UdsError, LinkError) as exc:
            self.journal.record(self.session_id, key, Status.FAILED, detail=str(exc))
            raise
        self.journal.record(self.session_id, key, Status.SUCCESS, detail=detail or "")
        self.progress(Progress(kind=Kind.STEP, key=key, status="Success"))

    async def _functional(self, payload: bytes) -> None:
        """Extended session, then ``payload``, to every ECU, waiting for their answers.

        Answers are asked for (no suppress bit) so that each ECU has acted on the request
        before the next step: a late functional ``10 03`` would otherwise switch an ECU
        that has just entered its programming session back out of it.
        """
        expected = self._answering()
        await functional_request(
            self.link, bytes((0x10, Session.EXTENDED)), timeout=_FUNCTIONAL_S, expected=expected
        )
        await functional_request(self.link, payload, timeout=_FUNCTIONAL_S, expected=expected)

    async def _energy(self, mode: bytes) -> None:
        await self.gateway.change_session(Session.EXTENDED)
        await self.gateway.routine(Routine.ENERGY_MODE, data=mode)

    async def _unlock_gateway(self) -> None:
        info = self.gateway_info
        await self.gateway.change_session(Session.EXTENDED)
        await self.gateway.security_access(CODING_LEVEL, info.security_algorithm, info.secret)

    async def _write_ilevel(self) -> None:
        target = ILevel.parse(self.plan.target_ilevel)
        last = ILevel.parse(self.plan.actual_ilevel) if self.plan.actual_ilevel else target
        await self._unlock_gateway()
        # Read now, not from the identification: on a resume the gateway may have been in
        # its bootloader then. "last" comes from the plan, so a repeated write is the same.
        shipment = ILevelTriple.decode(await self.gateway.read_did(Did.ILEVEL)).shipment
        triple = ILevelTriple(current=target, last=last, shipment=shipment)
        await self.gateway.write_did(Did.ILEVEL, triple.encode())

    async def _write_vo(self) -> None:
        if self.plan.vo is None:
            return
        await self._unlock_gateway()
        await self.gateway.write_did(Did.VEHICLE_ORDER, VehicleOrder.parse(self.plan.vo).encode())

    def _present(self) -> list[int]:
        return [e.address for e in self.ident.ecus if e.state is not EcuMode.NOT_ANSWERING]

    def _answering(self) -> int:
        return len(self._present())

    async def _clear_dtcs(self) -> None:
        await functional_request(
            self.link, b"\x14\xff\xff\xff", timeout=_FUNCTIONAL_S, expected=self._answering()
        )

    async def _clear_fault_memory(self) -> str | None:
        """Each answering ECU cleared and confirming on its own; the refusals are kept
        (and journaled) for the report."""
        cleared = await clear_fault_memory(self.link, self._present(), timeout=_CLEAR_P2_S)
        self.not_cleared = {a: why for a, why in cleared.items() if isinstance(why, str)}
        if not self.not_cleared:
            return None
        return json.dumps({f"0x{a:02X}": why for a, why in sorted(self.not_cleared.items())})

    async def _read_dtcs(self) -> None:
        answers = await functional_request(
            self.link, b"\x19\x02\xff", timeout=_FUNCTIONAL_S, expected=self._answering()
        )
        for address, answer in answers.items():
            if isinstance(answer, bytes):
                self.dtcs[address] = max(0, (len(answer) - 3) // 4)

    async def _final_check(self) -> None:
        # A retrofit's new part answers now, though it did not when the job began.
        expected = sorted({e.address for e in self.ident.ecus} | set(self.plan.ecus))
        self.final = await identify(
            self.link, gateway=self.plan.gateway, expected=expected, timeout=2.0
        )
        await self.link.send_functional(bytes((0x10, 0x80 | Session.DEFAULT)))

    def fill(self, report: Report) -> None:
        """Put the DTC counts and the final check into the report."""
        for entry in report.ecus:
            entry.dtcs = self.dtcs.get(entry.ecu)
        report.not_cleared = dict(self.not_cleared)
        final = self.final
        if final is None:
            report.final_check = False
            report.mismatches.append("the final check did not run")
            return
        actual = final.svt
        report.svt_after = actual
        for address in self.plan.ecus:
            want = list(self.plan.target_svt.get(address, ()))
            have = actual.get(address, [])
            ok = sorted(want) == sorted(have)
            for entry in report.ecus:
                if entry.ecu == address:
                    entry.svk_matches = ok
            if not ok:
                missing = ", ".join(sorted(set(want) - set(have))) or "-"
                report.mismatches.append(
                    f"0x{address:02X}: SVK differs from the target (missing {missing})"
                )
        if final.ilevel is None or str(final.ilevel.current) != self.plan.target_ilevel:
            report.mismatches.append(
                f"the gateway's I-level is {final.ilevel.current if final.ilevel else 'unknown'}, "
                f"not {self.plan.target_ilevel}"
            )
        report.final_check = not report.mismatches
        for address, count in sorted(self.dtcs.items()):
            if count:
                report.notes.append(f"0x{address:02X} has {count} DTC(s) after the clear")
