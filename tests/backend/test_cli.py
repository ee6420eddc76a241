"""``ecuworks backend``: administering workshops from the command line, and serving."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import httpx
from tests.backend.conftest import chain
from tests.test_cli import run_cli

VIN = "WBA8E9C50GK123456"


async def test_workshop_workstation_grant_and_revoke(tmp_path: Path) -> None:
    home = ("--home", str(tmp_path))

    added = await run_cli(*home, "backend", "workshop", "add", "Alpha")
    token = await run_cli(*home, "backend", "workstation", "add", "Alpha", "bay-1")
    twice = await run_cli(*home, "backend", "workstation", "add", "Alpha", "bay-1")
    granted = await run_cli(*home, "backend", "grant", "Alpha", "wba8e", "--app", "0x0041")
    bad_vin = await run_cli(*home, "backend", "grant", "Alpha", "WBI!")
    revoked = await run_cli(*home, "backend", "workstation", "revoke", "Alpha", "bay-1")
    nobody = await run_cli(*home, "backend", "workstation", "add", "Nowhere", "bay-1")

    assert added[0] == 0, added
    assert token[0] == 0
    assert re.fullmatch(r"ew_[\w-]{43}\n", token[1])
    assert twice[0] == 2
    assert "has a live token; revoke it first" in twice[2]
    assert granted[:2] == (0, "granted 'Alpha' application 0x0041 on WBA8E\n")
    assert bad_vin[0] == 2
    assert "no VIN or VIN prefix" in bad_vin[2]
    assert revoked[:2] == (0, "revoked 1 token(s) of 'bay-1'\n")
    assert nobody[0] == 2
    assert "no workshop named 'Nowhere'" in nobody[2]
    assert (tmp_path / "backend.sqlite3").is_file()


async def test_the_bare_command_serves_and_creates_the_first_admin(tmp_path: Path) -> None:
    home = ("--home", str(tmp_path))
    await run_cli(*home, "backend", "workshop", "add", "Alpha")
    _, out, _ = await run_cli(*home, "backend", "workstation", "add", "Alpha", "bay-1")
    workstation = out.strip()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ecuworks",
        *home,
        "backend",
        "--port",
        "0",
        stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert process.stderr is not None
    try:
        lines = []
        while not (lines and lines[-1].startswith("serving ")):
            line = await asyncio.wait_for(process.stderr.readline(), 60)
            assert line, "the backend exited: " + "".join(lines)
            lines.append(line.decode())
        text = "".join(lines)
        admin_token = re.search(r"API token: (\S+)", text)
        assert admin_token, text
        url = lines[-1].split()[1]
        assert url.startswith("http://127.0.0.1:")
        assert "demo key" in text
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            health = await client.get("health")
            me = await client.get(
                "api/v1/me", headers={"authorization": f"Bearer {admin_token[1]}"}
            )
            sent = await client.post(
                "api/v1/events",
                json={"events": chain(VIN, "bay-1", 2)},
                headers={"authorization": f"Bearer {workstation}"},
            )
    finally:
        process.terminate()
        await process.wait()

    assert health.json() == {"status": "ok"}
    assert me.json() == {"name": "admin", "role": "admin", "workshop": None}
    assert len(sent.json()["accepted"]) == 2
