"""The local P-Data store under ``<home>/pdata/`` and ``pdata sync``, its I/O shell.

Layout::

    pdata/
      config.json               {"schema": 1, "url": ..., "pinned_root_sha256": ...}
      trusted/root.json         the newest root reached from the pinned one
      trusted/timestamp.json    snapshot.json  targets.json  <series>.json
      cache/ab/abcdef...        image bytes, named by their SHA-256
      cache/tmp/<sha256>.part   a download in progress, resumed with an HTTP Range request

Sync follows the TUF client workflow (specification, 5.3-5.6) around
:class:`TrustedRepository`, which only takes bytes: the stored trusted metadata is fed
first, so a server cannot roll it back, then the remote metadata, each file read with a
size cap and saved (atomically) only after it verified. Each image is downloaded into
``cache/tmp``, read to at most its signed length + 1, verified, and only then moved into
the cache; a failed image leaves nothing in the cache.

:meth:`LocalStore.open_unit` is how bytes leave the store for an ECU: it verifies the whole
cached file before yielding its first chunk.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Final
from urllib.parse import quote

import httpx

from ecuworks.errors import ConfigError, LinkError, PDataMismatch
from ecuworks.pdata._atomic import write_atomic
from ecuworks.pdata.trust import TargetInfo, TargetVerifier, TrustedRepository, verify_target

__all__ = ["LocalStore", "Progress", "SyncReport", "stream_verified"]

# python-tuf's ngclient defaults: the most a metadata file may be before it is refused.
CAPS: Final = {"root": 512_000, "timestamp": 16_384, "snapshot": 2_000_000, "targets": 5_000_000}
MAX_ROOT_ROTATIONS: Final = 32
PARALLEL: Final = 4
"""Images downloaded at once."""
_CHUNK: Final = 1 << 16
_ROLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")

Progress = Callable[[TargetInfo, int], None]
"""Called as an image downloads: ``(target, bytes held so far)``, resumed bytes included."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncReport:
    """What a sync did.

    Attributes:
        url: the repository synced from.
        root_version: the trusted root version after the sync.
        snapshot_version: the verified snapshot's version.
        targets: every image the signed metadata lists.
        downloaded: the images fetched (wholly or resumed) in this sync.
        bytes_downloaded: image bytes received in this sync.
    """

    url: str
    root_version: int
    snapshot_version: int
    targets: tuple[TargetInfo, ...]
    downloaded: tuple[TargetInfo, ...]
    bytes_downloaded: int


