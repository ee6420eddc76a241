"""Enabling codes from the central backend: a workstation whose history syncs to a backend
obtains its codes there (``POST /api/v1/fsc``), only for what its workshop is granted.

Real processes: ``ecuworks backend`` on loopback with its SQLite database, the ``ecuworks``
command line, and the simulated f-series car as the judge.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from tests.conftest import StartSimulator
from tests.execute.test_jobs_e2e import HU, NAVIGATION, fsc_status
from tests.execute.test_program_e2e import FAST, control, url_of
from tests.execute.test_reservation import free_port
from tests.platform_layer.test_sync import BackendProcess
from tests.test_cli import run_cli

from ecuworks.backend.accounts import add_workshop, add_workstation
from ecuworks.backend.db import default_backend_url, open_backend_database
from ecuworks.backend.issuing import add_grant
from ecuworks.backend.models import FscIssued

WORKSHOP, WORKSTATION = "Alpha", "bay-1"


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[BackendProcess]:
    home = tmp_path / "backend"
    home.mkdir()
    running = BackendProcess(default_backend_url(home), home)
    async with httpx.AsyncClient() as client:
        await running.start(client)
    yield running
    if running.process is not None and running.process.returncode is None:
        await running.kill()


async def test_enable_obtains_its_code_from_the_backend_once_the_workshop_is_granted(
    start_simulator: StartSimulator, pdata_home: Path, backend: BackendProcess
) -> None:
    sim = await start_simulator("f-series")
    sim.set_battery(volts=None, charger=True)
    url = url_of(sim, "f-series")
    vin = (await control(sim, "GET", "/state"))["vin"]
    database = open_backend_database(backend.db_url)
    add_workshop(database, WORKSHOP)
    token = add_workstation(database, WORKSHOP, WORKSTATION)
    home = ["--home", str(pdata_home)]
    code, _, err = await run_cli(*home, "sync", "configure", backend.url, "--token", token)
    assert code == 0, err
    before = fsc_status(await control(sim, "GET", "/state"), HU).get(NAVIGATION)

    # No grant yet: the backend refuses, the job stops at that action and says why.
    code, _, err = await run_cli(
        *home, "enable", f"0x{NAVIGATION:04X}", "--vci", url, "--yes", *FAST
    )
    assert code == 4, err
    flat = " ".join(err.split())
    assert f"refused the enabling code for application 0x{NAVIGATION:04X} on VIN {vin}" in flat
    assert "grant" in flat
    assert fsc_status(await control(sim, "GET", "/state"), HU).get(NAVIGATION) == before

    # The backend's admin grants the VIN and the application: resume finishes the job.
    add_grant(database, WORKSHOP, vin, NAVIGATION)
    code, _, err = await run_cli(*home, "resume", "--vci", url, "--yes", *FAST)
    assert code == 0, err
    assert fsc_status(await control(sim, "GET", "/state"), HU)[NAVIGATION] == "accepted"
    with database.session() as session:
        issued = [(i.workstation, i.vin, i.app_id) for i in session.scalars(select(FscIssued))]
    database.close()
    assert issued == [(WORKSTATION, vin, NAVIGATION)]


async def test_a_backend_that_does_not_answer_stops_the_job_with_the_journal_kept(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series")
    sim.set_battery(volts=None, charger=True)
    url = url_of(sim, "f-series")
    home = ["--home", str(pdata_home)]
    gone = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, _, err = await run_cli(*home, "sync", "configure", gone, "--token", "t0ken")
    assert code == 0, err

    code, _, err = await run_cli(
        *home, "enable", f"0x{NAVIGATION:04X}", "--vci", url, "--yes", *FAST
    )

    assert code == 4, err
    flat = " ".join(err.split())
    assert f"the backend {gone} did not answer for the enabling code" in flat
    code, _, err = await run_cli(*home, "resume", "--vci", url, "--yes", *FAST)
    assert code == 4, err  # the session is still there for when the backend is back
    assert "did not answer" in " ".join(err.split())
