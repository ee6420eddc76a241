"""``ecuworks pdata verify DIR``: check a repository directory from a trusted root.

A thin file-reading shell around :class:`TrustedRepository`: it reads each metadata file
with a size cap, walks root versions, and streams every image through
:func:`verify_target`. Metadata failures stop the check (nothing after them can be
trusted); image failures are collected so the report lists them all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ecuworks.errors import PDataMismatch
from ecuworks.pdata.trust import TargetInfo, TrustedRepository, verify_target

__all__ = ["METADATA_CAP", "Report", "open_directory", "verify_directory"]

METADATA_CAP = 16 * 1024 * 1024
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """The result of verifying a repository directory.

    Attributes:
        root_version: the root version reached from the trusted root.
        snapshot_version: the verified snapshot's version.
        series: the version of each series' metadata.
        verified: the images whose bytes match the signed metadata.
        failures: one mismatch per image that does not.
    """

    root_version: int
    snapshot_version: int
    series: dict[str, int]
    verified: tuple[TargetInfo, ...]
    failures: tuple[PDataMismatch, ...]

    @property
    def ok(self) -> bool:
        """True if every image verified."""
        return not self.failures


def open_directory(repo_dir: Path, trusted_root: bytes) -> TrustedRepository:
    """Load and verify every metadata file of a published repository (not the images).

    Args:
        repo_dir: the repository directory, as ``RepositoryBuilder.publish`` wrote it.
        trusted_root: the root metadata the reader trusts.

    Returns:
        The verified metadata: root (newest reached), timestamp, snapshot, targets and
        every series.

    Raises:
        PDataMismatch: metadata failed (signature, rollback, expiry, mix-and-match).
        OSError: a metadata file cannot be read.
    """
    repo = TrustedRepository(trusted_root)
    while (nxt := repo_dir / f"{repo.root.version + 1}.root.json").exists():
        repo.update_root(_read(nxt))
    repo.update_timestamp(_read(repo_dir / "timestamp.json"))
    repo.update_snapshot(_read(repo_dir / f"{repo.timestamp.snapshot_meta.version}.snapshot.json"))
    meta = repo.snapshot.meta
    repo.update_targets(_read(repo_dir / f"{meta['targets.json'].version}.targets.json"))
    for series in repo.series:
        version = meta[f"{series}.json"].version
        repo.update_delegated(series, _read(repo_dir / f"{version}.{series}.json"))
    return repo


def verify_directory(repo_dir: Path, trusted_root_path: Path) -> Report:
    """Verify every metadata file and image of a published repository.

    Args:
        repo_dir: the repository directory, as ``RepositoryBuilder.publish`` wrote it.
        trusted_root_path: the root metadata the workshop trusts.

    Returns:
        What was verified and which images failed.

    Raises:
        PDataMismatch: metadata failed (signature, rollback, expiry, mix-and-match).
        OSError: a metadata file cannot be read.
    """
    repo = open_directory(repo_dir, _read(trusted_root_path))
    verified: list[TargetInfo] = []
    failures: list[PDataMismatch] = []
    for series in repo.series:
        for info in repo.targets_of(series):
            try:
                verify_target(info, _chunks(repo_dir / "targets" / info.stored_name))
            except PDataMismatch as exc:
                failures.append(exc)
            else:
                verified.append(info)
    return Report(
        root_version=repo.root.version,
        snapshot_version=repo.snapshot.version,
        series={s: repo.snapshot.meta[f"{s}.json"].version for s in repo.series},
        verified=tuple(verified),
        failures=tuple(failures),
    )


def _read(path: Path) -> bytes:
    """Read a metadata file, refusing one larger than ``METADATA_CAP``."""
    with path.open("rb") as f:
        data = f.read(METADATA_CAP + 1)
    if len(data) > METADATA_CAP:
        raise PDataMismatch(
            unit=path.name, reason="length", detail=f"larger than {METADATA_CAP} bytes"
        )
    return data


def _chunks(path: Path) -> Iterator[bytes]:
    """Stream an image; a missing file reads as empty (a length mismatch)."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return
    with f:
        yield from iter(lambda: f.read(_CHUNK), b"")
