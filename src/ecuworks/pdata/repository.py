"""Build side of the P-Data repository: TUF metadata written with python-tuf's metadata API.

The repository has the four top-level roles (root, targets, snapshot, timestamp) and one
delegated targets role per vehicle series, which may list only paths under ``<series>/``.
Snapshots are consistent: metadata is written as ``N.<role>.json`` (timestamp as
``timestamp.json``) and each image as ``targets/<series>/<sha256>.<name>``, so a client
never sees a half-published release.

Each target carries the programming-data fields a measures plan needs under ``custom``:
``{"sgbm": "SWFL-...", "process_class": "SWFL", "hardware": ["HWEL-..."], "release": N}``.

Publishing a new release is ``add_target(...)`` then ``publish()`` again: only the roles that
changed get a new version, snapshot and timestamp always do. Key rotation of a top-level
role is ``rotate_keys(role, new_signers)`` then ``publish()``: the next ``N.root.json`` is
signed by the current root keys and, when root itself rotates, by the new ones too, so a
client holding the old root can walk to the new one (TUF specification, 5.3).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import IO, Any

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)

from ecuworks.errors import ConfigError
from ecuworks.pdata._atomic import write_atomic
from ecuworks.pdata.keys import TOP_LEVEL_ROLES, KeyRing

__all__ = ["DEFAULT_EXPIRY", "RepositoryBuilder", "target_file_path"]

DEFAULT_EXPIRY: Mapping[str, timedelta] = {
    "root": timedelta(days=365),
    "targets": timedelta(days=90),
    "series": timedelta(days=90),
    "snapshot": timedelta(days=7),
    "timestamp": timedelta(days=1),
}

_CHUNK = 1 << 16
_SERIES = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
Source = bytes | str | os.PathLike[str] | IO[bytes] | Iterable[bytes]
"""An image's bytes: in memory, a file path, a binary file object, or chunks as made."""


def target_file_path(target: TargetFile) -> PurePosixPath:
    """Where a target's bytes live under ``targets/``: ``<dir>/<sha256>.<name>``."""
    path = PurePosixPath(target.path)
    return path.parent / f"{target.hashes['sha256']}.{path.name}"


