"""The report pages: a login form, a session cookie, and the reports with SVG charts.

Server-side HTML only (Jinja2, no script, no build step). The one style block is allowed
by its SHA-256 in the content security policy (:data:`CSP`), so nothing else inline runs.
The login form is protected against cross-site posting by a double-submit token: a
cookie set with the form must come back equal to the form's field.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from ecuworks.backend.accounts import Caller, end_session, log_in
from ecuworks.backend.api import report_json
from ecuworks.backend.auth import COOKIE, caller, database, form_data
from ecuworks.backend.charts import bar_chart
from ecuworks.errors import AccessDenied
from ecuworks.web.responses import responses

__all__ = ["CSP", "local", "login_page", "router"]

_CSS: Final = (
    "body{font-family:system-ui,sans-serif;margin:0;color:#222}"
    "header{background:#1a365d;color:#fff;padding:.6em 1em}"
    "main{padding:1em;max-width:60em}"
    "form.inline{display:inline;margin-left:1em}"
    "label{margin-right:1em}"
    "table{border-collapse:collapse;margin:.5em 0}"
    "td,th{border-bottom:1px solid #ddd;padding:.2em .6em;text-align:left}"
    ".error{color:#9b2c2c}"
)
CSP: Final = (
    "default-src 'none'; img-src 'self' data:; "
    f"style-src 'sha256-{base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()}'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
LOGIN_COOKIE: Final = "ecuworks_backend_login"
_TEMPLATES: Final = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html"]),
)

router = APIRouter()


def _html(name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    page = _TEMPLATES.get_template(name).render(css=Markup(_CSS), **context)  # noqa: S704 -- a constant
    return HTMLResponse(page, status_code=status)


def login_page(
    request: Request, *, message: str = "", status: int = 200, next_url: str = "/reports"
) -> HTMLResponse:
    """The login form, with a fresh double-submit token in the form and a cookie."""
    token = secrets.token_urlsafe(24)
    context = {"title": "Log in", "who": None, "csrf": token, "message": message}
    response = _html("login.html", {**context, "next": next_url}, status)
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.app.state.settings.secure_cookies,
        path="/login",
    )
    return response


@router.get("/login", response_class=HTMLResponse)
async def get_login(request: Request, next: str = "/reports") -> Response:
    """The login form; ``next`` is where it leads."""
    return login_page(request, next_url=local(next))


def local(target: str) -> str:
    """``target`` if it is a path on this server, else the reports (no open redirect)."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/reports"


@router.post("/login", responses=responses(303, 401, 403, 429))
async def post_login(request: Request) -> Response:
    """Check the password; on success set the session cookie and go to the reports."""
    form = await form_data(request)
    sent, expected = form.get("csrf", ""), request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
        return login_page(request, message="The form expired; log in again.", status=403)
    db = database(request)
    try:
        secret, _csrf = await run_in_threadpool(
            log_in, db, form.get("name", ""), form.get("password", "")
        )
    except AccessDenied as error:
        return login_page(request, message=str(error), status=error.status)
    response = RedirectResponse(local(form.get("next", "/reports")), status_code=303)
    response.set_cookie(
        COOKIE,
        secret,
        httponly=True,
        samesite="strict",
        secure=request.app.state.settings.secure_cookies,
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout", responses=responses(303))
async def post_logout(request: Request, _who: Annotated[Caller, Depends(caller)]) -> Response:
    """End the browser session."""
    secret = request.cookies.get(COOKIE)
    if secret:
        await run_in_threadpool(end_session, database(request), secret)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


def _charts(report: dict[str, Any]) -> dict[str, Markup]:
    kinds = report["sessions"]["by_kind"]
    duration = report["duration"]
    return {
        "success": bar_chart(
            "Success rate by kind",
            [(k["kind"], k["success_rate"] * 100) for k in kinds],
            unit="%",
            scale=100.0,
        ),
        "ecu": bar_chart(
            "Mean duration by ECU", [(d["ecu"], d["mean_s"]) for d in duration["by_ecu"]], unit="s"
        ),
        "ilevel": bar_chart(
            "Mean duration by I-level",
            [(d["ilevel"], d["mean_s"]) for d in duration["by_ilevel"]],
            unit="s",
        ),
        "failures": bar_chart(
            "Top failures by ECU and NRC",
            [
                (f"{f['ecu']} {f['nrc'] or ''}".strip(), float(f["count"]))
                for f in report["failures"]["top"]
            ],
            unit="",
        ),
        "fsc": bar_chart(
            "Enabling codes by application",
            [(a["app_id"], float(a["count"])) for a in report["fsc"]["by_app"]],
            unit="",
        ),
    }


@router.get("/reports", response_class=HTMLResponse, responses=responses(400, 403))
def get_reports_page(
    request: Request,
    who: Annotated[Caller, Depends(caller)],
    workshop: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Response:
    """The reports of the user's workshop (an admin: any or all) with charts."""
    report = report_json(request, who, workshop, since, until)
    return _html(
        "reports.html",
        {
            "title": "Reports",
            "who": who,
            "report": report,
            "since": (report["since"] or "")[:10],
            "until": (report["until"] or "")[:10],
            "charts": _charts(report),
        },
    )
