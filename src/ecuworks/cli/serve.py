"""``ecuworks serve`` (the workstation web UI) and ``ecuworks users`` (accounts, tokens).

``serve`` binds 127.0.0.1 by default: the UI drives vehicles, so reaching it from the
network is a choice (``--host``), made behind HTTPS (``--secure-cookies``). At the first
start, with no user yet, it creates an admin and prints its password once.

``serve --demo`` also starts the simulated F-series vehicle in-process on loopback (charger
connected), registers it as the interface ``demo-f-series`` (vehicle link and management
address) and gives the ``admin`` account a new password, printed with the URL.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING, Annotated, Final

import typer
import uvicorn

from ecuworks.cli.common import (
    EXIT_USAGE,
    console,
    db_url,
    errors,
    fail,
    fsc_issuing,
    home,
    open_db,
)
from ecuworks.errors import ConfigError
from ecuworks.platform.interfaces import add_interface, list_interfaces, remove_interface
from ecuworks.platform.users import Role, create_token, create_user, set_password, user_states

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ecuworks.platform.db import Database
    from ecuworks.web.settings import WebSettings

__all__ = ["serve_command", "users_app"]

DbUrl = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="ECUWORKS_DB",
        help="Database URL (default: SQLite in the data directory); postgresql://... too.",
    ),
]

DEMO_INTERFACE: Final = "demo-f-series"

users_app = typer.Typer(
    name="users", help="Workstation accounts and API tokens.", no_args_is_help=True
)


def _role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise fail(f"--role must be one of {', '.join(Role)}, got {text!r}", EXIT_USAGE) from None


@users_app.command(name="create-admin")
def create_admin_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The admin's user name.")] = "admin",
    db: DbUrl = None,
    password: Annotated[
        str | None,
        typer.Option(envvar="ECUWORKS_PASSWORD", help="Default: a new one, printed once."),
    ] = None,
) -> None:
    """Create an admin account (the first one, or another)."""
    _create(ctx, db, name, password, Role.ADMIN)


@users_app.command(name="create")
def create_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Option(help="admin, technician or viewer.")] = "technician",
    db: DbUrl = None,
    password: Annotated[
        str | None,
        typer.Option(envvar="ECUWORKS_PASSWORD", help="Default: a new one, printed once."),
    ] = None,
) -> None:
    """Create an account."""
    _create(ctx, db, name, password, _role(role))


def _create(
    ctx: typer.Context, db: str | None, name: str, password: str | None, role: Role
) -> None:
    database = open_db(ctx, db)
    chosen = password or secrets.token_urlsafe(12)
    try:
        create_user(database, name, chosen, role)
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    finally:
        database.close()
    console.print(f"created {role} {name!r}", highlight=False)
    if password is None:
        console.print(f"password (shown once): {chosen}", highlight=False)


@users_app.command(name="list")
def list_command(ctx: typer.Context, db: DbUrl = None) -> None:
    """List the accounts."""
    database = open_db(ctx, db)
    try:
        for user in user_states(database):
            state = " (disabled)" if user.disabled else " (locked)" if user.locked else ""
            console.print(f"{user.principal.name}\t{user.principal.role}{state}", highlight=False)
    finally:
        database.close()


@users_app.command(name="password")
def password_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name.")],
    db: DbUrl = None,
    password: Annotated[
        str | None, typer.Option(envvar="ECUWORKS_PASSWORD", help="Default: a new one.")
    ] = None,
) -> None:
    """Set a password (ends the account's lockout and its browser sessions)."""
    database = open_db(ctx, db)
    chosen = password or secrets.token_urlsafe(12)
    try:
        set_password(database, name, chosen)
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    finally:
        database.close()
    if password is None:
        console.print(f"password (shown once): {chosen}", highlight=False)


@users_app.command(name="token")
def token_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The user the token acts as.")],
    label: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
    db: DbUrl = None,
) -> None:
    """Create an API token (printed once) for scripts and the CLI."""
    database = open_db(ctx, db)
    try:
        console.print(create_token(database, name, label), highlight=False)
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    finally:
        database.close()


