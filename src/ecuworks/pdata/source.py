"""The P-Data a workstation uses: the synced repository, else the demo of the simulator.

This is what the plan and execute layers hold (DESIGN.md): :func:`open_pdata` gives a
:class:`PData` whose catalog answers look-ups and whose :meth:`PData.open_unit` streams a
unit's verified bytes, never a whole image in memory.

Which data it is:

* once a repository is configured (``ecuworks pdata sync URL --root FILE``), its verified
  store under ``<home>/pdata``; the demo is never used again;
* otherwise the demo P-Data of the simulated vehicles in ``<home>/pdata-demo``, generated
  there on first use, and again when an older ecuworks wrote it (its ``demo-format`` is not
  :data:`~ecuworks.pdata.demo.DEMO_FORMAT`). It is loaded the same way as any repository,
  from its root through every signature, so the demo path is the real path.

:attr:`PData.note` says which one, for commands to print on every run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path

from ecuworks.errors import ConfigError, PDataMismatch
from ecuworks.pdata.catalog import Catalog
from ecuworks.pdata.demo import DEMO_FORMAT, demo_format, generate_demo
from ecuworks.pdata.model import SeriesCatalog, UnitInfo
from ecuworks.pdata.store import LocalStore, stream_verified, verify_file
from ecuworks.pdata.trust import TargetInfo, TrustedRepository
from ecuworks.pdata.verify import open_directory
from ecuworks.wire.sgbm import SgbmId

__all__ = ["CATALOG_PATH", "DEMO_DIR", "PData", "open_pdata"]

CATALOG_PATH = "catalog.json"
"""Each series' catalog, a target of the series' own delegation."""

DEMO_DIR = "pdata-demo"
"""The demo P-Data's directory under the data directory (``ecuworks pdata demo``'s default)."""

_CATALOG_CAP = 64 * 1024 * 1024


class PData:
    """Verified programming data: signed metadata, the catalogs and the image bytes.

    Args:
        repo: the verified metadata.
        locate: where the bytes of an image listed in ``repo`` are on disk.
        origin: where the data comes from (a URL or a directory), for messages.
        demo: True for the demo P-Data of the simulated vehicles.
        note: what commands say about it on every run.
    """

    def __init__(
        self,
        repo: TrustedRepository,
        locate: Callable[[TargetInfo], Path],
        *,
        origin: str,
        demo: bool,
        note: str,
    ) -> None:
        self.repo = repo
        self._locate = locate
        self.origin = origin
        self.demo = demo
        self.note = note

    @cached_property
    def catalog(self) -> Catalog:
        """The catalogs of every series that has one, each read from verified bytes.

        Raises:
            PDataMismatch: a catalog's bytes do not match the signed metadata.
            ConfigError: a catalog verified but cannot be read (a publisher's mistake).
        """
        catalogs = []
        for series in self.repo.series:
            if not any(t.path == f"{series}/{CATALOG_PATH}" for t in self.repo.targets_of(series)):
                continue
            info = self.repo.target_info(series, CATALOG_PATH)
            if info.length > _CATALOG_CAP:
                raise PDataMismatch(
                    unit=info.path, reason="length", detail=f"larger than {_CATALOG_CAP} bytes"
                )
            data = b"".join(stream_verified(info, self._locate(info)))
            catalogs.append(SeriesCatalog.from_bytes(data, info.path))
        return Catalog(catalogs)

    def unit(self, sgbm: SgbmId | str) -> UnitInfo:
        """A flashable unit's catalog entry (segments, size, hash).

        Raises:
            PDataMismatch: ``unknown-unit``.
        """
        return self.catalog.unit(sgbm)

    def unit_target(self, sgbm: SgbmId | str) -> TargetInfo:
        """What the signed metadata says about a unit's image.

        Raises:
            PDataMismatch: ``unknown-unit`` if no catalog lists it or the metadata does not
                sign its image; ``mix-and-match`` if catalog and metadata disagree on it.
        """
        path = self.catalog.target_path(sgbm)
        series, rel = path.split("/", 1)
        info = self.repo.target_info(series, rel)
        unit = self.catalog.unit(sgbm)
        if (info.length, info.sha256) != (unit.size, unit.sha256):
            raise PDataMismatch(
                unit=str(sgbm),
                reason="mix-and-match",
                detail="the catalog and the signed metadata describe different images",
            )
        return info

    def verify_unit(self, sgbm: SgbmId | str) -> None:
        """Check a unit's image on disk against the signed metadata (one read of it).

        Raises:
            PDataMismatch: unknown unit, or an image missing or not matching.
        """
        info = self.unit_target(sgbm)
        verify_file(info, self._locate(info))

    def open_unit(self, sgbm: SgbmId | str) -> Iterator[bytes]:
        """Stream a unit's image (header included), verified before its first chunk.

        Raises:
            PDataMismatch: at the call if the unit is unknown; at the first ``next()``,
                before any chunk, if the bytes on disk are missing or do not match.
        """
        info = self.unit_target(sgbm)
        return stream_verified(info, self._locate(info))


def open_pdata(home: Path) -> PData:
    """The P-Data of this workstation: the configured repository, else the demo.

    Args:
        home: the data directory.

    Raises:
        ConfigError: the configured repository was never synced, or the demo cannot be
            written.
        PDataMismatch: the stored metadata fails verification (e.g. ``expired``: sync).
    """
    store = LocalStore(home)
    if store.is_configured:
        repo = store.load()
        return PData(
            repo,
            store.cached_path,
            origin=store.url,
            demo=False,
            note=f"P-Data: {store.url} (snapshot v{repo.snapshot.version}, verified)",
        )
    demo_dir = Path(home) / DEMO_DIR
    generated = _ensure_demo(demo_dir)
    repo_dir = demo_dir / "repository"
    try:
        root = (demo_dir / "root.json").read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"the demo P-Data in {demo_dir} has no root.json ({exc.strerror}); "
            f"remove {demo_dir} and it is generated again"
        ) from exc
    repo = open_directory(repo_dir, root)
    state = generated or "no repository configured"
    return PData(
        repo,
        lambda info: repo_dir / "targets" / info.stored_name,
        origin=str(repo_dir),
        demo=True,
        note=(
            f"P-Data: the demo of the simulated vehicles in {demo_dir} ({state}; "
            "`ecuworks pdata sync URL --root FILE` configures a real repository)"
        ),
    )


def _ensure_demo(demo_dir: Path) -> str | None:
    """Generate the demo into ``demo_dir`` unless a current one is there.

    It is written beside its final place and renamed into it, so a crash or a second
    process generating at the same moment never leaves half a demo behind. A demo of
    another format (an older ecuworks wrote it) is moved aside and replaced the same way.

    Returns:
        What was done, for the note ("generated now", "regenerated now ..."), or None if
        the demo there was used as it is.
    """
    found = demo_format(demo_dir)
    if found == DEMO_FORMAT:
        return None
    demo_dir.parent.mkdir(parents=True, exist_ok=True)
    if found is None and demo_dir.exists():
        raise ConfigError(
            f"{demo_dir} exists but holds no demo P-Data; remove it and it is generated again"
        )
    staging = Path(tempfile.mkdtemp(prefix=".pdata-demo.", dir=demo_dir.parent))
    try:
        generate_demo(staging)
        if found is not None and demo_format(demo_dir) == found:
            _move_aside(demo_dir)
        try:
            os.rename(staging, demo_dir)
        except OSError:
            if demo_format(demo_dir) != DEMO_FORMAT:
                raise
            return None  # another process was quicker; use its (identical) demo
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if found is None:
        return "generated now"
    return f"regenerated now: the one there was format {found}, this ecuworks writes {DEMO_FORMAT}"


def _move_aside(demo_dir: Path) -> None:
    """Move an outdated demo out of the way and delete it (a rename cannot replace a
    directory that is not empty)."""
    trash = Path(tempfile.mkdtemp(prefix=".pdata-demo.old.", dir=demo_dir.parent))
    try:
        os.rename(demo_dir, trash / DEMO_DIR)
    except FileNotFoundError:
        pass  # another process moved it already
    finally:
        shutil.rmtree(trash, ignore_errors=True)
