"""The central backend's web app: :func:`create_backend` builds it over its database.

Stateless between requests (everything lives in the database), so any number of replicas
can run behind a load balancer; the P-Data repository is plain static files under
``/pdata/`` (consistent snapshots: any CDN or object store can serve them instead).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from ecuworks.backend import api, pages
from ecuworks.backend.accounts import Caller
from ecuworks.backend.auth import NotAuthenticated, caller, person
from ecuworks.backend.db import open_backend_database
from ecuworks.backend.settings import BackendSettings, load_issuer
from ecuworks.errors import AccessDenied, ConfigError, DatabaseError
from ecuworks.platform.db import Database
from ecuworks.web.responses import declare_common

__all__ = ["create_backend"]

_SECURITY_HEADERS = {
    "content-security-policy": pages.CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


def create_backend(settings: BackendSettings, *, db: Database | None = None) -> FastAPI:
    """The backend app; ``db`` defaults to opening (and migrating) ``settings.db_url``.

    Raises:
        DatabaseError: the database cannot be opened.
        ConfigError: the issuer key or the P-Data directory cannot be used.
    """
    issuer = load_issuer(settings.issuer_key)
    if settings.pdata_repo is not None and not settings.pdata_repo.is_dir():
        raise ConfigError(
            f"--pdata-repo {settings.pdata_repo} is not a directory; give a published P-Data "
            "repository (e.g. made by 'ecuworks pdata demo')"
        )
    database = db or open_backend_database(settings.db_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if db is None:
            database.close()

    # The OpenAPI schema is served behind a login (/api/openapi.json); no interactive docs,
    # which would load scripts from a CDN.
    app = FastAPI(
        title="ecuworks backend",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.issuer = issuer
    app.include_router(api.router)
    app.include_router(pages.router)
    declare_common(app, frozenset({"/login"}), pages_redirect=False)
    if settings.pdata_repo is not None:
        app.mount("/pdata", StaticFiles(directory=settings.pdata_repo), name="pdata")

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/openapi.json", include_in_schema=False)
    async def openapi(who: Caller = Depends(caller)) -> dict[str, Any]:  # noqa: B008
        person(who)
        return app.openapi()

    _handlers(app)
    return app


def _handlers(app: FastAPI) -> None:
    """Security headers, and each error as the status a client acts on."""

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(NotAuthenticated)
    async def not_authenticated(request: Request, exc: Exception) -> Response:
        if _wants_html(request):
            return pages.login_page(request, status=401, next_url=pages.local(request.url.path))
        return JSONResponse(
            {"detail": str(exc)}, status_code=401, headers={"www-authenticate": "Bearer"}
        )

    @app.exception_handler(AccessDenied)
    async def denied(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AccessDenied)
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(ConfigError)
    async def bad_request(_request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(DatabaseError)
    async def database_failed(_request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=503)
