"""One ECU's share of a plan: flash its units, activate them, code it.

The flash sequence of DOMAIN.md and DESIGN.md, per ECU: ``10 03``, ``10 02``, security
level 0x11; per unit: erase (routine FF00 on the unit's region), RequestDownload,
TransferData blocks, RequestTransferExit, check memory (routine 0202 with the CRC-32 of
what was sent); then check programming dependencies (routine FF01) and ``11 01`` reset,
after which the ECU runs its new application. Coding (CdDeploy) follows in the coding
session: the records are read, the VO's values set (:func:`ecuworks.coding.ncd.coded_records`),
written, the CAFD written into DID 37FE, and all of it read back.

Every action is journaled Started before its first request and Success or Failed after
its last; a unit that fails is tried again from its erase, up to ``attempts`` times in all.
A new unit starts only when the power gate is open (:class:`PowerGate`).
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ecuworks.coding.ncd import coded_records
from ecuworks.enabling.fsc import FscSource
from ecuworks.errors import (
    ConfigError,
    FscRefused,
    LinkClosed,
    LinkError,
    ParseError,
    PDataMismatch,
    ProgrammingFailed,
    UdsError,
)
from ecuworks.execute.journal import Journal, Status
from ecuworks.execute.part_actions import Backup, PartActions
from ecuworks.execute.progress import Kind, Progress, ProgressCallback
from ecuworks.pdata.model import EcuInfo, RegionInfo
from ecuworks.pdata.source import PData
from ecuworks.plan.model import Action, Category, Plan
from ecuworks.transport.base import Link
from ecuworks.uds.client import Timing, UdsClient
from ecuworks.wire.sgbm import SgbmId, encode_svk, parse_svk
from ecuworks.wire.uds import Did, Routine, Session, encode_memory_location
from ecuworks.wire.vo import VehicleOrder

__all__ = ["ACTIVATE", "EcuJob", "JobContext", "activation_key"]

PROGRAMMING_LEVEL = 0x11
CODING_LEVEL = 0x01
ROUTINE_OK = b"\x00"
ACTIVATE = "Activate"


class _AttemptFailed(Exception):
    """A step of the sequence reported failure (a routine's status): try again."""


# Errors after which an attempt is worth repeating: the ECU or the link said no or went quiet.
_RETRYABLE = (UdsError, LinkError, ParseError, _AttemptFailed)


def activation_key(ecu: int) -> str:
    """Journal key of an ECU's check-dependencies-and-reset step."""
    return f"0x{ecu:02X}/{ACTIVATE}/-"


@dataclass(kw_only=True)
class JobContext:
    """What every ECU job of one session shares.

    Attributes:
        link: the open link to the vehicle.
        plan: the plan being executed.
        pdata: verified programming data.
        journal: the session's journal.
        session_id: the journal session.
        progress: event callback.
        wait_power: awaits until a new unit may start (the power gate).
        attempts: tries per action.
        timing: UDS timing of the clients.
        done: action keys already successful (from the journal), updated as they succeed.
        fsc_source: where new enabling codes come from (FscDeploy); None if no issuer.
        issuer_key: the issuer's public key, to explain a refused code.
        hardware_wait_s: how long HwInstall waits for the technician.
    """

    link: Link
    plan: Plan
    pdata: PData
    journal: Journal
    session_id: int
    progress: ProgressCallback
    wait_power: Callable[[], Awaitable[None]]
    attempts: int = 3
    timing: Timing = field(default_factory=Timing)
    done: set[str] = field(default_factory=set)
    bytes_sent: int = 0
    fsc_source: FscSource | None = None
    issuer_key: bytes | None = None
    hardware_wait_s: float = 900.0


class EcuJob:
    """Runs one ECU's actions.

    Args:
        ctx: the session's shared context.
        ecu: the ECU's P-Data metadata.
        recover: the ECU is in its bootloader now: activate it even if the journal says
            its units are done.
    """

    def __init__(self, ctx: JobContext, ecu: EcuInfo, *, recover: bool = False) -> None:
        self.ctx = ctx
        self.ecu = ecu
        self.actions = ctx.plan.actions_of(ecu.address)
        self.recover = recover
        self.client = UdsClient(ctx.link, ecu.address, timing=ctx.timing)
        self.part = PartActions(
            self.client,
            ecu,
            vin=ctx.plan.vin,
            progress=ctx.progress,
            fsc_source=ctx.fsc_source,
            issuer_key=ctx.issuer_key,
            hardware_wait_s=ctx.hardware_wait_s,
        )
        self.started = 0.0
        self.ended = 0.0

    @property
    def label(self) -> str:
        """``DME (0x12)``."""
        return f"{self.ecu.name} (0x{self.ecu.address:02X})"

    async def run(self) -> None:
        """Back up, wait for the part, flash, activate, code, enable and restore, in the
        order of DOMAIN.md, skipping what the journal says is done.

        Raises:
            ProgrammingFailed: an action failed ``attempts`` times.
        """
        self.started = time.monotonic()
        ctx = self.ctx
        ctx.progress(Progress(kind=Kind.ECU, ecu=self.ecu.address, status="Started"))
        backup = self._backup()
        for action in self._pending(Category.ID_BACKUP):
            await self._attempts([action], self._take_backup)
            backup = self._backup()
        for action in self._pending(Category.HW_INSTALL):
            await self._attempts(
                [action], functools.partial(self.part.wait_for_part, action, backup)
            )
        flashes = [a for a in self.actions if a.flashes]
        pending = [a for a in flashes if a.key not in ctx.done]
        activate = activation_key(self.ecu.address)
        if pending or (flashes and activate not in ctx.done) or self.recover:
            await self._program(pending, flashes)
        coding = [a for a in self.actions if a.category is Category.CD_DEPLOY]
        if coding and any(a.key not in ctx.done for a in coding):
            await ctx.wait_power()
            await self._attempts(coding, self._code)
        apps = {a.app_id: a for a in ctx.pdata.catalog.fsc(ctx.plan.series)}
        for action in self._pending(Category.FSC_DEPLOY):
            await self._attempts(
                [action], functools.partial(self.part.deploy_fsc, action, backup, apps)
            )
        for action in self._pending(Category.ID_RESTORE):
            if backup is None:
                raise ProgrammingFailed(
                    f"{self.label}: the journal holds no backup of the old part to restore",
                    ecu=self.ecu.address,
                    action=action.key,
                )
            await self._attempts([action], functools.partial(self.part.restore, backup))
        self.ended = time.monotonic()
        ctx.progress(Progress(kind=Kind.ECU, ecu=self.ecu.address, status="Success"))

    def _pending(self, category: Category) -> list[Action]:
        return [a for a in self.actions if a.category is category and a.key not in self.ctx.done]

    def _backup(self) -> Backup | None:
        """The IdBackup this session saved of the ECU, from the journal."""
        for action in self.actions:
            if action.category is Category.ID_BACKUP:
                event = self.ctx.journal.last(self.ctx.session_id, action.key)
                if event is not None and event.status == Status.SUCCESS:
                    return Backup.from_detail(event.detail)
        return None

    async def _take_backup(self) -> str:
        """IdBackup: its detail (the backup) is journaled with its Success."""
        return (await self.part.backup()).to_detail()

    # -- flashing ------------------------------------------------------------------

    async def _program(self, pending: list[Action], flashes: list[Action]) -> None:
        """Flash what is pending, then FF01 and reset; once more in full if FF01 says no."""
        activate = activation_key(self.ecu.address)
        await self._flash_each(pending)
        if await self._attempts_activation(activate):
            return
        # FF01 says a region is incomplete: the journal was wrong about a unit (the ECU
        # lost it). Flash every unit of this ECU again, once.
        self.ctx.progress(
            Progress(
                kind=Kind.NOTE,
                ecu=self.ecu.address,
                message=f"{self.label}: dependency check failed, flashing all units again",
            )
        )
        self.ctx.done.difference_update(a.key for a in flashes)
        await self._flash_each(flashes)
        if await self._attempts_activation(activate):
            return
        raise ProgrammingFailed(
            f"{self.label}: the ECU still reports incomplete software after every unit was "
            "flashed again; leave the vehicle on the charger and run 'ecuworks resume'",
            ecu=self.ecu.address,
            action=activate,
        )

    async def _flash_each(self, actions: list[Action]) -> None:
        """Each unit in turn, once the power gate lets it start."""
        for action in actions:
            await self.ctx.wait_power()
            await self._attempts([action], functools.partial(self._flash, action))

    async def _enter_programming(self) -> None:
        client = self.client
        await client.change_session(Session.EXTENDED)
        await client.change_session(Session.PROGRAMMING)
        await client.security_access(
            PROGRAMMING_LEVEL, self.ecu.security_algorithm, self.ecu.secret
        )

    def _region(self, action: Action) -> tuple[RegionInfo, int]:
        """The region a unit is downloaded to (at its start), and the image's size."""
        assert action.unit is not None
        unit = self.ctx.pdata.unit(action.unit)
        address = unit.segments[0].address
        for region in self.ecu.regions:
            if region.address == address:
                return region, unit.size
        raise ConfigError(
            f"{self.label}: P-Data has no region at 0x{address:X} for {action.unit}; "
            "the P-Data and the ECU's metadata disagree, sync the P-Data again"
        )

    async def _flash(self, action: Action) -> None:
        """One unit, from its erase: the caller retries."""
        region, size = self._region(action)
        assert action.unit is not None
        # The image is verified before its first chunk: take that chunk before the erase,
        # so that data failing verification never leaves an erased ECU behind.
        stream = self.ctx.pdata.open_unit(action.unit)
        first = next(stream, b"")
        await self._enter_programming()
        location = encode_memory_location(
            region.address, region.size, address_bytes=4, size_bytes=4
        )
        answer = await self.client.routine(Routine.ERASE_MEMORY, data=location)
        if answer != ROUTINE_OK:
            raise _AttemptFailed(f"erase answered status {answer.hex()}")
        key = action.key
        ecu = self.ecu.address

        def moved(done: int, total: int) -> None:
            self.ctx.progress(Progress(kind=Kind.BYTES, key=key, ecu=ecu, done=done, total=total))

        result = await self.client.download(
            region.address,
            size,
            itertools.chain((first,), stream),
            memory_format=(4, 4),
            progress=moved,
        )
        self.ctx.bytes_sent += result.bytes_sent
        crc = result.crc32.to_bytes(4, "big")
        if await self.client.routine(Routine.CHECK_MEMORY, data=crc) != ROUTINE_OK:
            raise _AttemptFailed("check memory (routine 0202) reports a CRC mismatch")

    async def _attempts_activation(self, key: str) -> bool:
        """FF01 and reset; False when FF01 says a region is incomplete."""
        ctx = self.ctx
        for attempt in range(1, ctx.attempts + 1):
            ctx.journal.record(
                ctx.session_id, key, Status.STARTED, ecu=self.ecu.address, attempt=attempt
            )
            try:
                await self._enter_programming()
                answer = await self.client.routine(Routine.CHECK_PROGRAMMING_DEPENDENCIES)
                if answer != ROUTINE_OK:
                    ctx.journal.record(
                        ctx.session_id,
                        key,
                        Status.FAILED,
                        ecu=self.ecu.address,
                        attempt=attempt,
                        detail="FF01: software incomplete",
                    )
                    return False
                await self.client.ecu_reset(0x01, timeout=max(10.0, self.ecu.boot_ms / 100))
            except _RETRYABLE as exc:
                self._failed(key, attempt, exc)
                self._stop_if_disconnected(exc)
                continue
            ctx.journal.record(
                ctx.session_id, key, Status.SUCCESS, ecu=self.ecu.address, attempt=attempt
            )
            ctx.done.add(key)
            return True
        raise ProgrammingFailed(
            f"{self.label}: activation (FF01 + reset) failed {ctx.attempts} times; "
            "run 'ecuworks resume' once the cause is fixed",
            ecu=self.ecu.address,
            action=key,
        )

    # -- coding --------------------------------------------------------------------

    async def _code(self) -> None:
        """VO coding and the CAFD, read back; the caller retries."""
        ctx = self.ctx
        plan = ctx.plan
        catalog = ctx.pdata.catalog
        if plan.vo is None:
            raise ConfigError("the plan has no vehicle order, so the ECU cannot be coded")
        expert = {k: v for a in self.actions for k, v in a.parameters.items()}
        if expert:  # expert coding: this parameter only, the CAFD stays as it is
            values, cafds = expert, []
        else:
            vo = VehicleOrder.parse(plan.vo)
            values = catalog.coding_values(plan.series, self.ecu.address, vo)
            cafds = [
                SgbmId.parse(u)
                for u in plan.target_svt.get(self.ecu.address, ())
                if u.startswith("CAFD-")
            ]
        client = self.client
        await client.change_session(Session.EXTENDED)
        await client.change_session(Session.CODING)
        layout = self.ecu.coding
        current = {r.did: await client.read_did(r.did) for r in layout.records}
        wanted = coded_records(layout, values, current)
        for did, record in wanted.items():
            if record != current[did]:
                await client.write_did(did, record)
        if cafds:
            await client.write_did(Did.CODING_CAFD, encode_svk(cafds))
        for did, record in wanted.items():
            if await client.read_did(did) != record:
                raise _AttemptFailed(f"coding record 0x{did:04X} reads back different")
        if cafds and parse_svk(await client.read_did(Did.CODING_CAFD)) != cafds:
            raise _AttemptFailed("the CAFD (DID 37FE) reads back different")
        await client.change_session(Session.DEFAULT)

    # -- attempts ------------------------------------------------------------------

    async def _attempts(
        self, actions: list[Action], work: Callable[[], Awaitable[str | None]]
    ) -> None:
        """Run ``work`` for ``actions`` (journaled together) up to ``attempts`` times; what
        ``work`` returns is journaled as the detail of their Success."""
        ctx = self.ctx
        first = actions[0]
        base = ctx.journal.attempts(ctx.session_id, first.key)
        last = ""
        for attempt in range(base + 1, base + ctx.attempts + 1):
            for action in actions:
                ctx.journal.record(
                    ctx.session_id, action.key, Status.STARTED, ecu=action.ecu, attempt=attempt
                )
                ctx.progress(
                    Progress(
                        kind=Kind.ACTION,
                        key=action.key,
                        ecu=action.ecu,
                        status="Started",
                        done=attempt,
                        total=action.bytes,
                    )
                )
            try:
                detail = await work()
            # The same code would be refused again, and an issuer that refused or did not
            # answer needs the technician first: say why, journal kept for resume.
            except (FscRefused, ConfigError) as exc:
                for action in actions:
                    self._failed(action.key, attempt, exc)
                raise ProgrammingFailed(str(exc), ecu=self.ecu.address, action=first.key) from exc
            except PDataMismatch:
                for action in actions:
                    ctx.journal.record(
                        ctx.session_id,
                        action.key,
                        Status.FAILED,
                        ecu=action.ecu,
                        attempt=attempt,
                        detail="P-Data failed verification",
                    )
                raise
            except _RETRYABLE as exc:
                for action in actions:
                    self._failed(action.key, attempt, exc)
                self._stop_if_disconnected(exc)
                last = f"{type(exc).__name__}: {exc}"
                continue
            for action in actions:
                ctx.journal.record(
                    ctx.session_id,
                    action.key,
                    Status.SUCCESS,
                    ecu=action.ecu,
                    attempt=attempt,
                    detail=detail or "",
                )
                ctx.done.add(action.key)
                ctx.progress(
                    Progress(kind=Kind.ACTION, key=action.key, ecu=action.ecu, status="Success")
                )
            return
        raise ProgrammingFailed(
            f"{self.label}: {first.category} {first.unit or ''} failed {ctx.attempts} times "
            f"(last: {last}); the journal keeps where it stopped: fix the cause and run "
            "'ecuworks resume'",
            ecu=self.ecu.address,
            action=first.key,
        )

    def _stop_if_disconnected(self, exc: BaseException) -> None:
        """End the job when the connection to the vehicle is gone.

        Every further attempt would fail at once and still be journaled as one: a dropped
        link used to spend all of an action's attempts in a few milliseconds, after which
        ``resume`` refused a bootloader that was never even erased ("tried 3 times").

        Raises:
            LinkClosed: the link is down; the runner ends the session for ``resume``.
        """
        if not self.ctx.link.is_open:
            raise LinkClosed(
                f"{self.label}: the connection to the vehicle dropped ({exc})"
            ) from exc

    def _failed(self, key: str, attempt: int, exc: BaseException) -> None:
        ctx = self.ctx
        detail = f"{type(exc).__name__}: {exc}"
        ctx.journal.record(
            ctx.session_id, key, Status.FAILED, ecu=self.ecu.address, attempt=attempt, detail=detail
        )
        ctx.progress(
            Progress(
                kind=Kind.ACTION,
                key=key,
                ecu=self.ecu.address,
                status="Failed",
                done=attempt,
                message=f"{self.label}: attempt {attempt} failed: {detail}",
            )
        )