class LocalStore:
    """The verified P-Data of one workshop installation.

    Args:
        home: the ecuworks data directory; the store lives in ``<home>/pdata``.
    """

    def __init__(self, home: Path) -> None:
        self.root_dir = Path(home) / "pdata"
        self._trusted = self.root_dir / "trusted"
        self._cache = self.root_dir / "cache"
        self._config = self.root_dir / "config.json"

    # -- configuration -------------------------------------------------------------------

    @property
    def is_configured(self) -> bool:
        """True once a repository URL and its trusted root are set (the demo is then unused)."""
        return self._config.is_file() and (self._trusted / "root.json").is_file()

    @property
    def url(self) -> str:
        """The configured repository URL, ending with ``/``.

        Raises:
            ConfigError: no repository is configured.
        """
        if not self.is_configured:
            raise ConfigError(
                "no P-Data repository is configured: run `ecuworks pdata sync URL --root FILE`"
            )
        url: str = json.loads(self._config.read_text())["url"]
        return url

    def configure(self, url: str, trusted_root_bytes: bytes) -> None:
        """Set the repository to sync from and the root metadata to trust.

        Setting the same URL and root again keeps what was synced; anything else starts a
        fresh trusted state (the old metadata belongs to another repository).

        Raises:
            ConfigError: the URL is not ``http://`` or ``https://``.
            PDataMismatch: the root does not verify against its own keys.
        """
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{url!r} is not an http:// or https:// URL of a P-Data repository")
        TrustedRepository(trusted_root_bytes)  # refuses a root that is not self-signed
        url = url if url.endswith("/") else url + "/"
        config = {
            "schema": 1,
            "url": url,
            "pinned_root_sha256": hashlib.sha256(trusted_root_bytes).hexdigest(),
        }
        if self._config.is_file() and json.loads(self._config.read_text()) == config:
            return
        shutil.rmtree(self._trusted, ignore_errors=True)
        write_atomic(self._trusted / "root.json", trusted_root_bytes)
        write_atomic(self._config, json.dumps(config, indent=2).encode())

    # -- offline use ---------------------------------------------------------------------

    def load(self) -> TrustedRepository:
        """The trusted metadata as the last sync left it, verified again, offline.

        Raises:
            ConfigError: no repository is configured or it was never synced.
            PDataMismatch: stored metadata fails (e.g. ``expired``: sync again).
        """
        _ = self.url  # configured?
        repo = TrustedRepository(self._read_trusted("root"))
        repo.update_timestamp(self._read_trusted("timestamp"))
        repo.update_snapshot(self._read_trusted("snapshot"), trusted=True)
        repo.update_targets(self._read_trusted("targets"))
        for series in repo.series:
            repo.update_delegated(series, self._read_trusted(_role_file(series)))
        return repo

    def target_info(self, series: str, path: str) -> TargetInfo:
        """What the signed metadata says about one image (``path`` inside ``series``)."""
        return self.load().target_info(series, path)

    def open_unit(self, series: str, path: str) -> Iterator[bytes]:
        """Stream one image's verified bytes from the cache, in chunks.

        The whole file is verified against the signed length and SHA-256 before the first
        chunk is yielded (so nothing unverified can reach an ECU), then streamed from the
        same open file. The second pass is hashed too: if the file is changed on disk while
        it streams, the stream ends with :class:`PDataMismatch` rather than quietly.

        Raises:
            PDataMismatch: at the call if the signed metadata does not list the image; at
                the first ``next()``, before any chunk, if it is missing from the cache or
                its bytes do not match.
            ConfigError: no repository is configured or synced.
        """
        info = self.target_info(series, path)
        return stream_verified(info, self.cached_path(info))

    def cached_path(self, info: TargetInfo) -> Path:
        """Where the cache keeps an image's bytes (named by their SHA-256)."""
        return self._cache / info.sha256[:2] / info.sha256

    # -- sync ----------------------------------------------------------------------------

    async def sync(
        self, *, progress: Progress | None = None, client: httpx.AsyncClient | None = None
    ) -> SyncReport:
        """Bring the trusted metadata and the image cache up to date with the repository.

        Args:
            progress: called as image bytes arrive.
            client: the HTTP client to use (tests pass one); default a fresh one.

        Returns:
            What was verified and fetched.

        Raises:
            ConfigError: no repository is configured.
            PDataMismatch: metadata or an image failed verification (the first image
                failure is raised after the other images were fetched).
            LinkError: the server could not be reached or broke off a download; a later
                sync resumes where this one stopped.
        """
        url = self.url
        if client is None:
            async with httpx.AsyncClient(timeout=30.0) as own:
                return await _Sync(self, url, own, progress).run()
        return await _Sync(self, url, client, progress).run()

    # -- files ---------------------------------------------------------------------------

    def _has(self, name: str) -> bool:
        return (self._trusted / f"{name}.json").is_file()

    def _read_trusted(self, name: str) -> bytes:
        try:
            return (self._trusted / f"{name}.json").read_bytes()
        except FileNotFoundError:
            raise ConfigError(
                "the P-Data repository was never synced: run `ecuworks pdata sync`"
            ) from None

    def _save_trusted(self, name: str, data: bytes) -> None:
        write_atomic(self._trusted / f"{name}.json", data)

    def _part(self, info: TargetInfo) -> Path:
        return self._cache / "tmp" / f"{info.sha256}.part"


