"""``ecuworks sync configure|status|run``: the vehicle history's way to the central backend.

Every history record waits in the outbox until the backend holds it
(:mod:`ecuworks.platform.sync`). ``serve`` sends it in the background; a workstation that
only runs the command line sends with ``sync run`` (once, or ``--watch`` until stopped).

Exit codes: 0 done (or nothing to send); 2 usage (not configured, bad URL); 5 the
backend does not answer or refuses the token (nothing is lost: the events wait).
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import httpx
import typer

from ecuworks.cli.common import EXIT_UNREACHABLE, EXIT_USAGE, console, errors, fail, open_db
from ecuworks.errors import ConfigError, LinkError
from ecuworks.platform.db import Database
from ecuworks.platform.sync import (
    Backoff,
    Pushed,
    SyncWorker,
    configure,
    push_once,
    sync_status,
    sync_target,
)

__all__ = ["sync_app"]

sync_app = typer.Typer(
    name="sync", help="Send the vehicle history to the central backend.", no_args_is_help=True
)
DbUrl = Annotated[
    str | None,
    typer.Option("--db", envvar="ECUWORKS_DB", help="Database URL (default: SQLite)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="JSON output.")]


@sync_app.command(name="configure")
def configure_command(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="The backend's URL, http(s)://HOST:PORT.")],
    token: Annotated[
        str,
        typer.Option(envvar="ECUWORKS_BACKEND_TOKEN", help="This workstation's token."),
    ],
    db: DbUrl = None,
) -> None:
    """Set the backend this workstation sends its history to."""
    database = open_db(ctx, db)
    try:
        target = configure(database, url, token)
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    finally:
        database.close()
    console.print(f"the history goes to {target.url}", highlight=False)


@sync_app.command(name="status")
def status_command(ctx: typer.Context, db: DbUrl = None, as_json: AsJson = False) -> None:
    """What is sent, what waits, and what the backend refused."""
    database = open_db(ctx, db)
    try:
        status = sync_status(database)
    finally:
        database.close()
    if as_json:
        console.print_json(json.dumps(status.to_json()))
        return
    document = status.to_json()
    console.print(f"backend: {status.target or 'not configured (the history stays here)'}")
    console.print(
        f"sent: {status.sent}   waiting: {status.pending}"
        + (f" (oldest {document['oldest_pending']})" if status.oldest_pending else "")
        + (f"   last sent: {document['last_sent']}" if status.last_sent else ""),
        highlight=False,
    )
    for event_id, reason in status.rejected:
        errors.print(f"refused by the backend: {event_id}: {reason}", highlight=False)


@sync_app.command(name="run")
def run_command(
    ctx: typer.Context,
    db: DbUrl = None,
    watch: Annotated[bool, typer.Option(help="Keep sending until stopped (Ctrl-C).")] = False,
) -> None:
    """Send what waits in the outbox (once, or until stopped with --watch)."""
    database = open_db(ctx, db)
    try:
        if sync_target(database) is None:
            raise fail(
                "no backend configured: run 'ecuworks sync configure URL --token TOKEN'",
                EXIT_USAGE,
            )
        if watch:
            _watch(database)
            return
        try:
            sent, left = asyncio.run(_drain(database))
        except (LinkError, ConfigError) as error:
            raise fail(f"{error}; the events wait in the outbox", EXIT_UNREACHABLE) from error
    finally:
        database.close()
    waiting = f"{left} wait: see 'ecuworks sync status'" if left else "nothing waits"
    console.print(f"sent {sent} event(s); {waiting}", highlight=False)


async def _drain(database: Database) -> tuple[int, int]:
    """Push batches until nothing is left or the backend holds the rest back: how many
    it took, and how many wait."""
    target = sync_target(database)
    assert target is not None
    sent = 0
    async with httpx.AsyncClient() as client:
        while True:
            pushed: Pushed = await push_once(database, target, client)
            sent += pushed.sent
            if not pushed.left or not (pushed.sent or pushed.rejected):
                return sent, pushed.left


def _watch(database: Database) -> None:
    worker = SyncWorker(
        database, backoff=Backoff(), say=lambda line: errors.print(line, highlight=False)
    )

    async def run() -> None:
        await worker.run(asyncio.Event())

    errors.print("sending the history as it is written; Ctrl-C stops", highlight=False)
    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        errors.print("stopped; what was not sent waits in the outbox", highlight=False)
