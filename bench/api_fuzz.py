"""schemathesis against the HTTP APIs of the workstation and the backend (``make fuzz``).

``python -m bench.api_fuzz`` starts, in this process and on loopback ports, a workstation
web UI with the simulated F-series car behind it (registered as an interface, as
``ecuworks serve --demo`` does, at a fast time scale) and a central backend, each over a
throwaway data directory and SQLite database. It then runs the ``schemathesis`` command
line (in its own process, so that generating cases and serving them each get a core)
against each app's OpenAPI schema (``/api/openapi.json``, behind the login):

- ``workstation``: every operation, with an admin's API token;
- ``backend``: every operation, with an admin's API token;
- ``backend as workstation``: every operation again with a workstation's token, the
  credential that sends history events and asks for enabling codes.

The apps are wrapped in a small ASGI layer that counts every request they receive and
records every answer of 500 or more with the request and its traceback: those figures come
from the servers, not from the fuzzer. Exit 1 on any server error (5xx), on a schemathesis
run that did not finish, or when the harness's own credential stopped working.

What keeps a run inside its sandbox (schemathesis POSTs and DELETEs random data): the
token revocations and interface removal are pointed at decoys made for them (so the
harness's token and the simulated car stay), discovery asks only 127.0.0.1, and vehicle
routes get the simulated car's interface name half of the time so they do real work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
from rich.console import Console
from rich.table import Table

from bench.common import figure, machine
from ecuworks.backend import accounts
from ecuworks.backend.app import create_backend
from ecuworks.backend.db import default_backend_url, open_backend_database
from ecuworks.backend.fsc import FscIssuer
from ecuworks.backend.issuing import add_grant
from ecuworks.backend.settings import BackendSettings
from ecuworks.embedded_http import RunningServer, serve_asgi
from ecuworks.pdata.source import open_pdata
from ecuworks.platform.db import Database, default_url, open_database
from ecuworks.platform.interfaces import add_interface
from ecuworks.platform.users import Role, create_token, create_user, list_tokens
from ecuworks.sim.simulator import Simulator
from ecuworks.web.app import create_app
from ecuworks.web.settings import WebSettings

ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_JSON: Final = ROOT / "bench" / "out" / "api_fuzz.json"
SCHEMA_PATH: Final = "/api/openapi.json"
HTTP_METHODS: Final = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})
DEMO_INTERFACE: Final = "demo-f-series"
TIME_SCALE: Final = 100.0
PASSWORD: Final = "api fuzz password"
# The checks that find real mismatches here (docs: "Checks"); the others need OpenAPI
# links or response schemas that these apps do not declare.
CHECKS: Final = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
# Vehicle routes of the workstation take the interface by name in their JSON body.
VEHICLE_BODIES: Final = r"^/api/(programming/(identify|plan)|coding/|retrofit/|replacement/)"
EXAMPLES, QUICK_EXAMPLES = 50, 3
MAX_TIME_S, QUICK_MAX_TIME_S = 900, 60
REQUEST_TIMEOUT_S: Final = 60.0

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


@dataclass
class Observed:
    """An ASGI app that counts the requests it serves and records every 5xx answer.

    The figures of the table come from here: what the server saw, whatever the fuzzer
    thinks it sent. ``reset`` starts a new count for the next schemathesis run.
    """

    app: ASGIApp
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    vehicle_ok: Counter[str] = field(default_factory=Counter)
    server_errors: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self.requests = 0
        self.statuses = Counter()
        self.vehicle_ok = Counter()
        self.server_errors = []

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.requests += 1
        status = 0

        async def watch(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        request = {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope.get("query_string", b"").decode("latin-1"),
        }
        try:
            await self.app(scope, receive, watch)
        except Exception:
            self.statuses[500] += 1
            self.server_errors.append({**request, "status": 500, "error": traceback.format_exc()})
            raise
        self.statuses[status] += 1
        if status < 300 and re.match(VEHICLE_BODIES, scope["path"]):
            self.vehicle_ok[f"{scope['method']} {scope['path']}"] += 1
        if status >= 500:
            self.server_errors.append({**request, "status": status, "error": None})


@dataclass(frozen=True)
class Target:
    """One schemathesis run: which app, with which credential, steered how."""

    api: str
    url: str
    token: str
    observed: Observed
    me: str
    operations: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Options:
    """What the command line chose."""

    max_examples: int
    max_time_s: int
    seed: int
    workers: int
    json_path: Path


def toml(value: object) -> str:
    """``value`` as a TOML value (inline tables and arrays; JSON strings are TOML strings)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return json.dumps(value)
    raise TypeError(f"no TOML for {value!r}")