class _Sync:
    """One run of the TUF client workflow against ``url``, saving into ``store``."""

    def __init__(
        self,
        store: LocalStore,
        url: str,
        client: httpx.AsyncClient,
        progress: Progress | None,
    ) -> None:
        self.store = store
        self.url = url
        self.client = client
        self.progress = progress
        self.received = 0
        self._made: set[Path] = set()  # directories known to exist during this sync

    async def run(self) -> SyncReport:
        repo = await self._metadata()
        targets = [info for series in repo.series for info in repo.targets_of(series)]
        unique = list({info.sha256: info for info in reversed(targets)}.values())[::-1]
        # content-addressed: one copy serves every path; a few at once hide each file's
        # fixed costs (request, file creation, rename) behind the others' transfers
        fetched = await self._images(unique)
        return SyncReport(
            url=self.url,
            root_version=repo.root.version,
            snapshot_version=repo.snapshot.version,
            targets=tuple(targets),
            downloaded=tuple(info for info in unique if info.sha256 in fetched),
            bytes_downloaded=self.received,
        )

    async def _images(self, infos: list[TargetInfo]) -> set[str]:
        """Bring every image into the cache, ``PARALLEL`` at a time; the SHA-256s fetched.

        Raises:
            PDataMismatch: the first image (in listed order) that failed, after the others.
            LinkError: the server broke off; the other downloads stop at once (so do they
                on any other error, e.g. a full disk, which is raised as it is).
        """
        queue = iter(infos)
        fetched: set[str] = set()
        failures: dict[str, PDataMismatch] = {}

        async def worker() -> None:
            for info in queue:
                try:
                    if await self._target(info):
                        fetched.add(info.sha256)
                except PDataMismatch as exc:
                    failures[info.sha256] = exc

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(PARALLEL, len(infos))):
                    group.create_task(worker())
        except ExceptionGroup as group:  # a LinkError, or e.g. a full disk: the first one
            raise group.exceptions[0] from None
        for info in infos:
            if info.sha256 in failures:
                raise failures[info.sha256]
        return fetched

    async def _metadata(self) -> TrustedRepository:
        store = self.store
        repo = TrustedRepository(store._read_trusted("root"))
        for _ in range(MAX_ROOT_ROTATIONS):
            data = await self._fetch(f"{repo.root.version + 1}.root.json", "root", optional=True)
            if data is None:
                break
            repo.update_root(data)
            store._save_trusted("root", data)
        # what this client trusted before: a server may not go back behind it
        if store._has("timestamp"):
            with suppress(PDataMismatch):
                repo.update_timestamp(store._read_trusted("timestamp"))
        data = await self._required("timestamp.json", "timestamp")
        repo.update_timestamp(data)
        store._save_trusted("timestamp", data)
        if not self._local_snapshot(repo):
            version = repo.timestamp.snapshot_meta.version
            data = await self._required(f"{version}.snapshot.json", "snapshot")
            repo.update_snapshot(data)
            store._save_trusted("snapshot", data)
        await self._targets(repo, "targets", repo.update_targets)
        for series in repo.series:
            if not _ROLE_NAME.fullmatch(series):
                raise PDataMismatch(unit=series, reason="unknown-unit", detail="bad series name")
            await self._targets(repo, series, partial(repo.update_delegated, series))
        return repo

    def _local_snapshot(self, repo: TrustedRepository) -> bool:
        """Load the stored snapshot; True if it is the one the new timestamp lists."""
        if not self.store._has("snapshot"):
            return False
        try:
            repo.update_snapshot(self.store._read_trusted("snapshot"), trusted=True)
        except PDataMismatch:
            return False  # loaded or not, it still guards against a rollback
        return True

    async def _targets(
        self, repo: TrustedRepository, role: str, update: Callable[[bytes], object]
    ) -> None:
        name = _role_file(role)
        if self.store._has(name):
            with suppress(PDataMismatch):
                update(self.store._read_trusted(name))
                return
        version = repo.snapshot.meta[f"{role}.json"].version
        data = await self._required(f"{version}.{quote(role)}.json", "targets")
        update(data)
        self.store._save_trusted(name, data)

    async def _required(self, name: str, kind: str) -> bytes:
        data = await self._fetch(name, kind, optional=False)
        assert data is not None
        return data

    async def _fetch(self, name: str, kind: str, *, optional: bool) -> bytes | None:
        """GET one metadata file with its size cap; ``None`` for a 404 when optional."""
        cap = CAPS[kind]
        body = bytearray()
        try:
            async with self.client.stream("GET", self.url + name) as response:
                if optional and response.status_code in {403, 404}:
                    return None
                _check_status(response, name)
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > cap:
                        raise PDataMismatch(
                            unit=name, reason="length", detail=f"larger than {cap} bytes"
                        )
        except httpx.HTTPError as exc:
            raise _link_error(self.url, exc) from exc
        return bytes(body)

    async def _target(self, info: TargetInfo) -> bool:
        """Make sure the cache holds ``info``'s verified bytes; True if it fetched any.

        Bytes are hashed as they are written, never read back; a resumed download hashes
        the part it already holds first.
        """
        store = self.store
        cached = store.cached_path(info)
        if cached.is_file():
            try:
                verify_file(info, cached)
            except PDataMismatch:
                cached.unlink(missing_ok=True)
            else:
                return False
        part = store._part(info)
        self._mkdir(part.parent)
        have = _size(part)
        if have > info.length:
            part.unlink()
            have = 0
        try:
            verifier = TargetVerifier(info)
            if have:
                with part.open("rb") as f:
                    for chunk in _read_chunks(f):
                        verifier.feed(chunk)
            if have < info.length:
                verifier = await self._download(info, part, verifier)
            verifier.finish()
        except PDataMismatch:
            part.unlink(missing_ok=True)  # never resume from bytes that failed
            raise
        self._mkdir(cached.parent)
        os.replace(part, cached)
        return True

    def _mkdir(self, directory: Path) -> None:
        """Make ``directory`` once per sync (each mkdir costs a metadata write)."""
        if directory not in self._made:
            directory.mkdir(parents=True, exist_ok=True)
            self._made.add(directory)

    async def _download(
        self, info: TargetInfo, part: Path, verifier: TargetVerifier
    ) -> TargetVerifier:
        """Append the missing bytes of ``info`` to ``part``, feeding ``verifier`` as they are
        written; return the verifier of the whole file (a new one if the server restarted).

        Blocking writes to local disk are fine here: sync runs alone in its event loop.
        """
        have = verifier.seen
        headers = {"Range": f"bytes={have}-"} if have else {}
        url = self.url + "targets/" + quote(info.stored_name)
        try:
            async with self.client.stream("GET", url, headers=headers) as response:
                _check_status(response, info.path)
                if have and response.status_code != 206:  # the server sent it all: start over
                    have = 0
                    verifier = TargetVerifier(info)
                with part.open("r+b" if have else "wb") as f:
                    # "wb" left the file empty: truncating it again would change nothing
                    # but make ext4 (auto_da_alloc) start writing it back at close().
                    if have:
                        f.seek(have)
                        f.truncate()
                    async for chunk in response.aiter_raw():
                        self.received += min(len(chunk), info.length + 1 - have)
                        piece = verifier.feed(chunk)  # raises past the signed length
                        f.write(piece)
                        have += len(piece)
                        if self.progress is not None:
                            self.progress(info, min(have, info.length))
        except httpx.HTTPError as exc:
            raise _link_error(self.url, exc) from exc
        return verifier


