"""The vehicle history: search vehicles, read a vehicle's records and one record in full.

Every page is for viewers and up, and works without JavaScript (a GET search form and
links). A record of a programming session shows the SVT before and after per ECU and the
session's steps, read from this workstation's journal (the history only links to it). The
same is offered as JSON under ``/api/history``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ecuworks.errors import JournalError
from ecuworks.execute.journal import Journal
from ecuworks.execute.session import JOURNAL_FILE
from ecuworks.platform.history import (
    ChainBreak,
    VehicleSummary,
    search,
    utc,
    vehicle_records,
    verify_chain,
)
from ecuworks.platform.models import HistoryRecord
from ecuworks.platform.users import Role
from ecuworks.web.auth import Caller, database, require
from ecuworks.web.pages import render
from ecuworks.web.responses import responses
from ecuworks.web.settings import WebSettings

__all__ = ["router"]

router = APIRouter()
Viewer = Annotated[Caller, Depends(require(Role.VIEWER))]
_NOT_HERE = "the journal of this session is not on this workstation"


@dataclass(frozen=True)
class SvtRow:
    """One ECU of a record's SVT comparison."""

    address: int
    name: str
    before: list[str]
    after: list[str] | None
    changed: bool

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "ecu": self.address,
            "name": self.name,
            "before": self.before,
            "after": self.after,
            "changed": self.changed,
        }


@dataclass(frozen=True)
class JournalView:
    """A session's steps from the journal, or why they cannot be shown."""

    steps: list[dict[str, Any]]
    note: str | None


def _when(moment: datetime) -> str:
    return utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")


def _summary_json(summary: VehicleSummary) -> dict[str, Any]:
    return {
        "vin": summary.vin,
        "records": summary.records,
        "last_at": utc(summary.last_at).isoformat(),
        "last_kind": summary.last_kind,
    }


def _record_json(record: HistoryRecord) -> dict[str, Any]:
    return {
        "vin": record.vin,
        "seq": record.seq,
        "kind": record.kind,
        "at": utc(record.at).isoformat(),
        "user": record.user,
        "workstation": record.workstation,
        "outcome": record.outcome,
        "summary": record.summary,
        "journal_session": record.journal_session,
        "hash": record.hash,
    }


def _chain_json(chain: ChainBreak | None, count: int) -> dict[str, Any]:
    if chain is None:
        return {"verified": True, "records": count, "break": None}
    return {"verified": False, "records": count, "break": {"seq": chain.seq, "why": chain.why}}


def _names(data: dict[str, object]) -> dict[int, str]:
    """ECU names a record's data carries (a session report's ``ecus``), by address."""
    ecus = data.get("ecus")
    names: dict[int, str] = {}
    for ecu in ecus if isinstance(ecus, list) else ():
        if isinstance(ecu, dict) and isinstance(ecu.get("ecu"), int) and ecu.get("name"):
            names[ecu["ecu"]] = str(ecu["name"])
    return names


def svt_rows(record: HistoryRecord) -> list[SvtRow]:
    """The SVT before and after, per ECU, in address order."""
    before = record.svt_before or {}
    after = record.svt_after
    names = _names(record.data)
    addresses = sorted({int(a) for a in before} | {int(a) for a in after or {}})
    rows = []
    for address in addresses:
        had = sorted(before.get(str(address), []))
        has = None if after is None else sorted(after.get(str(address), []))
        rows.append(
            SvtRow(address, names.get(address, ""), had, has, has is not None and has != had)
        )
    return rows


def journal_steps(home: Path, session: int | None) -> JournalView:
    """The steps of journal ``session`` on this workstation, read-only."""
    if session is None:
        return JournalView([], None)
    path = home / JOURNAL_FILE
    if not path.is_file():
        return JournalView([], _NOT_HERE)
    try:
        with Journal.open(path) as journal:
            journal.session(session)
            events = journal.events(session)
    except JournalError:
        return JournalView([], _NOT_HERE)
    steps = [
        {
            "key": event.key,
            "ecu": event.ecu,
            "status": str(event.status),
            "attempt": event.attempt,
            "detail": event.detail,
            "at": datetime.fromtimestamp(event.at).astimezone().isoformat(timespec="seconds"),
        }
        for event in events
    ]
    return JournalView(steps, None)