def config_text(target: Target) -> str:
    """The ``schemathesis.toml`` of one run: base URL, the token (from the environment, so
    it is on no command line) and the operations' overrides."""
    lines = [
        f"base-url = {toml(target.url)}",
        'headers = {"Authorization" = "Bearer ${ECUWORKS_FUZZ_TOKEN}"}',
        f"request-timeout = {toml(REQUEST_TIMEOUT_S)}",
        'dictionaries = {"interfaces" = {"values" = ' + toml([DEMO_INTERFACE]) + "}}",
    ]
    if target.operations:
        lines.append(f"operations = {toml(target.operations)}")
    return "\n".join(lines) + "\n"


async def start_workstation(
    home: Path, simulator: Simulator
) -> tuple[Database, Observed, RunningServer, str, list[dict[str, Any]]]:
    """The web UI over a fresh database, the simulated car as interface ``demo-f-series``;
    an admin token and the operations' overrides that keep it and the car usable."""
    await asyncio.to_thread(open_pdata, home)  # the demo P-Data, made once before the clock
    url = default_url(home)
    db = open_database(url)
    ports = simulator.ports
    add_interface(
        db,
        DEMO_INTERFACE,
        f"hsfz://127.0.0.1:{ports['hsfz']}",
        f"http://127.0.0.1:{ports['control']}",
    )
    # Nothing listens on port 9 of loopback: the decoy is removed without reaching anything.
    decoy = add_interface(db, "decoy", "doip://127.0.0.1:9", None)
    create_user(db, "fuzz-admin", PASSWORD, Role.ADMIN)
    create_user(db, "fuzz-decoy", PASSWORD, Role.VIEWER)
    token = create_token(db, "fuzz-admin", "api-fuzz")
    create_token(db, "fuzz-decoy", "revoked by the fuzzer")
    decoy_token = max(t.id for t in list_tokens(db) if t.user == "fuzz-decoy")
    issuer = FscIssuer.demo()
    settings = WebSettings(
        home=home,
        db_url=url,
        workstation="api-fuzz",
        time_scale=TIME_SCALE,
        fsc_source=issuer.source(),
        issuer_key=issuer.public_key_bytes,
        hardware_wait_s=1.0,
    )
    observed = Observed(create_app(settings, db=db))
    server = await serve_asgi(observed, what="workstation", option="--port")
    operations: list[dict[str, Any]] = [
        # Revoking the harness's own token would turn the rest of the run into 401s.
        {"include-path-regex": "^/(api/)?admin/tokens/", "parameters": {"token_id": decoy_token}},
        # Removing the car's interface would leave the vehicle routes nothing to drive.
        {
            "include-path": "/interfaces/{interface_id}/remove",
            "parameters": {"interface_id": decoy.id},
        },
        # Discovery sends UDP: only ever to loopback (any port).
        {"include-path": "/interfaces/discover", "parameters": {"query.host": "127.0.0.1"}},
        {
            "include-path-regex": VEHICLE_BODIES,
            "parameters": {"body.interface": {"dictionary": "interfaces", "probability": 0.5}},
        },
        {
            "include-path": "/diagnosis",
            "parameters": {"query.interface": {"dictionary": "interfaces", "probability": 0.5}},
        },
    ]
    return db, observed, server, token, operations


async def start_backend(directory: Path) -> tuple[Database, Observed, RunningServer, str, str]:
    """The backend over a fresh SQLite database: an admin token and a workstation token of
    a workshop granted every VIN (so enabling codes are issued for real)."""
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    url = default_backend_url(directory)
    db = open_backend_database(url)
    accounts.add_workshop(db, "fuzz-workshop")
    station = accounts.add_workstation(db, "fuzz-workshop", "fuzz-station")
    accounts.add_user(db, "fuzz-admin", PASSWORD, accounts.Role.ADMIN)
    admin = accounts.create_user_token(db, "fuzz-admin")
    add_grant(db, "fuzz-workshop", "W", None)
    observed = Observed(create_backend(BackendSettings(db_url=url), db=db))
    server = await serve_asgi(observed, what="backend", option="--port")
    return db, observed, server, admin, station


