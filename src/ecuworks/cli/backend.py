"""``ecuworks backend``: serve the central backend, and administer its workshops.

The bare command serves (``ecuworks backend [--host] [--port] [--db URL]``, DESIGN.md);
its subcommands add workshops, workstation tokens, VIN grants and users, working on the
database directly. ``--db`` defaults to ``$ECUWORKS_BACKEND_DB``, else SQLite in the data
directory (``backend.sqlite3``, beside the workstation's database, never the same file).

The server binds 127.0.0.1 unless told otherwise; on any other address its cookies are
marked Secure, as it must then be behind HTTPS. At its first start, with no admin yet, it
creates the user ``admin`` and prints its password and API token once.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from pathlib import Path
from typing import Annotated

import typer

from ecuworks.backend.accounts import (
    Role,
    add_user,
    add_workshop,
    add_workstation,
    create_user_token,
    has_admin,
    revoke_workstation,
)
from ecuworks.backend.db import default_backend_url, open_backend_database
from ecuworks.backend.issuing import add_grant
from ecuworks.backend.settings import BackendSettings
from ecuworks.cli.common import EXIT_REFUSED, EXIT_USAGE, console, errors, fail, home, print_warning
from ecuworks.errors import ConfigError, DatabaseError
from ecuworks.platform.db import Database

__all__ = ["backend_app"]

DbUrl = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="ECUWORKS_BACKEND_DB",
        help="Backend database URL: postgresql://USER@HOST/NAME, or sqlite:///PATH "
        "(default: backend.sqlite3 in the data directory).",
    ),
]

backend_app = typer.Typer(
    name="backend",
    help="The central backend: serve it (no subcommand), or manage workshops, workstations, "
    "grants and users.",
    invoke_without_command=True,
)
workshop_app = typer.Typer(help="Workshops.", no_args_is_help=True)
workstation_app = typer.Typer(help="Workstation tokens.", no_args_is_help=True)
user_app = typer.Typer(help="Backend users (admins, analysts).", no_args_is_help=True)
backend_app.add_typer(workshop_app, name="workshop")
backend_app.add_typer(workstation_app, name="workstation")
backend_app.add_typer(user_app, name="user")


def _url(ctx: typer.Context, db: str | None) -> str:
    """The subcommand's ``--db``, else the group's, else the default in the data directory."""
    chosen = db or (ctx.find_object(dict) or {}).get("backend_db")
    if chosen:
        return str(chosen)
    directory = home(ctx)
    directory.mkdir(parents=True, exist_ok=True)
    return default_backend_url(directory)


def _open(ctx: typer.Context, db: str | None) -> Database:
    try:
        return open_backend_database(_url(ctx, db))
    except (DatabaseError, OSError) as error:
        raise fail(str(error), EXIT_REFUSED) from error


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@backend_app.callback()
def serve(  # noqa: PLR0917 -- Typer maps each option to a parameter
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to bind; loopback by default.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8090,
    db: DbUrl = None,
    pdata_repo: Annotated[
        Path | None,
        typer.Option(help="A published P-Data repository, served as static files at /pdata/."),
    ] = None,
    issuer_key: Annotated[
        Path | None,
        typer.Option(
            envvar="ECUWORKS_ISSUER_KEY",
            help="PEM Ed25519 private key that signs enabling codes (default: the public "
            "demo key).",
        ),
    ] = None,
) -> None:
    """Serve the central backend (when no subcommand is given)."""
    import uvicorn  # noqa: PLC0415 -- only serving needs the web stack

    from ecuworks.backend.app import create_backend  # noqa: PLC0415

    ctx.ensure_object(dict)["backend_db"] = db
    if ctx.invoked_subcommand is not None:
        return
    database = _open(ctx, db)
    if not has_admin(database):
        _first_admin(database)
    settings = BackendSettings(
        db_url=database.url,
        pdata_repo=pdata_repo,
        issuer_key=issuer_key,
        secure_cookies=not _is_loopback(host),
    )
    if issuer_key is None:
        print_warning(
            "enabling codes are signed with the demo key, which anyone can derive: for "
            "simulated vehicles only; give --issuer-key for real ones"
        )
    try:
        app = create_backend(settings, db=database)
    except ConfigError as error:
        database.close()
        raise fail(str(error), EXIT_USAGE) from error
    try:
        sock = _listen(host, port)
    except ConfigError as error:
        database.close()
        raise fail(str(error), EXIT_USAGE) from error
    # Bound before the line is printed: a client that read it can connect at once.
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    errors.print(f"serving http://{shown}:{bound}/", highlight=False)
    try:
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    finally:
        sock.close()
        database.close()


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: any free port).

    Raises:
        ConfigError: the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as error:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({error.strerror}); choose another --port, or 0 "
            "for any free one"
        ) from error


def _first_admin(database: Database) -> None:
    password = secrets.token_urlsafe(12)
    add_user(database, "admin", password, Role.ADMIN)
    token = create_user_token(database, "admin", "first start")
    errors.print(
        "first start: created the backend user 'admin' (shown once, keep them):\n"
        f"  password: {password}\n  API token: {token}",
        highlight=False,
    )


@workshop_app.command(name="add")
def workshop_add(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Its name.")], db: DbUrl = None
) -> None:
    """Add a workshop."""
    database = _open(ctx, db)
    try:
        add_workshop(database, name)
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    finally:
        database.close()
    console.print(f"added workshop {name!r}", highlight=False)


@workstation_app.command(name="add")
def workstation_add(
    ctx: typer.Context,
    workshop: Annotated[str, typer.Argument(help="The workshop it belongs to.")],
    name: Annotated[str, typer.Argument(help="Its name, as its history records it.")],
    db: DbUrl = None,
) -> None:
    """Issue a workstation's token (printed once: give it to the workstation)."""
    database = _open(ctx, db)
    try:
        token = add_workstation(database, workshop, name)
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    finally:
        database.close()
    console.print(token, highlight=False)


