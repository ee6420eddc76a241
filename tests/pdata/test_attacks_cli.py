"""Attacks on ``ecuworks pdata sync|verify`` as a real process, against a repository on loopback.

Each attack is refused with exit code 3 and a message naming the role or unit that failed
and why; nothing unverified reaches the cache, and the metadata trusted before stays.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner
from tests.pdata.test_sync_cli import DME
from tests.pdata.test_trust import resign
from tests.test_cli import run_cli

from ecuworks.pdata.keys import TOP_LEVEL_ROLES, KeyRing
from ecuworks.pdata.repository import RepositoryBuilder
from ecuworks.pdata.serve import serve_directory
from ecuworks.pdata.verify import verify_directory

FIRST = bytes(range(256)) * 16  # 4 KiB
SECOND = bytes(range(255, -1, -1)) * 12  # 3 KiB
# the file under <home>/pdata/trusted/ holding each role's metadata
TRUSTED_FILE = {
    "timestamp": "timestamp.json",
    "snapshot": "snapshot.json",
    "targets": "targets.json",
    "F030": "series.F030.json",
}


@pytest.fixture
def keys() -> KeyRing:
    return KeyRing.generate((*TOP_LEVEL_ROLES, "F030"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    out = tmp_path / "repo"
    out.mkdir()
    return out


@pytest.fixture
async def url(repo: Path) -> AsyncIterator[str]:
    """The repository served for the whole test: one URL, so the client keeps its state."""
    running, _ = await serve_directory(repo)
    yield running.url
    await running.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def publish(repo: Path, keys: KeyRing, path: str, data: bytes, **options: Any) -> None:
    """Publish a release of series F030 that adds (or replaces) one image."""
    builder = RepositoryBuilder(repo, keys, **options)
    builder.add_target("F030", path, data, custom=DME)
    builder.publish()


async def sync(home: Path, url: str | None = None, root: Path | None = None) -> tuple[int, str]:
    """Run ``pdata sync`` (with URL and root the first time); exit code and stderr, unwrapped."""
    first = [url, "--root", str(root)] if url and root else []
    code, _, err = await run_cli("--home", str(home), "pdata", "sync", *first)
    return code, " ".join(err.split())


async def verify(repo: Path) -> tuple[int, str]:
    code, _, err = await run_cli("pdata", "verify", str(repo), "--root", str(repo / "1.root.json"))
    return code, " ".join(err.split())


def assert_refused(result: tuple[int, str], unit: str, reason: str, *phrases: str) -> None:
    code, err = result
    assert code == 3, err
    assert f"error: P-Data mismatch: {unit} ({reason}): " in err
    for phrase in phrases:
        assert phrase in err


def cached(home: Path) -> set[str]:
    """The images in the store's cache (by SHA-256) and any partial download left over."""
    cache = home / "pdata" / "cache"
    return {p.name for p in (*cache.glob("??/*"), *cache.glob("tmp/*"))}


def trusted(home: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (home / "pdata" / "trusted").glob("*.json")}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def first_sync(home: Path, url: str, repo: Path) -> dict[str, bytes]:
    """A good sync of what is published now; returns the metadata it trusts."""
    code, err = await sync(home, url, repo / "1.root.json")
    assert code == 0, err
    return trusted(home)


async def test_an_oversized_image_is_refused_and_not_cached(
    repo: Path, url: str, home: Path, keys: KeyRing
) -> None:
    publish(repo, keys, "egs.bin", SECOND)
    publish(repo, keys, "DME/swfl.bin", FIRST)
    stored = next((repo / "targets" / "F030" / "DME").glob("*.swfl.bin"))
    with stored.open("ab") as f:  # the server sends far more than the signed length
        f.write(b"\xff" * (1 << 20))

    refused = f"more than the signed {len(FIRST)} bytes"
    assert_refused(
        await sync(home, url, repo / "1.root.json"), "F030/DME/swfl.bin", "length", refused
    )
    assert cached(home) == {sha256(SECOND)}  # the good image only, no partial download
    assert_refused(await verify(repo), "F030/DME/swfl.bin", "length", refused, "padded")