async def fetch_schema(url: str, token: str, path: Path) -> int:
    """Save the app's OpenAPI schema (an admin may read it, a workstation may not) to
    ``path``; the number of operations in it."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        answer = await client.get(SCHEMA_PATH, headers={"authorization": f"Bearer {token}"})
    answer.raise_for_status()
    await asyncio.to_thread(path.write_bytes, answer.content)
    paths: dict[str, dict[str, Any]] = answer.json()["paths"]
    return sum(1 for item in paths.values() for method in item if method in HTTP_METHODS)


async def run_schemathesis(
    target: Target, schema: Path, options: Options, logs: Path
) -> dict[str, Any]:
    """One ``schemathesis run``; its JSON report with this harness's counts."""
    config = schema.with_name(f"{target.api.replace(' ', '-')}.toml")
    config.write_text(config_text(target))
    report = config.with_suffix(".report.json")
    log = logs / f"{config.stem}.log"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--no-color",
        "--config-file",
        str(config),
        "run",
        str(schema),
        "--url",
        target.url.rstrip("/"),
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(options.max_examples),
        "--seed",
        str(options.seed),
        "--workers",
        str(options.workers),
        "--generation-database",
        "none",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--max-redirects",
        "0",
    ]
    target.observed.reset()
    env = {**os.environ, "ECUWORKS_FUZZ_TOKEN": target.token, "NO_COLOR": "1"}
    started = time.perf_counter()
    timed_out = False
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=out, stderr=asyncio.subprocess.STDOUT, env=env, cwd=schema.parent
        )
        try:
            async with asyncio.timeout(options.max_time_s):
                code = await process.wait()
        except TimeoutError:
            timed_out = True
            process.kill()
            code = await process.wait()
    document: dict[str, Any] = json.loads(report.read_text()) if report.is_file() else {}
    return {
        "api": target.api,
        "exit_code": code,
        "timed_out": timed_out,
        "seconds": round(time.perf_counter() - started, 1),
        "log": str(log),
        "report": document,
        "requests": target.observed.requests,
        "statuses": {str(k): v for k, v in sorted(target.observed.statuses.items())},
        # Answers 2xx from routes that drove the simulated car: proof they did real work.
        "vehicle_ok": dict(target.observed.vehicle_ok),
        "server_errors": list(target.observed.server_errors),
    }


def summary(run: dict[str, Any]) -> dict[str, Any]:
    """The row of one run: operations, requests, server errors, other failures."""
    report = run["report"]
    operations = report.get("operations") or {}
    failures = report.get("failures") or []
    fuzzer_5xx = sum(f["count"] for f in failures if f["code"] == "not_a_server_error")
    other = [f for f in failures if f["code"] != "not_a_server_error"]
    return {
        "api": run["api"],
        "operations_in_schema": run["operations_in_schema"],
        "operations_tested": operations.get("tested", 0),
        "test_cases": (report.get("test_cases") or {}).get("generated", 0),
        "requests": run["requests"],
        "statuses": run["statuses"],
        "vehicle_ok": run["vehicle_ok"],
        "server_errors": max(len(run["server_errors"]), fuzzer_5xx),
        "other_failures": sum(f["count"] for f in other),
        "other_failure_kinds": [
            {
                "check": f["code"],
                "title": f["title"],
                "count": f["count"],
                "operations": f["operations"],
            }
            for f in other
        ],
        "errors": report.get("errors") or [],
        "complete": bool(report.get("complete")),
        "seconds": run["seconds"],
    }


