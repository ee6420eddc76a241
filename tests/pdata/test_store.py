"""``pdata sync`` into the local store, against a repository served on loopback.

Each attack ends in a PDataMismatch naming what failed, nothing reaches the cache, and the
metadata trusted before stays.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata

from ecuworks.errors import ConfigError, LinkError, PDataMismatch
from ecuworks.pdata.keys import TOP_LEVEL_ROLES, KeyRing
from ecuworks.pdata.repository import RepositoryBuilder
from ecuworks.pdata.serve import RunningServer, StaticApp, serve_app, serve_directory
from ecuworks.pdata.store import LocalStore

DME = {"sgbm": "SWFL-0000ABCD-001.002.003", "process_class": "SWFL", "hardware": [], "release": 1}
IMAGE = bytes(range(256)) * 300
BIG = 8 * 1024 * 1024


class Meter:
    """Counts the body bytes handed to uvicorn, per path (outermost ASGI wrapper)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sent: Counter[str] = Counter()
        self.ranges: list[tuple[str, str | None]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope["path"]
        headers = dict(scope["headers"])
        self.ranges.append((path, (headers.get(b"range") or b"").decode() or None))

        async def counting(message: Any) -> None:
            if message["type"] == "http.response.body":
                self.sent[path] += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, counting)

    def images(self) -> int:
        return sum(n for p, n in self.sent.items() if p.startswith("/targets/"))


class CutOnce:
    """Breaks the connection after ``after`` body bytes of the first request for ``suffix``."""

    def __init__(self, app: Any, suffix: str, after: int) -> None:
        self.app, self.suffix, self.after, self.armed = app, suffix, after, True

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not (self.armed and scope["path"].endswith(self.suffix)):
            await self.app(scope, receive, send)
            return
        self.armed = False
        sent = 0

        async def cutting(message: Any) -> None:
            nonlocal sent
            body = message.get("body", b"")
            if message["type"] == "http.response.body" and sent + len(body) >= self.after:
                await send({**message, "body": body[: self.after - sent], "more_body": True})
                raise ConnectionAbortedError("cut by the test")
            sent += len(body)
            await send(message)

        await self.app(scope, receive, cutting)


