"""Reports: sessions per kind and outcome, success rate, mean duration, the latest ones."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from ecuworks.platform.history import utc
from ecuworks.platform.reports import session_report
from ecuworks.platform.users import Role
from ecuworks.web.auth import Caller, database, require
from ecuworks.web.pages import render

__all__ = ["router"]

router = APIRouter()
Viewer = Annotated[Caller, Depends(require(Role.VIEWER))]


@router.get("/reports", response_class=HTMLResponse)
async def reports_page(request: Request, _caller: Viewer) -> Response:
    """The report page."""
    report = session_report(database(request))
    latest = [(utc(r.at), r) for r in report.latest]
    return render(request, "reports.html", {"report": report, "latest": latest})


@router.get("/api/reports")
async def api_reports(request: Request, _caller: Viewer) -> dict[str, Any]:
    """The report as JSON."""
    report = session_report(database(request))
    return {
        "schema": 1,
        "total": report.total,
        "kinds": [
            {
                "kind": k.kind,
                "total": k.total,
                "outcomes": k.outcomes,
                "success_rate": round(k.success_rate, 4),
                "mean_wall_s": None if k.mean_wall_s is None else round(k.mean_wall_s, 3),
            }
            for k in report.kinds
        ],
        "latest": [
            {
                "at": utc(r.at).isoformat(),
                "vin": r.vin,
                "seq": r.seq,
                "kind": r.kind,
                "user": r.user,
                "outcome": r.outcome,
                "summary": r.summary,
            }
            for r in report.latest
        ],
    }