class RepositoryBuilder:
    """Builds and publishes a TUF repository of P-Data in ``out_dir``.

    If ``out_dir`` already holds a published repository, the builder continues from it, so
    the next ``publish()`` bumps versions instead of starting over.

    Args:
        out_dir: the repository directory (served as static files).
        keys: signing keys of the top-level roles and of each series.
        expires: lifetime per role (``root``, ``targets``, ``series``, ``snapshot``,
            ``timestamp``); missing ones come from ``DEFAULT_EXPIRY``.
        thresholds: signatures required per role name (default 1); every key the key ring
            holds for a role is listed in the metadata.
        now: the publishing time (tests pin it); default the current UTC time.
    """

    def __init__(
        self,
        out_dir: Path,
        keys: KeyRing,
        *,
        expires: Mapping[str, timedelta] | None = None,
        thresholds: Mapping[str, int] | None = None,
        now: datetime | None = None,
    ) -> None:
        self._dir = Path(out_dir)
        self._keys = keys
        self._expires = {**DEFAULT_EXPIRY, **(expires or {})}
        self._thresholds = dict(thresholds or {})
        self._now = now
        self._dirty: set[str] = set()
        self._extra_root_signers: tuple[CryptoSigner, ...] = ()
        if (self._dir / "timestamp.json").exists():
            self._load()
        else:
            self._new()

    @property
    def keys(self) -> KeyRing:
        """The current signing keys (after any rotation)."""
        return self._keys

    def add_target(
        self, series: str, path_in_repo: str, data_or_file: Source, *, custom: Mapping[str, Any]
    ) -> TargetFile:
        """Add or replace one image of ``series``; its bytes are stored at once.

        The file is streamed: it is hashed and copied in chunks, never loaded whole.

        Args:
            series: the vehicle series (delegated role), e.g. ``"F030"``.
            path_in_repo: the image's path inside the series, e.g. ``"DME/swfl_1234.bin"``.
            data_or_file: the bytes, a path to a file, a binary file object, or an
                iterable of chunks (consumed once).
            custom: the P-Data fields (``sgbm``, ``process_class``, ``hardware``,
                ``release``), stored as the target's ``custom`` field.

        Returns:
            The target as it will be signed (path ``<series>/<path_in_repo>``).

        Raises:
            ConfigError: the series name or path cannot be used, or no key for the series.
        """
        self._ensure_series(series)
        rel = PurePosixPath(path_in_repo)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts or str(rel) != path_in_repo:
            raise ConfigError(f"target path {path_in_repo!r} must be relative and canonical")
        full = f"{series}/{path_in_repo}"
        length, sha256 = self._store(full, data_or_file)
        target = TargetFile(length, {"sha256": sha256}, full, {"custom": dict(custom)})
        role = self._delegated[series]
        if role.signed.targets.get(full) != target:
            role.signed.targets[full] = target
            self._dirty.add(series)
            self._cover_depth(series, len(rel.parts))
        return target

    def rotate_keys(
        self, role: str, new_signers: Iterable[CryptoSigner], *, threshold: int | None = None
    ) -> None:
        """Replace the keys of a top-level role; takes effect with the next ``publish()``.

        Args:
            role: ``root``, ``targets``, ``snapshot`` or ``timestamp``.
            new_signers: the new keys (their private halves sign from now on).
            threshold: a new threshold for the role, else the current one.
        """
        if role not in TOP_LEVEL_ROLES:
            raise ConfigError(f"{role!r} is not a top-level role")
        new = tuple(new_signers)
        root = self._root.signed
        if role == "root":
            # The new root must carry a threshold of the old root's signatures too.
            self._extra_root_signers = self._keys.for_role("root")
        for keyid in list(root.roles[role].keyids):
            root.revoke_key(keyid, role)
        for signer in new:
            root.add_key(signer.public_key, role)
        if threshold is not None:
            self._thresholds[role] = threshold
        root.roles[role].threshold = self._thresholds.get(role, 1)
        self._keys = self._keys.replace(role, new)
        self._dirty.update({"root", role})

    def publish(self) -> None:
        """Sign and write every changed role, then a new snapshot and timestamp."""
        if "root" in self._dirty:
            self._bump(self._root, "root", "root")
            self._sign(self._root, (*self._keys.for_role("root"), *self._extra_root_signers))
            self._write(f"{self._root.signed.version}.root.json", self._root)
            self._extra_root_signers = ()
        for series, md in self._delegated.items():
            if series in self._dirty:
                self._bump(md, series, "series")
                self._sign(md, self._keys.for_role(series))
                self._write(f"{md.signed.version}.{series}.json", md)
        if "targets" in self._dirty:
            self._bump(self._targets, "targets", "targets")
            self._sign(self._targets, self._keys.for_role("targets"))
            self._write(f"{self._targets.signed.version}.targets.json", self._targets)
        snapshot = self._snapshot.signed
        snapshot.meta["targets.json"] = MetaFile(self._targets.signed.version)
        for series, md in self._delegated.items():
            snapshot.meta[f"{series}.json"] = MetaFile(md.signed.version)
        self._bump(self._snapshot, "snapshot", "snapshot")
        self._sign(self._snapshot, self._keys.for_role("snapshot"))
        self._write(f"{snapshot.version}.snapshot.json", self._snapshot)
        self._timestamp.signed.snapshot_meta = MetaFile(snapshot.version)
        self._bump(self._timestamp, "timestamp", "timestamp")
        self._sign(self._timestamp, self._keys.for_role("timestamp"))
        self._write("timestamp.json", self._timestamp)
        self._dirty.clear()

    # -- state ---------------------------------------------------------------------------

    def _new(self) -> None:
        """Start an empty repository: version 1 of every role, written on first publish."""
        root = Root(expires=self._expiry("root"), consistent_snapshot=True)
        for role in TOP_LEVEL_ROLES:
            for signer in self._keys.for_role(role):
                root.add_key(signer.public_key, role)
            root.roles[role].threshold = self._thresholds.get(role, 1)
        self._root = Metadata(root)
        self._targets = Metadata(Targets(expires=self._expiry("targets")))
        self._targets.signed.delegations = Delegations(keys={}, roles={})
        self._snapshot = Metadata(Snapshot(expires=self._expiry("snapshot")))
        self._timestamp = Metadata(Timestamp(expires=self._expiry("timestamp")))
        self._delegated: dict[str, Metadata[Targets]] = {}
        self._dirty = {"root", "targets"}
        self._written: set[str] = set()

    def _load(self) -> None:
        """Continue from the repository already published in ``out_dir``."""
        versions = [int(p.name.split(".", 1)[0]) for p in self._dir.glob("*.root.json")]
        self._root = Metadata[Root].from_file(str(self._dir / f"{max(versions)}.root.json"))
        self._timestamp = Metadata[Timestamp].from_file(str(self._dir / "timestamp.json"))
        snap_version = self._timestamp.signed.snapshot_meta.version
        self._snapshot = Metadata[Snapshot].from_file(
            str(self._dir / f"{snap_version}.snapshot.json")
        )
        meta = self._snapshot.signed.meta
        self._targets = Metadata[Targets].from_file(
            str(self._dir / f"{meta['targets.json'].version}.targets.json")
        )
        self._delegated = {}
        delegations = self._targets.signed.delegations
        for name in (delegations.roles or {}) if delegations else {}:
            path = self._dir / f"{meta[f'{name}.json'].version}.{name}.json"
            self._delegated[name] = Metadata[Targets].from_file(str(path))
        self._dirty = set()
        self._written = {*TOP_LEVEL_ROLES, *self._delegated}

    def _ensure_series(self, series: str) -> None:
        """Delegate ``<series>/*`` to the series' own keys, once."""
        if series in self._delegated:
            return
        if not _SERIES.fullmatch(series) or series in TOP_LEVEL_ROLES:
            raise ConfigError(f"series name {series!r} cannot be a role name")
        delegations = self._targets.signed.delegations
        assert delegations is not None
        assert delegations.roles is not None
        signers = self._keys.for_role(series)
        delegations.roles[series] = DelegatedRole(
            name=series,
            keyids=[s.public_key.keyid for s in signers],
            threshold=self._thresholds.get(series, 1),
            terminating=True,
            paths=[f"{series}/*"],
        )
        for signer in signers:
            delegations.keys[signer.public_key.keyid] = signer.public_key
        self._delegated[series] = Metadata(Targets(expires=self._expiry("series")))
        self._dirty.update({"targets", series})

    def _cover_depth(self, series: str, depth: int) -> None:
        """Let the series' delegation match paths ``depth`` levels deep (TUF's ``*`` stops
        at ``/``)."""
        delegations = self._targets.signed.delegations
        assert delegations is not None
        assert delegations.roles is not None
        role = delegations.roles[series]
        pattern = series + "/*" * depth
        if role.paths is not None and pattern not in role.paths:
            role.paths = sorted([*role.paths, pattern], key=len)
            self._dirty.add("targets")

    # -- files ---------------------------------------------------------------------------

    def _store(self, full: str, source: Source) -> tuple[int, str]:
        """Copy ``source`` to its consistent-snapshot name while hashing it."""
        dest_dir = self._dir / "targets" / PurePosixPath(full).parent
        dest_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        length = 0
        fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=".incoming.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in _chunks(source):
                    digest.update(chunk)
                    length += len(chunk)
                    out.write(chunk)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest_dir / f"{digest.hexdigest()}.{PurePosixPath(full).name}")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return length, digest.hexdigest()

    def _write(self, name: str, md: Metadata[Any]) -> None:
        write_atomic(self._dir / name, md.to_bytes())

    def _expiry(self, kind: str) -> datetime:
        now = self._now or datetime.now(UTC)
        return now + self._expires[kind]

    def _bump(self, md: Metadata[Any], name: str, kind: str) -> None:
        """Give role ``name`` a fresh expiry and, if written before, the next version."""
        if name in self._written:
            md.signed.version += 1
        self._written.add(name)
        md.signed.expires = self._expiry(kind)

    @staticmethod
    def _sign(md: Metadata[Any], signers: Iterable[CryptoSigner]) -> None:
        md.signatures.clear()
        for signer in signers:
            md.sign(signer, append=True)


def _chunks(source: Source) -> Iterable[bytes]:
    """Yield ``source`` in chunks, whatever form it comes in."""
    if isinstance(source, bytes):
        for i in range(0, len(source), _CHUNK):
            yield source[i : i + _CHUNK]
        return
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as f:
            yield from iter(lambda: f.read(_CHUNK), b"")
        return
    if hasattr(source, "read"):
        yield from iter(lambda: source.read(_CHUNK), b"")
        return
    yield from source
