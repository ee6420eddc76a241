"""``ecuworks pdata sync|verify`` as a real process, against a repository on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.test_cli import run_cli

from ecuworks.pdata.keys import TOP_LEVEL_ROLES, KeyRing
from ecuworks.pdata.repository import RepositoryBuilder
from ecuworks.pdata.serve import serve_directory

DME = {"sgbm": "SWFL-0000ABCD-001.002.003", "process_class": "SWFL", "hardware": [], "release": 1}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    out = tmp_path / "repo"
    builder = RepositoryBuilder(out, KeyRing.generate((*TOP_LEVEL_ROLES, "F030")))
    builder.add_target("F030", "DME/swfl.bin", bytes(range(256)) * 100, custom=DME)
    builder.publish()
    return out


def tamper(repo: Path) -> None:
    target = next((repo / "targets" / "F030" / "DME").glob("*.swfl.bin"))
    data = bytearray(target.read_bytes())
    data[0] ^= 1
    target.write_bytes(bytes(data))


async def test_sync_configures_then_resyncs_the_configured_url(tmp_path: Path, repo: Path) -> None:
    home = str(tmp_path / "home")
    running, _ = await serve_directory(repo)
    try:
        code, out, err = await run_cli(
            "--home", home, "pdata", "sync", running.url, "--root", str(repo / "1.root.json"),
            "--json",
        )  # fmt: skip
        assert code == 0, err
        summary = json.loads(out)
        assert (summary["targets"], summary["downloaded"]) == (1, ["F030/DME/swfl.bin"])
        code, out, err = await run_cli("--home", home, "pdata", "sync")
        assert code == 0, err
        assert "0 fetched" in out
    finally:
        await running.close()


async def test_a_tampered_image_exits_3_and_an_absent_server_5(tmp_path: Path, repo: Path) -> None:
    tamper(repo)
    root = str(repo / "1.root.json")
    running, _ = await serve_directory(repo)
    try:
        code, _, err = await run_cli(
            "--home", str(tmp_path / "h"), "pdata", "sync", running.url, "--root", root
        )
    finally:
        await running.close()
    assert code == 3
    assert "P-Data mismatch: F030/DME/swfl.bin" in err
    code, _, err = await run_cli("--home", str(tmp_path / "h"), "pdata", "sync")
    assert code == 5, err
    assert "run `ecuworks pdata sync` again" in err
    code, _, err = await run_cli("--home", str(tmp_path / "none"), "pdata", "sync")
    assert code == 2
    assert "--root" in err


async def test_verify_exits_0_on_a_good_repository_and_3_on_a_tampered_one(repo: Path) -> None:
    root = str(repo / "1.root.json")
    code, out, err = await run_cli("pdata", "verify", str(repo), "--root", root, "--json")
    assert code == 0, err
    assert json.loads(out)["verified"] == ["F030/DME/swfl.bin"]
    tamper(repo)
    code, _, err = await run_cli("pdata", "verify", str(repo), "--root", root)
    assert code == 3
    assert "P-Data mismatch: F030/DME/swfl.bin" in err