def _role_file(role: str) -> str:
    """Stored file name of a targets role (``targets`` or a series)."""
    return role if role == "targets" else f"series.{role}"


def _check_status(response: httpx.Response, name: str) -> None:
    if response.status_code not in {200, 206}:
        raise LinkError(
            f"the P-Data server answered {response.status_code} for {name} "
            f"({response.url}); check the URL and that the repository is published"
        )


def _link_error(url: str, exc: httpx.HTTPError) -> LinkError:
    return LinkError(
        f"the P-Data download from {url} broke off ({type(exc).__name__}: {exc}); "
        "run `ecuworks pdata sync` again to resume"
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def stream_verified(info: TargetInfo, path: Path) -> Iterator[bytes]:
    """Stream the image at ``path`` in chunks, once its whole file verified against ``info``.

    The whole file is checked against the signed length and SHA-256 before the first chunk
    is yielded (so nothing unverified can reach an ECU), then streamed from the same open
    file. The second pass is hashed too: if the file changes on disk while it streams, the
    stream ends with :class:`PDataMismatch` rather than quietly.

    Raises:
        PDataMismatch: at the first ``next()``, before any chunk, if the file is missing or
            its bytes do not match; at the end if it changed while streamed.
    """
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise PDataMismatch(
            unit=info.path, reason="length", detail=f"not found at {path}"
        ) from None
    with f:
        verify_target(info, _read_chunks(f))
        f.seek(0)
        digest = hashlib.sha256()
        left = info.length
        while left > 0 and (chunk := f.read(min(_CHUNK, left))):
            left -= len(chunk)
            digest.update(chunk)
            yield chunk
        if left or digest.hexdigest() != info.sha256:
            raise PDataMismatch(
                unit=info.path, reason="hash", detail="the file changed while it was read"
            )


def verify_file(info: TargetInfo, path: Path) -> None:
    """Check the file at ``path`` against the signed length and SHA-256, in one pass.

    Raises:
        PDataMismatch: missing, or its bytes do not match.
    """
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise PDataMismatch(
            unit=info.path, reason="length", detail=f"not found at {path}"
        ) from None
    with f:
        verify_target(info, _read_chunks(f))


def _read_chunks(f: IO[bytes]) -> Iterator[bytes]:
    return iter(lambda: f.read(_CHUNK), b"")