@workstation_app.command(name="revoke")
def workstation_revoke(
    ctx: typer.Context,
    workshop: Annotated[str, typer.Argument(help="The workshop it belongs to.")],
    name: Annotated[str, typer.Argument(help="The workstation.")],
    db: DbUrl = None,
) -> None:
    """Revoke a workstation's token: its next request is refused (401)."""
    database = _open(ctx, db)
    try:
        count = revoke_workstation(database, workshop, name)
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    finally:
        database.close()
    console.print(f"revoked {count} token(s) of {name!r}", highlight=False)


def _app_id(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text, 0)
    except ValueError:
        raise fail(f"--app {text!r} is no number (write 0x0041 or 65)", EXIT_USAGE) from None


@backend_app.command(name="grant")
def grant(
    ctx: typer.Context,
    workshop: Annotated[str, typer.Argument(help="The workshop.")],
    vin: Annotated[str, typer.Argument(metavar="VIN-OR-PREFIX", help="A VIN or a prefix.")],
    app: Annotated[
        str | None, typer.Option(help="Only this application, e.g. 0x0041 (default: all).")
    ] = None,
    db: DbUrl = None,
) -> None:
    """Allow a workshop enabling codes for a VIN (or every VIN with a prefix)."""
    app_id = _app_id(app)
    database = _open(ctx, db)
    try:
        add_grant(database, workshop, vin, app_id)
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    finally:
        database.close()
    which = "every application" if app_id is None else f"application 0x{app_id:04X}"
    console.print(f"granted {workshop!r} {which} on {vin.upper()}", highlight=False)


@user_app.command(name="add")
def user_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name.")],
    workshop: Annotated[
        str | None, typer.Option(help="An analyst's workshop; none makes an admin.")
    ] = None,
    db: DbUrl = None,
    password: Annotated[
        str | None, typer.Option(envvar="ECUWORKS_PASSWORD", help="Default: a new one.")
    ] = None,
) -> None:
    """Add an analyst of a workshop (--workshop) or an admin; prints its API token once."""
    chosen = password or secrets.token_urlsafe(12)
    role = Role.ANALYST if workshop else Role.ADMIN
    database = _open(ctx, db)
    try:
        add_user(database, name, chosen, role, workshop=workshop)
        token = create_user_token(database, name)
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    finally:
        database.close()
    console.print(f"added {role} {name!r}", highlight=False)
    if password is None:
        console.print(f"password (shown once): {chosen}", highlight=False)
    console.print(f"API token (shown once): {token}", highlight=False)
