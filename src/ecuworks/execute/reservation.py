"""The VCI reservation a session holds from its first pre-check to its end.

Two workstations must never drive one car (DOMAIN.md, "VCI"): before anything is read for
the pre-checks, the interface is reserved for this workstation; the lease is renewed a few
times per lease while the session runs and released at its end, whatever the end. Another
owner's lease refuses the job (exit 3) with that owner's name, before the vehicle is
touched. Without a management address (a bare CAN adapter, an ECU on the bench) there is
nothing to reserve; the caller says so to the technician.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from ecuworks.errors import InterfaceReserved, LinkError, Refused
from ecuworks.execute.progress import Kind, Progress, ProgressCallback, ignore
from ecuworks.transport.vci import VciAdmin

__all__ = ["DEFAULT_LEASE_S", "Reservation", "default_owner", "hold_vci"]

DEFAULT_LEASE_S: Final = 60.0
# Renewals per lease: two may be missed before the lease runs out.
_RENEWALS_PER_LEASE: Final = 3


def default_owner() -> str:
    """``user@host``: how a workstation names itself to the VCI."""
    return f"{getpass.getuser()}@{socket.gethostname()}"[:64]


@dataclass(frozen=True, slots=True, kw_only=True)
class Reservation:
    """Where and for whom to reserve the VCI.

    Attributes:
        url: the VCI's management address, ``http://HOST:PORT``.
        owner: this workstation's name as the VCI shows it to others.
        lease_s: seconds a lease holds unless renewed.
        keep: leave the reservation in place at the end (renewed to a full lease): the
            technician reserved the VCI by hand, for more than this one job, and releases
            it by hand.
    """

    url: str
    owner: str
    lease_s: float = DEFAULT_LEASE_S
    keep: bool = False


@contextlib.asynccontextmanager
async def hold_vci(
    reservation: Reservation | None, progress: ProgressCallback = ignore
) -> AsyncIterator[None]:
    """Hold the VCI for the body of the ``async with``; do nothing for None.

    Raises:
        Refused: ``check="reservation"``: another owner holds it, or its management
            address does not answer. Nothing was written.
    """
    if reservation is None:
        yield
        return
    async with VciAdmin(reservation.url) as admin:
        try:
            await admin.reserve(reservation.owner, reservation.lease_s)
        except InterfaceReserved as exc:
            left = f" for {exc.expires_in:.0f} more seconds" if exc.expires_in is not None else ""
            raise Refused(
                f"the VCI is reserved by {exc.owner!r}{left}; wait until it is released or "
                "ask that workstation to release it. Nothing was written.",
                check="reservation",
            ) from exc
        except LinkError as exc:
            raise Refused(
                f"the VCI could not be reserved: {exc}. Nothing was written.",
                check="reservation",
            ) from exc
        renewer = asyncio.create_task(_renew(admin, reservation, progress))
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            await _end(admin, reservation, progress)


async def _end(admin: VciAdmin, reservation: Reservation, progress: ProgressCallback) -> None:
    """Release the VCI, or renew a kept reservation to a full lease; a failure is said."""
    try:
        if reservation.keep:
            await admin.reserve(reservation.owner, reservation.lease_s)
        else:
            await admin.release(reservation.owner)
    except (InterfaceReserved, LinkError) as exc:
        what = "renewing" if reservation.keep else "releasing"
        progress(Progress(kind=Kind.NOTE, message=f"{what} the VCI reservation failed: {exc}"))


async def _renew(admin: VciAdmin, reservation: Reservation, progress: ProgressCallback) -> None:
    """Renew the lease until cancelled; a failed renewal is said, and tried again."""
    period = reservation.lease_s / _RENEWALS_PER_LEASE
    while True:
        await asyncio.sleep(period)
        try:
            await admin.reserve(reservation.owner, reservation.lease_s)
        except (InterfaceReserved, LinkError) as exc:
            progress(
                Progress(kind=Kind.NOTE, message=f"renewing the VCI reservation failed: {exc}")
            )