async def credential_works(url: str, path: str, token: str) -> bool:
    """Whether ``token`` still opens ``path``: a fuzzer that revoked its own credential
    tested nothing but the 401 page."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        answer = await client.get(path, headers={"authorization": f"Bearer {token}"})
    return answer.status_code == 200


async def fuzz(options: Options, console: Console) -> tuple[list[dict[str, Any]], list[str]]:
    """Start both apps, run schemathesis against each; the rows and what went wrong.

    schemathesis' output goes to ``<json dir>/api_fuzz-logs/<api>.log``.
    """
    logs = options.json_path.parent / "api_fuzz-logs"
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ecuworks-api-fuzz-") as tmp:
        work = Path(tmp)
        simulator = Simulator.on_free_ports(
            "f-series",
            time_scale=TIME_SCALE,
        )
        async with simulator:
            simulator.set_battery(volts=None, charger=True)
            ws_db, ws_seen, ws_server, ws_token, ws_ops = await start_workstation(
                work / "workstation", simulator
            )
            be_db, be_seen, be_server, be_admin, be_station = await start_backend(work / "backend")
            targets = [
                Target("workstation", ws_server.url, ws_token, ws_seen, "/api/me", ws_ops),
                Target("backend", be_server.url, be_admin, be_seen, "/api/v1/me"),
                Target("backend as workstation", be_server.url, be_station, be_seen, "/api/v1/me"),
            ]
            admins = {"workstation": ws_token, "backend": be_admin}
            runs, problems = [], []
            try:
                for target in targets:
                    console.print(f"schemathesis: {target.api} at {target.url}", highlight=False)
                    schema = work / f"{target.api.replace(' ', '-')}.openapi.json"
                    app = target.api.split()[0]
                    in_schema = await fetch_schema(target.url, admins[app], schema)
                    run = await run_schemathesis(target, schema, options, logs)
                    run["operations_in_schema"] = in_schema
                    runs.append(run)
                    problems += describe_problems(run)
                    if not await credential_works(target.url, target.me, target.token):
                        problems.append(f"{target.api}: the harness's token stopped working")
            finally:
                await ws_server.close()
                await be_server.close()
                ws_db.close()
                be_db.close()
        rows = [summary(run) for run in runs]
        for run, row in zip(runs, rows, strict=True):
            row["server_error_requests"] = run["server_errors"][:20]
            row["log"] = run["log"]
    return rows, problems


def describe_problems(run: dict[str, Any]) -> list[str]:
    """What makes the run fail: 5xx answers, a crash or an unfinished run."""
    problems = []
    for error in run["server_errors"][:10]:
        where = error["path"] + (f"?{error['query']}" if error["query"] else "")
        problems.append(f"{run['api']}: {error['status']} on {error['method']} {where}")
    report = run["report"]
    if not report:
        problems.append(f"{run['api']}: schemathesis wrote no report (exit {run['exit_code']})")
    if run["timed_out"]:
        problems.append(f"{run['api']}: schemathesis did not finish in time (--max-time)")
    elif report.get("errors"):
        titles = ", ".join(f"{e['title']} x{e['count']}" for e in report["errors"])
        problems.append(f"{run['api']}: schemathesis errors: {titles}")
    return problems


def table(rows: list[dict[str, Any]]) -> Table:
    """api | operations | requests | server errors | other failures."""
    out = Table("api", "operations", "requests", "server errors", "other failures", "time s")
    for row in rows:
        errors = row["server_errors"]
        out.add_row(
            row["api"],
            f"{row['operations_tested']}/{row['operations_in_schema']}",
            f"{row['requests']:,}",
            f"[red]{errors}" if errors else "[green]0",
            str(row["other_failures"]),
            f"{row['seconds']:.0f}",
        )
    return out


def parse_args(argv: list[str] | None) -> tuple[Options, bool]:
    parser = argparse.ArgumentParser(prog="python -m bench.api_fuzz", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few examples per operation")
    parser.add_argument("--max-examples", type=int, help="test cases per operation and phase")
    parser.add_argument(
        "--max-time", type=int, help="seconds a run of schemathesis may take before it is stopped"
    )
    parser.add_argument("--seed", type=int, default=9, help="hypothesis seed (default 9)")
    parser.add_argument("--workers", type=int, default=1, help="schemathesis workers")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="output JSON path")
    args = parser.parse_args(argv)
    examples = args.max_examples or (QUICK_EXAMPLES if args.quick else EXAMPLES)
    max_time = args.max_time or (QUICK_MAX_TIME_S if args.quick else MAX_TIME_S)
    if examples < 1 or max_time < 1 or args.workers < 1:
        parser.error("--max-examples, --max-time and --workers must be positive")
    return Options(examples, max_time, args.seed, args.workers, args.json), args.quick


def main(argv: list[str] | None = None) -> int:
    options, quick = parse_args(argv)
    console = Console()
    info = machine()
    rows, problems = asyncio.run(fuzz(options, console))
    console.print(table(rows))
    figures = []
    for row in rows:
        api = row["api"]
        figures += [
            figure(f"schemathesis {api} operations tested", row["operations_tested"], "ops"),
            figure(f"schemathesis {api} requests", row["requests"], "requests"),
            figure(f"schemathesis {api} server errors", row["server_errors"], "errors", "< 1"),
            figure(f"schemathesis {api} other failures", row["other_failures"], "failures"),
        ]
    document = {
        "machine": info,
        "quick": quick,
        "options": {
            "max_examples": options.max_examples,
            "max_time_s": options.max_time_s,
            "seed": options.seed,
            "workers": options.workers,
            "checks": list(CHECKS),
        },
        "apis": rows,
        "problems": problems,
        "figures": figures,
    }
    options.json_path.parent.mkdir(parents=True, exist_ok=True)
    options.json_path.write_text(json.dumps(document, indent=2) + "\n")
    for row in rows:
        for kind in row["other_failure_kinds"]:
            console.print(
                f"{row['api']}: {kind['check']} x{kind['count']}: {kind['title']} "
                f"({', '.join(kind['operations'][:5])})",
                highlight=False,
            )
    for problem in problems:
        console.print(f"[red]{problem}", highlight=False)
    console.print(f"figures written to {options.json_path}", highlight=False)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