class Endless:
    """Streams far more than any signed length for paths ending in ``suffix``."""

    def __init__(self, app: Any, suffix: str) -> None:
        self.app, self.suffix = app, suffix

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not scope["path"].endswith(self.suffix):
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(1024):  # bounded: 64 MiB at most
            await send({"type": "http.response.body", "body": b"\xff" * 65536, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


class Reading(httpx.AsyncBaseTransport):
    """An httpx transport that counts the response bytes the client actually reads."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.read: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        path = request.url.path
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)

        class Counted(httpx.AsyncByteStream):
            async def __aiter__(inner_self) -> AsyncIterator[bytes]:
                async for chunk in stream:
                    self.read[path] += len(chunk)
                    yield chunk

            async def aclose(inner_self) -> None:
                await stream.aclose()

        return httpx.Response(
            response.status_code, headers=response.headers, stream=Counted(), request=request
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def keys() -> KeyRing:
    return KeyRing.generate((*TOP_LEVEL_ROLES, "F030", "G020"))


@pytest.fixture
def repo(tmp_path: Path, keys: KeyRing) -> Path:
    out = tmp_path / "repo"
    builder = RepositoryBuilder(out, keys)
    builder.add_target("F030", "DME/swfl_abcd.bin", IMAGE, custom=DME)
    builder.add_target("F030", "egs.bin", b"\x01\x02\x03" * 1000, custom=DME)
    builder.add_target("G020", "DME/swfl_abcd.bin", IMAGE[::-1], custom=DME)
    builder.publish()
    return out


@pytest.fixture
async def served(repo: Path) -> AsyncIterator[tuple[RunningServer, Meter]]:
    meter = Meter(StaticApp(repo))
    running = await serve_app(meter)
    yield running, meter
    await running.close()


def store_for(tmp_path: Path, repo: Path, url: str) -> LocalStore:
    store = LocalStore(tmp_path / "home")
    store.configure(url, (repo / "1.root.json").read_bytes())
    return store


def cached_files(store: LocalStore) -> set[str]:
    cache = store.root_dir / "cache"
    return {p.name for p in cache.glob("??/*")} if cache.exists() else set()


def stored(repo: Path, series: str, path: str) -> Path:
    return next((repo / "targets" / series / Path(path).parent).glob(f"*.{Path(path).name}"))


async def test_sync_caches_every_image_and_a_second_sync_fetches_none(
    tmp_path: Path, repo: Path, served: tuple[RunningServer, Meter]
) -> None:
    running, meter = served
    store = store_for(tmp_path, repo, running.url)
    assert store.is_configured
    first = await store.sync()
    assert len(first.targets) == 3
    assert len(first.downloaded) == 3
    assert first.bytes_downloaded == meter.images() == 2 * len(IMAGE) + 3000
    assert len(cached_files(store)) == 3
    assert b"".join(store.open_unit("F030", "DME/swfl_abcd.bin")) == IMAGE
    assert b"".join(store.open_unit("G020", "DME/swfl_abcd.bin")) == IMAGE[::-1]

    before = meter.images()
    second = await store.sync()
    assert (second.downloaded, second.bytes_downloaded) == ((), 0)
    assert meter.images() == before  # only metadata went over the wire


async def test_an_interrupted_sync_resumes_without_fetching_bytes_twice(
    tmp_path: Path, repo: Path, keys: KeyRing
) -> None:
    big = bytes(range(251)) * (BIG // 251 + 1)
    big = big[:BIG]
    builder = RepositoryBuilder(repo, keys)
    builder.add_target("F030", "big.bin", big, custom=DME)
    builder.publish()
    meter = Meter(CutOnce(StaticApp(repo), ".big.bin", after=3 * 1024 * 1024 + 17))
    running = await serve_app(meter)
    try:
        store = store_for(tmp_path, repo, running.url)
        with pytest.raises(LinkError, match="run `ecuworks pdata sync` again"):
            await store.sync()
        path = next(p for p in meter.sent if p.endswith(".big.bin"))
        first_run = meter.sent[path]
        assert 0 < first_run < BIG
        assert "big.bin" not in "".join(cached_files(store))
        report = await store.sync()
    finally:
        await running.close()
    assert meter.sent[path] == BIG  # both runs together: every byte exactly once
    assert (path, f"bytes={first_run}-") in meter.ranges
    assert "F030/big.bin" in [i.path for i in report.downloaded]
    assert b"".join(store.open_unit("F030", "big.bin")) == big
    print(f"resume: first run {first_run} bytes, second {BIG - first_run}, total {BIG}")


class NoRanges:
    """A server that ignores Range and always sends the whole file (200)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"range"]
        await self.app({**scope, "headers": headers}, receive, send)


async def test_a_resume_the_server_ignores_starts_over_and_still_verifies(
    tmp_path: Path, repo: Path, keys: KeyRing
) -> None:
    big = (bytes(range(253)) * (BIG // 253 + 1))[:BIG]
    builder = RepositoryBuilder(repo, keys)
    builder.add_target("F030", "big.bin", big, custom=DME)
    builder.publish()
    meter = Meter(NoRanges(CutOnce(StaticApp(repo), ".big.bin", after=BIG // 2)))
    running = await serve_app(meter)
    try:
        store = store_for(tmp_path, repo, running.url)
        with pytest.raises(LinkError):
            await store.sync()
        await store.sync()
    finally:
        await running.close()
    path = next(p for p in meter.sent if p.endswith(".big.bin"))
    assert meter.sent[path] == BIG // 2 + BIG  # the half, then all of it again
    assert b"".join(store.open_unit("F030", "big.bin")) == big


async def test_a_partial_download_altered_on_disk_is_never_resumed(
    tmp_path: Path, repo: Path, keys: KeyRing
) -> None:
    big = (bytes(range(241)) * (BIG // 241 + 1))[:BIG]
    builder = RepositoryBuilder(repo, keys)
    builder.add_target("F030", "big.bin", big, custom=DME)
    builder.publish()
    running = await serve_app(CutOnce(StaticApp(repo), ".big.bin", after=BIG // 2))
    try:
        store = store_for(tmp_path, repo, running.url)
        with pytest.raises(LinkError):
            await store.sync()
        (part,) = (store.root_dir / "cache" / "tmp").glob("*.part")
        data = bytearray(part.read_bytes())
        data[100] ^= 0xFF
        part.write_bytes(bytes(data))
        with pytest.raises(PDataMismatch, match=r"F030/big.bin \(hash\)"):
            await store.sync()
        assert not part.exists()
        await store.sync()  # from scratch, and right
    finally:
        await running.close()
    assert b"".join(store.open_unit("F030", "big.bin")) == big


async def test_a_tampered_image_is_refused_and_not_cached(
    tmp_path: Path, repo: Path, served: tuple[RunningServer, Meter]
) -> None:
    running, _ = served
    target = stored(repo, "F030", "DME/swfl_abcd.bin")
    data = bytearray(target.read_bytes())
    data[1000] ^= 0x01
    target.write_bytes(bytes(data))
    store = store_for(tmp_path, repo, running.url)
    with pytest.raises(PDataMismatch) as caught:
        await store.sync()
    assert (caught.value.unit, caught.value.reason) == ("F030/DME/swfl_abcd.bin", "hash")
    assert str(caught.value).startswith("P-Data mismatch: F030/DME/swfl_abcd.bin")
    assert len(cached_files(store)) == 2  # the other images are there, this one is not
    assert not list((store.root_dir / "cache" / "tmp").iterdir())
    with pytest.raises(PDataMismatch):
        next(store.open_unit("F030", "DME/swfl_abcd.bin"))


async def test_an_endless_image_is_read_only_to_its_length_plus_one(
    tmp_path: Path, repo: Path
) -> None:
    running = await serve_app(Endless(StaticApp(repo), ".egs.bin"))
    transport = Reading()
    try:
        store = store_for(tmp_path, repo, running.url)
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(PDataMismatch) as caught:
                await store.sync(client=client)
    finally:
        await running.close()
    assert (caught.value.unit, caught.value.reason) == ("F030/egs.bin", "length")
    read = next(n for p, n in transport.read.items() if p.endswith(".egs.bin"))
    assert read <= 3000 + 1 + 65536  # at most one network chunk past the signed length
    assert len(cached_files(store)) == 2


async def test_rolled_back_metadata_is_refused_and_the_newer_kept(
    tmp_path: Path, repo: Path, keys: KeyRing, served: tuple[RunningServer, Meter]
) -> None:
    running, _ = served
    old = tmp_path / "old"
    shutil.copytree(repo, old)
    builder = RepositoryBuilder(repo, keys)
    builder.add_target("F030", "new.bin", b"new" * 100, custom=DME)
    builder.publish()
    store = store_for(tmp_path, repo, running.url)
    await store.sync()
    trusted = (store.root_dir / "trusted" / "timestamp.json").read_bytes()
    shutil.rmtree(repo)
    shutil.copytree(old, repo)  # the server now republishes the older release
    with pytest.raises(PDataMismatch) as caught:
        await store.sync()
    assert (caught.value.unit, caught.value.reason) == ("timestamp", "rollback")
    assert (store.root_dir / "trusted" / "timestamp.json").read_bytes() == trusted
    assert b"".join(store.open_unit("F030", "new.bin")) == b"new" * 100


async def test_an_expired_timestamp_is_refused(tmp_path: Path, keys: KeyRing) -> None:
    out = tmp_path / "stale"
    builder = RepositoryBuilder(out, keys, now=datetime.now(UTC) - timedelta(days=2))
    builder.add_target("F030", "a.bin", b"a" * 10, custom=DME)
    builder.publish()
    running, _ = await serve_directory(out)
    try:
        store = store_for(tmp_path, out, running.url)
        with pytest.raises(PDataMismatch) as caught:
            await store.sync()
    finally:
        await running.close()
    assert (caught.value.unit, caught.value.reason) == ("timestamp", "expired")
    assert cached_files(store) == set()


async def test_forged_series_metadata_is_refused(
    tmp_path: Path, repo: Path, served: tuple[RunningServer, Meter]
) -> None:
    running, _ = served
    forged = repo / "1.F030.json"
    md = Metadata.from_bytes(forged.read_bytes())
    md.signatures.clear()
    md.sign(CryptoSigner.generate_ed25519())
    forged.write_bytes(md.to_bytes())
    store = store_for(tmp_path, repo, running.url)
    with pytest.raises(PDataMismatch) as caught:
        await store.sync()
    assert (caught.value.unit, caught.value.reason) == ("F030", "signature")
    assert not (store.root_dir / "trusted" / "series.F030.json").exists()
    assert cached_files(store) == set()


async def test_a_cache_file_corrupted_on_disk_yields_nothing(
    tmp_path: Path, repo: Path, served: tuple[RunningServer, Meter]
) -> None:
    running, _ = served
    store = store_for(tmp_path, repo, running.url)
    await store.sync()
    info = store.target_info("F030", "DME/swfl_abcd.bin")
    cached = store.root_dir / "cache" / info.sha256[:2] / info.sha256
    data = bytearray(cached.read_bytes())
    data[-1] ^= 0xFF
    cached.write_bytes(bytes(data))
    chunks: list[bytes] = []
    with pytest.raises(PDataMismatch) as caught:
        chunks.extend(store.open_unit("F030", "DME/swfl_abcd.bin"))
    assert (caught.value.reason, chunks) == ("hash", [])
    with pytest.raises(PDataMismatch, match=r"does not list"):
        store.open_unit("F030", "nope.bin")
    await store.sync()  # a sync repairs the cache
    assert b"".join(store.open_unit("F030", "DME/swfl_abcd.bin")) == IMAGE


async def test_the_server_answers_byte_ranges(repo: Path) -> None:
    running, app = await serve_directory(repo)
    try:
        async with httpx.AsyncClient() as client:
            whole = await client.get(running.url + "1.root.json")
            part = await client.get(running.url + "1.root.json", headers={"Range": "bytes=10-"})
            past = await client.get(
                running.url + "1.root.json", headers={"Range": "bytes=9999999-"}
            )
            escape = await client.get(running.url + "..%2f..%2fetc%2fpasswd")
    finally:
        await running.close()
    assert whole.status_code == 200
    assert (part.status_code, part.content) == (206, whole.content[10:])
    assert (
        part.headers["content-range"] == f"bytes 10-{len(whole.content) - 1}/{len(whole.content)}"
    )
    assert (past.status_code, escape.status_code) == (416, 404)
    assert app.served["/1.root.json"] == 2 * len(whole.content) - 10


async def test_configuration_is_checked(tmp_path: Path, repo: Path) -> None:
    store = LocalStore(tmp_path / "home")
    assert not store.is_configured
    with pytest.raises(ConfigError, match="pdata sync URL"):
        await store.sync()
    with pytest.raises(ConfigError, match="http"):
        store.configure("ftp://example.invalid/", (repo / "1.root.json").read_bytes())
    with pytest.raises(ConfigError, match="loopback"):
        await serve_directory(repo, host="0.0.0.0")
