"""``ecuworks pdata demo|build|verify|serve|sync|status``: programming data on the command line.

Exit codes (DESIGN.md): 0 done; 2 usage or configuration; 3 P-Data mismatch (refused
before touching the vehicle); 5 the P-Data server is not reachable.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TransferSpeedColumn

from ecuworks.cli.common import (
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    console,
    errors,
    fail,
    home,
    print_error,
)
from ecuworks.errors import ConfigError, LinkError, ParseError, PDataMismatch
from ecuworks.pdata.build import build_repository, spec_series
from ecuworks.pdata.demo import generate_demo
from ecuworks.pdata.keys import TOP_LEVEL_ROLES, KeyRing
from ecuworks.pdata.serve import serve_directory
from ecuworks.pdata.source import DEMO_DIR, PData, open_pdata
from ecuworks.pdata.store import LocalStore, SyncReport
from ecuworks.pdata.trust import TargetInfo
from ecuworks.pdata.verify import verify_directory

pdata_app = typer.Typer(
    name="pdata",
    help="Programming data: demo, build, verify, serve, sync and status.",
    no_args_is_help=True,
)


@pdata_app.command()
def demo(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Argument(help="Where to write it; default <home>/pdata-demo (must not exist)."),
    ] = None,
) -> None:
    """Write the signed demo P-Data of every simulated vehicle (deterministic)."""
    target = out if out is not None else home(ctx) / DEMO_DIR
    with console.status("signing demo P-Data for the simulated vehicles"):
        try:
            result = generate_demo(target)
        except ConfigError as error:
            raise fail(str(error), EXIT_USAGE) from error
    console.print(
        f"{result.files} files, {result.total_bytes / 2**20:.1f} MiB for "
        f"{', '.join(result.series)} in {result.repo_dir}\n"
        f"trusted root: {result.root_path} (demo keys in {result.keys_dir}: never for a car)\n"
        f"serve it: ecuworks pdata serve {result.repo_dir}",
        highlight=False,
    )


@pdata_app.command()
def build(
    spec_dir: Annotated[Path, typer.Argument(help="The spec: one TOML per series, and images.")],
    out_dir: Annotated[Path, typer.Argument(help="The repository to write or to update.")],
    keys: Annotated[
        Path | None, typer.Option(help="Signing keys directory; default <SPEC_DIR>/keys.")
    ] = None,
    new_keys: Annotated[
        bool, typer.Option("--new-keys", help="Generate the keys that are missing in --keys.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Import HEX, S-record, binary and ODX-F images and publish them as signed P-Data."""
    keys_dir = keys if keys is not None else spec_dir / "keys"
    try:
        ring = _signing_keys(keys_dir, spec_series(spec_dir), create=new_keys)
        with console.status("importing") as status:
            result = build_repository(
                spec_dir, out_dir, ring, progress=lambda unit: status.update(f"importing {unit}")
            )
    except (ConfigError, ParseError) as error:
        raise fail(str(error), EXIT_USAGE) from error
    if as_json:
        summary = {
            "schema": 1,
            "repository": str(result.repo_dir),
            "root": str(result.root_path),
            "snapshot_version": result.snapshot_version,
            "series": dict(result.series),
            "image_bytes": result.image_bytes,
        }
        console.print_json(json.dumps(summary))
        return
    units = sum(result.series.values())
    console.print(
        f"published snapshot v{result.snapshot_version} of {result.repo_dir}: {units} units, "
        f"{result.image_bytes / 2**20:.1f} MiB for {', '.join(result.series)}\n"
        f"trusted root: {result.root_path}\n"
        f"serve it: ecuworks pdata serve {result.repo_dir}",
        highlight=False,
        soft_wrap=True,
    )


def _signing_keys(directory: Path, series: list[str], *, create: bool) -> KeyRing:
    """The key ring for top-level roles and ``series``; with ``create``, the missing ones
    are generated and saved (keep root and targets offline: README)."""
    roles = [*TOP_LEVEL_ROLES, *series]
    ring = KeyRing.load(directory) if directory.is_dir() else KeyRing({})
    missing = [role for role in roles if not ring.signers.get(role)]
    if missing and not create:
        raise ConfigError(
            f"no signing key for {', '.join(missing)} in {directory}: give --keys DIR, "
            "or add --new-keys to generate them there"
        )
    if missing:
        fresh = KeyRing.generate(missing)
        fresh.save(directory)
        errors.print(
            f"generated signing keys for {', '.join(missing)} in {directory}; keep the root "
            "and targets keys offline",
            highlight=False,
        )
        ring = KeyRing({**ring.signers, **fresh.signers})
    return ring


