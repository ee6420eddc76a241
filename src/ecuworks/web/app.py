"""The workstation web app: :func:`create_app` builds it over the platform database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ecuworks.errors import AccessDenied, DatabaseError
from ecuworks.platform.db import Database, open_database
from ecuworks.platform.interfaces import ensure_configured
from ecuworks.platform.sync import SyncWorker
from ecuworks.web.assets import vendor_file
from ecuworks.web.auth import NotLoggedIn, wants_html
from ecuworks.web.pages import render
from ecuworks.web.responses import declare_common
from ecuworks.web.routes import (
    admin,
    coding,
    data,
    diagnosis,
    history,
    home,
    interfaces,
    parts,
    programming,
    reports,
)
from ecuworks.web.routes.home import login_url
from ecuworks.web.runs import RunManager
from ecuworks.web.settings import WebSettings

__all__ = ["create_app"]

_log = logging.getLogger("ecuworks.web")
_STATIC = Path(__file__).with_name("static")
_SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def create_app(settings: WebSettings, *, db: Database | None = None) -> FastAPI:
    """The web app; ``db`` defaults to opening (and migrating) ``settings.db_url``.

    The interfaces of ``settings.interfaces`` not yet known by name are added.

    Raises:
        DatabaseError: the database cannot be opened.
        ConfigError: one of ``settings.interfaces`` cannot be used.
    """
    database = db or open_database(settings.db_url)
    runs = RunManager(settings.home, database, time_scale=settings.time_scale)
    ensure_configured(database, settings.interfaces)

    sync = SyncWorker(database, say=_log.warning)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The history goes to the backend in the background, once one is configured.
        sending = asyncio.create_task(sync.run(asyncio.Event()), name="history sync")
        yield
        sending.cancel()  # safe anywhere: an outbox row is marked sent in one transaction
        with contextlib.suppress(asyncio.CancelledError):
            await sending
        await runs.close()
        if db is None:
            database.close()

    # The OpenAPI schema is served behind the login by the admin routes (/api/openapi.json);
    # the interactive docs would load scripts from a CDN, which the CSP forbids.
    app = FastAPI(
        title="ecuworks workstation",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.runs = runs
    app.state.sync = sync
    routers = (home, admin, interfaces, history, programming, coding, parts, diagnosis, data)
    for module in (*routers, reports):
        app.include_router(module.router)
    declare_common(app, frozenset({"/health", "/login"}), pages_redirect=True)
    app.mount("/static", StaticFiles(directory=_STATIC), name="static")

    @app.get("/vendor/{name}", include_in_schema=False)
    async def vendor(name: str) -> Response:
        path = vendor_file(name)
        if path is None:
            return JSONResponse({"detail": f"{name} is not installed"}, status_code=404)
        return FileResponse(path, media_type="text/javascript")

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(NotLoggedIn)
    async def not_logged_in(request: Request, exc: Exception) -> Response:
        if wants_html(request):
            return RedirectResponse(login_url(request.url.path), status_code=303)
        return JSONResponse({"detail": str(exc)}, status_code=401)

    @app.exception_handler(AccessDenied)
    async def denied(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AccessDenied)
        if wants_html(request):
            return render(
                request,
                "error.html",
                {"title": "Not allowed", "message": str(exc)},
                status=exc.status,
            )
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(DatabaseError)
    async def database_failed(request: Request, exc: Exception) -> Response:
        if wants_html(request):
            return render(
                request,
                "error.html",
                {"title": "Database unavailable", "message": str(exc)},
                status=503,
            )
        return JSONResponse({"detail": str(exc)}, status_code=503)

    return app
