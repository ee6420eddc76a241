"""The actions around a part rather than its flash: IdBackup, HwInstall, FscDeploy, IdRestore.

* **IdBackup** reads the individual data DIDs P-Data lists for the ECU, its stored enabling
  codes and its SVK. The backup is the detail of the action's ``Success`` event, so it is
  on disk, in the same write, before the technician is asked to swap anything; a resume
  after the swap restores from it and never backs up the new, blank part.
* **HwInstall** waits, bounded, for the technician: a retrofit's part must answer; a
  replacement part must answer *as a new part* (in its bootloader, or with another SVK).
* **FscDeploy** writes an application's code obtained from the issuer
  (:class:`~ecuworks.enabling.fsc.FscSource`), or every code of the backup; each must be
  accepted.
* **IdRestore** writes the backed-up individual data and reads it back, byte for byte.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from ecuworks.enabling.fsc import (
    FscSource,
    ensure_accepted,
    read_fsc_records,
    verify_fsc,
    write_fscs,
)
from ecuworks.errors import ConfigError, NegativeResponse, ProgrammingFailed, UdsError
from ecuworks.execute.progress import Kind, Progress, ProgressCallback
from ecuworks.pdata.model import EcuInfo, FscApplication
from ecuworks.plan.model import Action
from ecuworks.uds.client import UdsClient
from ecuworks.vehicle.identify import EcuMode, probe_ecu
from ecuworks.wire.fsc import Fsc
from ecuworks.wire.uds import Session

__all__ = ["Backup", "PartActions", "ReadBackDiffers"]

_POLL_S: Final = 0.5


class ReadBackDiffers(UdsError):
    """A record written to the ECU reads back different (retried like any ECU error)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Backup:
    """What IdBackup saved of the old part.

    Attributes:
        svk: its SVK, to tell the new part from it.
        data: individual data, DID -> record.
        fsc: its enabling codes, 93-byte records.
    """

    svk: tuple[str, ...] = ()
    data: dict[int, bytes] = field(default_factory=dict)
    fsc: tuple[bytes, ...] = ()

    def to_detail(self) -> str:
        """The journal detail: JSON with hex byte strings."""
        return json.dumps(
            {
                "svk": list(self.svk),
                "data": {f"{did:04X}": record.hex() for did, record in self.data.items()},
                "fsc": [record.hex() for record in self.fsc],
            }
        )

    @classmethod
    def from_detail(cls, detail: str) -> Backup:
        """Read the journal detail back.

        Raises:
            ConfigError: the detail is not a backup (a damaged or foreign journal).
        """
        try:
            obj = json.loads(detail)
            return cls(
                svk=tuple(str(u) for u in obj["svk"]),
                data={int(did, 16): bytes.fromhex(rec) for did, rec in obj["data"].items()},
                fsc=tuple(bytes.fromhex(rec) for rec in obj["fsc"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"the journal's backup of the old part cannot be read ({exc}); the backup "
                "is needed to restore the part's data: keep the journal file and get help"
            ) from exc


class PartActions:
    """The part-level actions of one ECU job.

    Args:
        client: the ECU's UDS client.
        ecu: its P-Data metadata.
        vin: the vehicle's VIN (enabling codes are bound to it).
        progress: event callback, for the technician's instructions.
        fsc_source: where new enabling codes come from; None when no issuer is available.
        issuer_key: the issuer's public key, to explain a code the ECU refuses.
        hardware_wait_s: how long to wait for the technician's hardware step.
    """

    def __init__(
        self,
        client: UdsClient,
        ecu: EcuInfo,
        *,
        vin: str,
        progress: ProgressCallback,
        fsc_source: FscSource | None,
        issuer_key: bytes | None,
        hardware_wait_s: float,
    ) -> None:
        self.client = client
        self.ecu = ecu
        self.vin = vin
        self.progress = progress
        self.fsc_source = fsc_source
        self.issuer_key = issuer_key
        self.hardware_wait_s = hardware_wait_s
        self.label = f"{ecu.name} (0x{ecu.address:02X})"

    async def backup(self) -> Backup:
        """Read the old part's individual data, enabling codes and SVK."""
        client = self.client
        svk = await probe_ecu(client.link, self.ecu.address)
        await client.change_session(Session.EXTENDED)
        data = {did: await client.read_did(did) for did in self.ecu.individual_data}
        try:
            codes = await read_fsc_records(client)
        except NegativeResponse:
            codes = []  # an ECU without enabling codes
        await client.change_session(Session.DEFAULT)
        return Backup(svk=tuple(str(u) for u in svk[1]), data=data, fsc=tuple(codes))

    async def wait_for_part(self, action: Action, old: Backup | None) -> None:
        """Say what to do, then wait until the part answers (as a new one, for a swap).

        Raises:
            ProgrammingFailed: no (new) part answered within the wait.
        """
        self.progress(
            Progress(
                kind=Kind.NOTE,
                key=action.key,
                ecu=self.ecu.address,
                status="waiting",
                message=f"{self.label}: {action.reason}; waiting up to "
                f"{self.hardware_wait_s:.0f} s",
            )
        )
        deadline = time.monotonic() + self.hardware_wait_s
        while True:
            mode, svk = await probe_ecu(self.client.link, self.ecu.address)
            if mode is not EcuMode.NOT_ANSWERING:
                new = tuple(str(u) for u in svk)
                if old is None or mode is EcuMode.BOOTLOADER or new != old.svk:
                    self.progress(
                        Progress(
                            kind=Kind.NOTE,
                            ecu=self.ecu.address,
                            message=f"{self.label}: the part answers ({mode}); going on",
                        )
                    )
                    return
            if time.monotonic() >= deadline:
                what = "a new part" if old is not None else "the part"
                raise ProgrammingFailed(
                    f"{self.label}: {what} did not answer within {self.hardware_wait_s:.0f} s; "
                    "check the installation, then run 'ecuworks resume'",
                    ecu=self.ecu.address,
                    action=action.key,
                )
            await asyncio.sleep(_POLL_S)  # a technician's pace: poll, bounded by the deadline

    async def deploy_fsc(
        self, action: Action, old: Backup | None, apps: Mapping[int, FscApplication]
    ) -> None:
        """Write the action's code (or the backed-up ones); each must be accepted.

        Raises:
            FscRefused: the ECU rejected a code (message says why).
            ConfigError: no issuer to obtain a new code from.
        """
        if action.app_id is None:
            records = list(old.fsc) if old is not None else []
        else:
            if self.fsc_source is None:
                raise ConfigError(
                    f"no enabling-code issuer is configured, so the code for application "
                    f"0x{action.app_id:04X} cannot be obtained"
                )
            app = apps.get(action.app_id)
            upgrade = app.upgrade_index if app is not None else 1
            records = [await self.fsc_source(self.vin, action.app_id, upgrade)]
        if not records:
            return
        verdicts = await write_fscs(
            self.client,
            records,
            security_algorithm=self.ecu.security_algorithm,
            secret=self.ecu.secret,
        )
        for record in records:
            code = Fsc.decode(record)
            check = (
                None if self.issuer_key is None else verify_fsc(record, self.issuer_key, self.vin)
            )
            ensure_accepted(
                verdicts[code.app_id],
                code.app_id,
                apps[code.app_id].name if code.app_id in apps else "an application",
                self.label,
                check,
            )

    async def restore(self, old: Backup) -> None:
        """Write the individual data back and read it back byte for byte.

        Raises:
            ProgrammingFailed: a record reads back different.
        """
        client = self.client
        await client.change_session(Session.EXTENDED)
        for did, record in old.data.items():
            await client.write_did(did, record)
        for did, record in old.data.items():
            if await client.read_did(did) != record:
                raise ReadBackDiffers(f"individual data 0x{did:04X} reads back different")
        await client.change_session(Session.DEFAULT)