def serve_command(  # noqa: PLR0917 -- Typer maps each option to a parameter
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to bind; loopback by default.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    db: DbUrl = None,
    interface: Annotated[
        list[str] | None,
        typer.Option(
            help="A vehicle interface to know: NAME=VCI_URL[,ADMIN_URL] (repeatable).",
        ),
    ] = None,
    secure_cookies: Annotated[
        bool, typer.Option(help="Mark cookies Secure (when served behind HTTPS).")
    ] = False,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo", help="Also run the simulated F-series vehicle as interface demo-f-series."
        ),
    ] = False,
    time_scale: Annotated[
        float, typer.Option(help="--demo: simulated seconds per real second.")
    ] = 20.0,
) -> None:
    """Serve the workstation web UI."""
    from ecuworks.web.app import create_app  # noqa: PLC0415 -- only this command needs it
    from ecuworks.web.settings import WebSettings  # noqa: PLC0415

    if time_scale <= 0:
        raise fail("--time-scale must be positive", EXIT_USAGE)
    # Enabling codes (retrofit, replacement): the backend configured at start, else the demo
    # issuer.
    fsc_source, issuer_key = fsc_issuing(ctx, db)
    settings = WebSettings(
        home=home(ctx),
        db_url=db_url(ctx, db),
        interfaces=tuple(parse_interface(text) for text in interface or ()),
        secure_cookies=secure_cookies,
        time_scale=time_scale if demo else 1.0,
        fsc_source=fsc_source,
        issuer_key=issuer_key,
    )
    database = open_db(ctx, db)
    if demo:
        password = secrets.token_urlsafe(12)
        if "admin" in {u.principal.name for u in user_states(database)}:
            set_password(database, "admin", password)
        else:
            create_user(database, "admin", password, Role.ADMIN)
        asyncio.run(_serve_demo(create_app(settings, db=database), database, host, port, password))
        return
    if not user_states(database):
        chosen = secrets.token_urlsafe(12)
        create_user(database, "admin", chosen, Role.ADMIN)
        errors.print(
            f"first start: created user 'admin' with password {chosen} (shown once; change "
            "it with 'ecuworks users password admin')",
            highlight=False,
        )
    app = create_app(settings, db=database)
    errors.print(f"serving http://{host}:{port}/", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning")


async def _serve_demo(
    app: FastAPI, database: Database, host: str, port: int, password: str
) -> None:
    """Run the simulated vehicle and the UI in one event loop until interrupted."""
    from ecuworks.sim.simulator import Simulator  # noqa: PLC0415 -- only --demo needs it

    settings: WebSettings = app.state.settings
    simulator = Simulator.on_free_ports(
        "f-series",
        time_scale=settings.time_scale,
    )
    async with simulator:
        simulator.set_battery(volts=None, charger=True)
        ports = simulator.ports
        _register_demo(
            database, f"hsfz://127.0.0.1:{ports['hsfz']}", f"http://127.0.0.1:{ports['control']}"
        )
        errors.print(
            f"demo vehicle: simulated F-series (time scale {settings.time_scale:g}, charger "
            f"on) as interface {DEMO_INTERFACE!r}\n"
            f"serving http://{host}:{port}/  user admin, password {password}",
            highlight=False,
        )
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        await server.serve()


def _register_demo(database: Database, vci_url: str, admin_url: str) -> None:
    """The demo interface, at this start's ports (a stale entry of a former start goes)."""
    for known in list_interfaces(database):
        if known.name == DEMO_INTERFACE:
            remove_interface(database, known.id)
    add_interface(database, DEMO_INTERFACE, vci_url, admin_url)


def parse_interface(text: str) -> tuple[str, str, str | None]:
    """``NAME=VCI_URL[,ADMIN_URL]`` -> (name, vci_url, admin_url)."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise fail(f"--interface wants NAME=VCI_URL[,ADMIN_URL], got {text!r}", EXIT_USAGE)
    vci, _, admin = rest.partition(",")
    return name.strip(), vci.strip(), admin.strip() or None
