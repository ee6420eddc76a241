"""Enabling codes for workstations: VIN grants, and issuing only what a grant allows.

A workshop obtains codes for the vehicles it was granted: one VIN (17 characters) or
every VIN that starts with a prefix, for one application or for all. Every code issued
is recorded (``fsc_issued``) with the workstation that asked, for the reports.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import select

from ecuworks.backend.accounts import Caller, workshop_by_name
from ecuworks.backend.fsc import FscIssuer
from ecuworks.backend.models import FscIssued, VinGrant
from ecuworks.errors import AccessDenied, ConfigError
from ecuworks.platform.db import Database

__all__ = ["add_grant", "issue_fsc"]

# VIN characters (ISO 3779): digits and capitals without I, O, Q.
_VIN_CHARS: Final = re.compile(r"[A-HJ-NPR-Z0-9]{1,17}")


def _pattern(vin_or_prefix: str) -> str:
    pattern = vin_or_prefix.strip().upper()
    if not _VIN_CHARS.fullmatch(pattern):
        raise ConfigError(
            f"{vin_or_prefix!r} is no VIN or VIN prefix: 1 to 17 of 0-9 and A-Z without I, O, Q"
        )
    return pattern


def add_grant(database: Database, workshop: str, vin_or_prefix: str, app_id: int | None) -> None:
    """Allow ``workshop`` codes for a VIN or every VIN with a prefix; ``app_id`` None: all.

    Raises:
        ConfigError: no such workshop, or not a VIN, prefix or application id.
    """
    pattern = _pattern(vin_or_prefix)
    if app_id is not None and not 0 <= app_id <= 0xFFFF:
        raise ConfigError(f"an application id is 0 to 0xFFFF, got {app_id:#x}")
    with database.session() as session:
        shop = workshop_by_name(session, workshop)
        session.add(
            VinGrant(
                workshop_id=shop.id,
                vin_pattern=pattern,
                app_id=app_id,
                created_at=datetime.now(UTC),
            )
        )


def _refusal(grants: list[VinGrant], caller: Caller, vin: str, app_id: int) -> str | None:
    """Why no grant covers ``vin`` and ``app_id``; None when one does."""
    for_vin = [g for g in grants if vin.startswith(g.vin_pattern)]
    if not for_vin:
        return (
            f"workshop {caller.workshop!r} has no grant for VIN {vin}; ask the backend's "
            "admin for one ('ecuworks backend grant')"
        )
    if any(g.app_id is None or g.app_id == app_id for g in for_vin):
        return None
    allowed = ", ".join(sorted({f"0x{g.app_id:04X}" for g in for_vin if g.app_id is not None}))
    return (
        f"workshop {caller.workshop!r} may enable only {allowed} on VIN {vin}, not "
        f"0x{app_id:04X}; ask the backend's admin for a grant"
    )


def issue_fsc(
    database: Database,
    issuer: FscIssuer,
    caller: Caller,
    *,
    vin: str,
    app_id: int,
    upgrade_index: int,
) -> bytes:
    """Issue the code for ``vin``, ``app_id`` and ``upgrade_index`` to a workstation.

    Returns:
        The 93-byte signed record.

    Raises:
        AccessDenied: 403, the caller is no workstation or its workshop has no grant that
            covers the VIN and application (the message says which).
        ConfigError: a value does not fit the record.
    """
    if not caller.is_workstation or caller.workshop_id is None:
        raise AccessDenied("enabling codes are issued to workstations only", status=403)
    vin = vin.strip().upper()
    issued = int(time.time())
    record = issuer.issue(vin, app_id, upgrade_index, issued=issued)
    with database.session() as session:
        grants = list(
            session.scalars(select(VinGrant).where(VinGrant.workshop_id == caller.workshop_id))
        )
        refusal = _refusal(grants, caller, vin, app_id)
        if refusal is not None:
            raise AccessDenied(refusal, status=403)
        session.add(
            FscIssued(
                workshop_id=caller.workshop_id,
                workstation=caller.name,
                vin=vin,
                app_id=app_id,
                upgrade_index=upgrade_index,
                at=datetime.fromtimestamp(issued, UTC),
            )
        )
    return record