async def test_rolled_back_metadata_is_refused_and_the_newer_kept(
    tmp_path: Path, repo: Path, url: str, home: Path, keys: KeyRing
) -> None:
    publish(repo, keys, "a.bin", FIRST)
    old = tmp_path / "old"
    shutil.copytree(repo, old)
    publish(repo, keys, "b.bin", SECOND)
    before = await first_sync(home, url, repo)
    shutil.rmtree(repo)
    shutil.copytree(old, repo)  # the server now serves the older release again

    result = await sync(home)
    assert_refused(
        result, "timestamp", "rollback", "version 1 must be >= 2", "someone may be serving old"
    )
    assert trusted(home) == before
    assert sha256(SECOND) in cached(home)  # the newer release stays usable


async def test_a_frozen_repository_whose_timestamp_expired_is_refused(
    repo: Path, url: str, home: Path, keys: KeyRing
) -> None:
    now = datetime.now(UTC)
    month = {"timestamp": timedelta(days=30), "snapshot": timedelta(days=30)}
    publish(repo, keys, "a.bin", FIRST, now=now - timedelta(days=7), expires=month)
    before = await first_sync(home, url, repo)
    # release 2 was signed two days ago and the mirror has served it unchanged since:
    # its timestamp (valid one day) expired yesterday
    publish(repo, keys, "b.bin", SECOND, now=now - timedelta(days=2))

    expired = ("timestamp.json is expired", "frozen", "the data is out of date")
    assert_refused(await sync(home), "timestamp", "expired", *expired)
    assert trusted(home) == before
    assert sha256(SECOND) not in cached(home)
    assert_refused(await verify(repo), "timestamp", "expired", *expired)


@pytest.mark.parametrize("role", ["snapshot", "targets", "F030"])
async def test_metadata_mixed_from_two_releases_is_refused(
    repo: Path, url: str, home: Path, keys: KeyRing, role: str
) -> None:
    publish(repo, keys, "a.bin", FIRST)
    before = await first_sync(home, url, repo)
    publish(repo, keys, "DME/b.bin", SECOND)  # a deeper path: targets gets a version 2 too
    # the server answers 2.<role>.json with release 1's file
    (repo / f"2.{role}.json").write_bytes((repo / f"1.{role}.json").read_bytes())

    mixed = "the metadata versions do not belong together"
    assert_refused(await sync(home), role, "mix-and-match", mixed)
    assert trusted(home)[TRUSTED_FILE[role]] == before[TRUSTED_FILE[role]]
    assert sha256(SECOND) not in cached(home)
    assert_refused(await verify(repo), role, "mix-and-match", mixed)


@pytest.mark.parametrize(
    "attack",
    [("targets", True), ("targets", False), ("F030", True), ("F030", False)],
    ids=["targets-forged", "targets-unsigned", "F030-forged", "F030-unsigned"],
)
async def test_forged_or_unsigned_targets_are_refused(
    repo: Path, url: str, home: Path, keys: KeyRing, attack: tuple[str, bool]
) -> None:
    role, forged = attack
    publish(repo, keys, "a.bin", FIRST)
    before = await first_sync(home, url, repo)
    publish(repo, keys, "DME/b.bin", SECOND)
    metadata = repo / f"2.{role}.json"
    signers = [CryptoSigner.generate_ed25519()] if forged else []  # a key the root does not know
    metadata.write_bytes(resign(metadata.read_bytes(), *signers))

    unsigned = "not signed by a trusted key (1 required)"
    assert_refused(await sync(home), role, "signature", unsigned)
    assert trusted(home)[TRUSTED_FILE[role]] == before[TRUSTED_FILE[role]]
    assert sha256(SECOND) not in cached(home)
    assert_refused(await verify(repo), role, "signature", unsigned)


@pytest.mark.parametrize("role", ["root", "timestamp", "targets", "F030"])
async def test_a_threshold_of_two_signatures_not_met_is_refused(
    repo: Path, url: str, home: Path, role: str
) -> None:
    keys = KeyRing.generate((*TOP_LEVEL_ROLES, "F030"), count={role: 2})
    publish(repo, keys, "a.bin", FIRST, thresholds={role: 2})
    assert verify_directory(repo, repo / "1.root.json").ok  # two signatures: good
    metadata = repo / ("timestamp.json" if role == "timestamp" else f"1.{role}.json")
    metadata.write_bytes(resign(metadata.read_bytes(), *keys.for_role(role)[:1]))

    too_few = ("only 1 of 2 required signatures", "too few trusted keys signed")
    assert_refused(await sync(home, url, repo / "1.root.json"), role, "threshold", *too_few)
    assert TRUSTED_FILE.get(role, "root.json") not in trusted(home)
    assert cached(home) == set()
    assert_refused(await verify(repo), role, "threshold", *too_few)
