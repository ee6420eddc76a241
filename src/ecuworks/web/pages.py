"""Rendering pages: the templates, the launcher's applications, and error pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, NamedTuple

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ecuworks.platform.users import Role
from ecuworks.web.assets import vendor_file
from ecuworks.web.auth import Caller

__all__ = ["APPLICATIONS", "JOBS", "Application", "JobWords", "render", "templates"]

templates: Final = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


class Application(NamedTuple):
    """One tile of the launcher."""

    name: str
    path: str
    role: Role
    description: str


APPLICATIONS: Final = (
    Application("Programming", "/programming", Role.VIEWER, "Identify, plan and program a vehicle"),
    Application("Coding", "/coding", Role.VIEWER, "VO coding, and one parameter by hand"),
    Application("Retrofit", "/retrofit", Role.VIEWER, "Install an option: guided, then coded"),
    Application("Replacement", "/replacement", Role.VIEWER, "Swap an ECU, keeping its data"),
    Application("Diagnosis", "/diagnosis", Role.VIEWER, "Read and clear the fault memory"),
    Application("Vehicle history", "/history", Role.VIEWER, "Everything done to a vehicle"),
    Application("Interfaces", "/interfaces", Role.VIEWER, "Vehicle interfaces and reservations"),
    Application("Data", "/data", Role.VIEWER, "Programming data status and sync"),
    Application("Reports", "/reports", Role.VIEWER, "Sessions, outcomes and durations"),
    Application("Admin", "/admin", Role.ADMIN, "Users, roles, API tokens and the audit log"),
)


class JobWords(NamedTuple):
    """How the plan and status pages name a job."""

    title: str
    start: str
    nothing: str
    doing: str


JOBS: Final = {
    "program": JobWords(
        "Measures plan",
        "Start programming",
        "Nothing to program: the vehicle is at target.",
        "Programming",
    ),
    "code": JobWords("Coding plan", "Start coding", "No ECU with coding answered.", "Coding"),
    "expert-coding": JobWords(
        "Expert coding", "Code this parameter", "Nothing to code.", "Expert coding"
    ),
    "retrofit": JobWords(
        "Retrofit plan", "Start the retrofit", "Nothing to retrofit.", "Retrofit of"
    ),
    "replace": JobWords(
        "Replacement plan", "Start the replacement", "Nothing to replace.", "Replacement in"
    ),
    "enable": JobWords("Enabling plan", "Start enabling", "Nothing to enable.", "Enabling"),
    "diag": JobWords(
        "Fault memory plan", "Clear the fault memory", "Nothing to clear.", "Clearing faults of"
    ),
}
templates.env.globals["jobs"] = JOBS


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> HTMLResponse:
    """Render ``template`` with the caller, its CSRF token and the navigation."""
    caller: Caller | None = getattr(request.state, "caller", None)
    values: dict[str, Any] = {
        "caller": caller,
        "csrf": caller.csrf if caller else "",
        "applications": [a for a in APPLICATIONS if caller and caller.role.allows(a.role)],
        "htmx": vendor_file("htmx.min.js") is not None,
        "sse": vendor_file("htmx-ext-sse.js") is not None,
        "path": request.url.path,
    }
    values.update(context or {})
    return templates.TemplateResponse(request, template, values, status_code=status)