@pdata_app.command()
def verify(
    directory: Annotated[Path, typer.Argument(help="A published P-Data repository directory.")],
    root: Annotated[
        Path | None,
        typer.Option(help="The trusted root metadata; default the repository's 1.root.json."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check every signed metadata file and every image of a repository directory."""
    if root is None:
        root = directory / "1.root.json"
        errors.print(
            f"note: trusting {root} (the repository's own first root); pin one with --root",
            highlight=False,
        )
    try:
        report = verify_directory(directory, root)
    except PDataMismatch as error:
        raise fail(str(error), EXIT_REFUSED) from error
    except OSError as error:
        raise fail(f"cannot read the repository: {error}", EXIT_USAGE) from error
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "schema": 1,
                    "ok": report.ok,
                    "root_version": report.root_version,
                    "snapshot_version": report.snapshot_version,
                    "series": report.series,
                    "verified": [i.path for i in report.verified],
                    "failures": [
                        {"unit": f.unit, "reason": f.reason, "detail": f.detail}
                        for f in report.failures
                    ],
                }
            )
        )
    else:
        console.print(
            f"root v{report.root_version}, snapshot v{report.snapshot_version}, "
            f"{len(report.verified)} images verified",
            highlight=False,
        )
    for failure in report.failures:
        print_error(str(failure))
    if not report.ok:
        raise typer.Exit(EXIT_REFUSED)


@pdata_app.command()
def serve(
    directory: Annotated[Path, typer.Argument(help="A published P-Data repository directory.")],
    host: Annotated[str, typer.Option(help="Loopback address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port; 0 for any free one.")] = 8470,
) -> None:
    """Serve a repository directory as static files over HTTP (loopback only)."""

    async def run() -> None:
        running, _ = await serve_directory(directory, host, port)
        console.print(f"serving {running.url}", highlight=False)
        try:
            await running.task
        finally:
            await running.close()

    try:
        asyncio.run(run())
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    except KeyboardInterrupt:
        return


@pdata_app.command()
def sync(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Argument(help="Repository URL; default the configured one.")
    ] = None,
    root: Annotated[
        Path | None, typer.Option(help="The repository's trusted root metadata (first time).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Fetch and verify the repository's metadata and images into the local store."""
    store = LocalStore(home(ctx))
    try:
        _configure(store, url, root)
        report = _run_sync(store, quiet=as_json)
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    except PDataMismatch as error:
        raise fail(str(error), EXIT_REFUSED) from error
    except LinkError as error:
        raise fail(str(error), EXIT_UNREACHABLE) from error
    summary: dict[str, Any] = {
        "schema": 1,
        "url": report.url,
        "root_version": report.root_version,
        "snapshot_version": report.snapshot_version,
        "targets": len(report.targets),
        "downloaded": [i.path for i in report.downloaded],
        "bytes_downloaded": report.bytes_downloaded,
    }
    if as_json:
        console.print_json(json.dumps(summary))
        return
    console.print(
        f"synced {report.url}: snapshot v{report.snapshot_version}, {len(report.targets)} "
        f"images verified, {len(report.downloaded)} fetched ({report.bytes_downloaded} bytes)",
        highlight=False,
    )


def _configure(store: LocalStore, url: str | None, root: Path | None) -> None:
    if url is None:
        if root is not None:
            raise ConfigError("--root goes with a URL: `ecuworks pdata sync URL --root FILE`")
        _ = store.url  # raises if nothing is configured
        return
    if root is None:
        if store.is_configured and store.url.rstrip("/") == url.rstrip("/"):
            return
        raise ConfigError(f"give the trusted root of {url}: `ecuworks pdata sync URL --root FILE`")
    try:
        root_bytes = root.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read the trusted root {root}: {error.strerror}") from error
    store.configure(url, root_bytes)


def _run_sync(store: LocalStore, *, quiet: bool) -> SyncReport:
    if quiet:
        return asyncio.run(store.sync())
    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(
        *Progress.get_default_columns()[:1], *columns, console=errors, transient=True
    ) as bars:
        tasks: dict[str, TaskID] = {}

        def progress(info: TargetInfo, done: int) -> None:
            if info.sha256 not in tasks:
                tasks[info.sha256] = bars.add_task(info.path, total=info.length)
            bars.update(tasks[info.sha256], completed=done)

        return asyncio.run(store.sync(progress=progress))


def load_pdata(ctx: typer.Context) -> PData:
    """The workstation's P-Data for a command, said on stderr; errors become exits.

    Exit 3 if the data fails verification (nothing may reach a vehicle), 2 if it is not
    usable as configured.
    """
    try:
        pdata = open_pdata(home(ctx))
        _ = pdata.catalog
    except PDataMismatch as error:
        raise fail(str(error), EXIT_REFUSED) from error
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    errors.print(pdata.note, highlight=False, soft_wrap=True)
    return pdata


@pdata_app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Say which P-Data this workstation uses, and what it holds per series."""
    pdata = load_pdata(ctx)
    catalog = pdata.catalog
    series: list[dict[str, Any]] = []
    for name in catalog.series:
        cat = catalog.catalog(name)
        series.append(
            {
                "series": name,
                "vehicle": cat.vehicle,
                "ilevels": [r.ilevel for r in cat.ilevels],
                "latest": str(catalog.latest(name)),
                "ecus": len(cat.ecus),
                "units": len(cat.units),
            }
        )
    summary = {
        "schema": 1,
        "origin": pdata.origin,
        "demo": pdata.demo,
        "snapshot_version": pdata.repo.snapshot.version,
        "expires": pdata.repo.timestamp.expires.isoformat(),
        "series": series,
    }
    if as_json:
        console.print_json(json.dumps(summary))
        return
    console.print(
        f"{'demo P-Data' if pdata.demo else 'P-Data'} from {pdata.origin}: snapshot "
        f"v{summary['snapshot_version']}, valid until {summary['expires']}",
        highlight=False,
        soft_wrap=True,
    )
    for entry in series:
        console.print(
            f"  {entry['series']:<6} latest {entry['latest']}  {len(entry['ilevels'])} I-levels, "
            f"{entry['ecus']} ECUs, {entry['units']} units",
            highlight=False,
        )