def _home(request: Request) -> Path:
    settings: WebSettings = request.app.state.settings
    return settings.home


def _find(request: Request, vin: str, seq: int) -> HistoryRecord | None:
    for record in vehicle_records(database(request), vin):
        if record.seq == seq:
            return record
    return None


def _not_found(request: Request, message: str, *, page: bool) -> Response:
    if page:
        return render(request, "error.html", {"title": "Not found", "message": message}, status=404)
    return JSONResponse({"detail": message}, status_code=404)


@router.get("/history", response_class=HTMLResponse)
def history_page(request: Request, _caller: Viewer, q: str = "") -> Response:
    """Search vehicles by VIN, user or text; the most recently worked on first."""
    vehicles = search(database(request), q)
    return render(request, "history.html", {"q": q, "vehicles": vehicles, "when": _when})


@router.get("/api/history")
def history_api(request: Request, _caller: Viewer, q: str = "") -> dict[str, Any]:
    """The vehicles matching ``q``, as JSON."""
    return {"vehicles": [_summary_json(v) for v in search(database(request), q)]}


@router.get("/history/{vin}", response_class=HTMLResponse, responses=responses(404))
def vehicle_page(request: Request, vin: str, _caller: Viewer) -> Response:
    """Every record of one vehicle, newest first, and whether its chain verifies."""
    records = vehicle_records(database(request), vin)
    if not records:
        return _not_found(request, f"there is no history for VIN {vin}", page=True)
    chain = verify_chain(database(request), vin)
    return render(
        request,
        "history_vehicle.html",
        {"vin": vin, "records": records[::-1], "chain": chain, "when": _when},
    )


@router.get("/api/history/{vin}", responses=responses(404))
def vehicle_api(request: Request, vin: str, _caller: Viewer) -> Response:
    """One vehicle's records (newest first) and its chain state, as JSON."""
    records = vehicle_records(database(request), vin)
    if not records:
        return _not_found(request, f"there is no history for VIN {vin}", page=False)
    chain = verify_chain(database(request), vin)
    return JSONResponse(
        {
            "vin": vin,
            "chain": _chain_json(chain, len(records)),
            "records": [_record_json(r) for r in reversed(records)],
        }
    )


@router.get("/history/{vin}/{seq}", response_class=HTMLResponse, responses=responses(404))
def record_page(request: Request, vin: str, seq: int, _caller: Viewer) -> Response:
    """One record: SVT before and after per ECU, its data, and the journal's steps."""
    record = _find(request, vin, seq)
    if record is None:
        return _not_found(request, f"VIN {vin} has no history record {seq}", page=True)
    return render(
        request,
        "history_record.html",
        {
            "record": record,
            "rows": svt_rows(record),
            "journal": journal_steps(_home(request), record.journal_session),
            "when": _when,
        },
    )


@router.get("/api/history/{vin}/{seq}", responses=responses(404))
def record_api(request: Request, vin: str, seq: int, _caller: Viewer) -> Response:
    """One record in full, with the SVT comparison and the journal's steps, as JSON."""
    record = _find(request, vin, seq)
    if record is None:
        return _not_found(request, f"VIN {vin} has no history record {seq}", page=False)
    journal = journal_steps(_home(request), record.journal_session)
    return JSONResponse(
        {
            **_record_json(record),
            "prev_hash": record.prev_hash,
            "svt_before": record.svt_before,
            "svt_after": record.svt_after,
            "svt": [row.to_json() for row in svt_rows(record)],
            "data": record.data,
            "journal": {"steps": journal.steps, "note": journal.note},
        }
    )
