"""What every command shares: exit codes (DESIGN.md), error output, the data directory,
and the platform database (users, vehicle history)."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Final

import typer
from rich.console import Console
from rich.text import Text

from ecuworks.backend.fsc import FscIssuer
from ecuworks.enabling.fsc import FscSource
from ecuworks.errors import DatabaseError
from ecuworks.execute.session import JOURNAL_FILE
from ecuworks.platform.db import Database, default_url, open_database
from ecuworks.platform.fsc_client import backend_fsc_source
from ecuworks.platform.models import HistoryRecord
from ecuworks.platform.sync import SyncTarget, sync_target

EXIT_USAGE: Final = 2
EXIT_REFUSED: Final = 3  # refused before touching the vehicle (voltage, P-Data mismatch, ...)
EXIT_FAILED: Final = 4  # failed while programming; the journal is kept
EXIT_UNREACHABLE: Final = 5  # vehicle, interface or server not reachable

# Messages carry SGBM-IDs, paths and TOML like ``[[units]]``: never read them as markup.
console = Console(markup=False)
errors = Console(stderr=True, markup=False)

# Writes one history record: (database, user, workstation) -> the record.
HistoryWrite = Callable[[Database, str, str], HistoryRecord]


def print_error(message: str) -> None:
    """Print ``message`` on stderr after a red ``error:``, exactly as given."""
    errors.print(Text.assemble(("error:", "red"), " ", message), highlight=False)


def print_warning(message: str) -> None:
    """Print ``message`` on stderr after a yellow ``warning:``, exactly as given."""
    errors.print(Text.assemble(("warning:", "yellow"), " ", message), highlight=False)


def fail(message: str, code: int) -> typer.Exit:
    """Print ``message`` as an error and return the exit to raise."""
    print_error(message)
    return typer.Exit(code)


def home(ctx: typer.Context) -> Path:
    """The data directory: ``--home``, else ``$ECUWORKS_HOME``, else the user's app dir."""
    chosen = (ctx.find_root().obj or {}).get("home")
    if chosen is None and "ECUWORKS_HOME" in os.environ:
        chosen = os.environ["ECUWORKS_HOME"]
    return Path(chosen) if chosen is not None else Path(typer.get_app_dir("ecuworks"))


def db_url(ctx: typer.Context, db: str | None = None) -> str:
    """The platform database's URL: ``db`` (a command's own ``--db``), else the global
    ``--db`` (or ``$ECUWORKS_DB``), else SQLite in the data directory (created if needed)."""
    chosen = db or (ctx.find_root().obj or {}).get("db")
    if chosen:
        return str(chosen)
    directory = home(ctx)
    directory.mkdir(parents=True, exist_ok=True)
    return default_url(directory)


def open_db(ctx: typer.Context, db: str | None = None) -> Database:
    """The platform database (migrated), or exit 3 with what went wrong."""
    try:
        return open_database(db_url(ctx, db))
    except (DatabaseError, OSError) as error:
        raise fail(str(error), EXIT_REFUSED) from error


def _user(owner: str | None) -> str:
    if owner:
        return owner
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor in passwd
        return "unknown"


def write_history(
    ctx: typer.Context,
    what: str,
    write: HistoryWrite,
    *,
    owner: str | None = None,
    session: int | None = None,
) -> None:
    """Write one vehicle history record with ``write``; a failure only warns.

    The job is done (the car may be programmed) when this runs, so a database that cannot
    be opened or written never changes the job's exit code: it is named on stderr, with
    the journal session that still holds the steps.

    Args:
        ctx: the command's context (``--home``, ``--db``).
        what: the record, for the warning (``"the identification"``).
        write: a function of :mod:`ecuworks.platform.recording`, bound to its job.
        owner: the command's ``--owner``; the login name when None.
        session: the journal session the record links to, for the warning.
    """
    try:
        database = open_database(db_url(ctx))
    except (DatabaseError, OSError) as error:
        _history_failed(ctx, what, error, session)
        return
    try:
        write(database, _user(owner), socket.gethostname())
    except DatabaseError as error:
        _history_failed(ctx, what, error, session)
    finally:
        database.close()


def _history_failed(ctx: typer.Context, what: str, error: Exception, session: int | None) -> None:
    kept = (
        f"; the session journal {home(ctx) / JOURNAL_FILE} still holds session {session}"
        if session is not None
        else ""
    )
    print_warning(
        f"{what} was not written to the vehicle history: {error}{kept}. The job's result "
        "above stands; fix the database (--db) to record the next jobs"
    )


def fsc_issuing(ctx: typer.Context, db: str | None = None) -> tuple[FscSource, bytes | None]:
    """Where the command's enabling codes come from, and the issuer key that explains a
    code an ECU refuses (None when only the backend knows it).

    The backend this workstation's history goes to (``ecuworks sync configure``) issues
    them against its grants; without one, the demo issuer does, whose key the simulated
    cars trust (a real car refuses its codes, and says so).
    """
    target: SyncTarget | None = None
    try:
        database = open_database(db_url(ctx, db))
        try:
            target = sync_target(database)
        finally:
            database.close()
    except (DatabaseError, OSError) as error:
        errors.print(f"warning: {error}; enabling codes come from the demo issuer", highlight=False)
    if target is not None:
        return backend_fsc_source(target), None
    issuer = FscIssuer.demo()
    return issuer.source(), issuer.public_key_bytes
