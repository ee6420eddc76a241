"""P-Data: which programming data this workstation uses, and a sync for admins.

The page says what ``ecuworks pdata status`` says: where the data comes from, its snapshot
version and expiry, and per series the latest I-level and how many ECUs and units. The
sync does what ``ecuworks pdata sync`` does with the configured repository; configuring
one (its URL and trusted root) stays on the command line, where the root file is.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ecuworks.errors import ConfigError, LinkError, PDataMismatch
from ecuworks.pdata.source import open_pdata
from ecuworks.pdata.store import LocalStore, SyncReport
from ecuworks.platform.history import utc
from ecuworks.platform.sync import sync_status
from ecuworks.platform.users import Role, audit, audit_entries
from ecuworks.web.auth import Caller, database, require
from ecuworks.web.pages import render
from ecuworks.web.responses import responses
from ecuworks.web.settings import WebSettings
from ecuworks.web.workshop import manager

__all__ = ["router"]

router = APIRouter()
Viewer = Annotated[Caller, Depends(require(Role.VIEWER))]
Admin = Annotated[Caller, Depends(require(Role.ADMIN))]
_SYNC_ACTIONS: Final = ("pdata-sync", "pdata-sync-failed")
HOW_TO_CONFIGURE: Final = (
    "No P-Data repository is configured, so this workstation uses the demo data of the "
    "simulated vehicles. An admin configures one on the workstation with "
    "`ecuworks pdata sync URL --root FILE` (FILE: the repository's trusted root metadata); "
    "after that this page syncs it."
)


def _settings(request: Request) -> WebSettings:
    settings: WebSettings = request.app.state.settings
    return settings


def pdata_status(settings: WebSettings) -> dict[str, Any]:
    """What ``ecuworks pdata status --json`` prints, or ``{"error": ...}`` when the data
    cannot be used (it fails verification, or was never synced)."""
    try:
        pdata = open_pdata(settings.home)
        catalog = pdata.catalog
    except (ConfigError, PDataMismatch) as error:
        return {"error": str(error)}
    series = []
    for name in catalog.series:
        cat = catalog.catalog(name)
        series.append(
            {
                "series": name,
                "vehicle": cat.vehicle,
                "ilevels": len(cat.ilevels),
                "latest": str(catalog.latest(name)),
                "ecus": len(cat.ecus),
                "units": len(cat.units),
            }
        )
    return {
        "origin": pdata.origin,
        "demo": pdata.demo,
        "note": pdata.note,
        "snapshot_version": pdata.repo.snapshot.version,
        "expires": pdata.repo.timestamp.expires.isoformat(),
        "series": series,
    }


async def _page(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    settings = _settings(request)
    store = LocalStore(settings.home)
    found = await asyncio.to_thread(pdata_status, settings)
    syncs = [
        {"at": utc(e.at), "user": e.user, "ok": e.action == "pdata-sync", "detail": e.detail}
        for e in audit_entries(database(request), actions=_SYNC_ACTIONS, limit=5)
    ]
    return render(
        request,
        "data.html",
        {
            "status": found,
            "configured": store.is_configured,
            "url": store.url if store.is_configured else None,
            "how_to_configure": HOW_TO_CONFIGURE,
            "syncs": syncs,
            "can_sync": request.state.caller.role.allows(Role.ADMIN),
            "error": error,
            "history_sync": await asyncio.to_thread(sync_status, database(request)),
            "sync_error": request.app.state.sync.last_error,
        },
        status=status,
    )


def _sync_alone(store: LocalStore) -> SyncReport:
    """Sync in an event loop of its own, in a worker thread: the sync hashes and writes
    the images as they arrive, which would hold up the server's loop (and with it the
    tester present of a programming session running on this workstation)."""
    return asyncio.run(store.sync())


@router.get("/data", response_class=HTMLResponse)
async def data_page(request: Request, _caller: Viewer) -> Response:
    """The P-Data status and the last syncs."""
    return await _page(request)


@router.get("/api/data")
async def api_data(request: Request, _caller: Viewer) -> dict[str, Any]:
    """The P-Data status as JSON."""
    status = await asyncio.to_thread(pdata_status, _settings(request))
    return {"schema": 1, **status}


@router.post("/data/sync", response_class=HTMLResponse, responses=responses(303, 409, 502))
async def sync(request: Request, caller: Admin) -> Response:
    """Sync the configured repository; a failure is shown and recorded, never hidden."""
    store = LocalStore(_settings(request).home)
    if not store.is_configured:
        return await _page(request, error=HOW_TO_CONFIGURE, status=409)
    db = database(request)
    try:
        report = await asyncio.to_thread(_sync_alone, store)
    except (ConfigError, PDataMismatch, LinkError) as error:
        audit(db, caller.name, "pdata-sync-failed", detail=str(error))
        status = 502 if isinstance(error, LinkError) else 409
        return await _page(request, error=f"The sync failed: {error}", status=status)
    audit(
        db,
        caller.name,
        "pdata-sync",
        detail=f"{report.url}: snapshot v{report.snapshot_version}, {len(report.targets)} "
        f"images verified, {len(report.downloaded)} fetched ({report.bytes_downloaded} bytes)",
    )
    manager(request).forget_pdata()  # identify, plan and run on the new data from now on
    return RedirectResponse("/data", status_code=303)
