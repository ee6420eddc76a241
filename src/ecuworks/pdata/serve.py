"""``ecuworks pdata serve DIR``: a published repository as static files over HTTP, on loopback.

A small ASGI app (GET and HEAD, one byte range per request, as ``pdata sync`` resumes
with ``Range: bytes=N-``) served by uvicorn inside the running event loop. It counts the
body bytes it sends per path, so tests can prove that a resumed sync fetches nothing twice.
Nothing here trusts or checks the files: the client verifies every byte against TUF.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

from ecuworks.embedded_http import RunningServer, serve_asgi
from ecuworks.errors import ConfigError

__all__ = ["RunningServer", "StaticApp", "serve_app", "serve_directory"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CHUNK: Final = 1 << 20  # one thread hop per MiB of body: at 64 KiB the hops bounded a sync
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class StaticApp:
    """Serve the files under ``directory``, with single byte ranges (RFC 9110, 14.2).

    Attributes:
        served: body bytes sent so far, by request path (``/targets/...``).
        requests: ``(path, Range header or None)`` of every GET, in order.
    """

    def __init__(self, directory: Path) -> None:
        self._root = Path(directory).resolve()
        if not self._root.is_dir():
            raise ConfigError(f"{directory} is not a directory; give a published P-Data repository")
        self.served: Counter[str] = Counter()
        self.requests: list[tuple[str, str | None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one HTTP request."""
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["method"] not in {"GET", "HEAD"}:
            await _plain(send, 405, b"method not allowed")
            return
        found = await asyncio.to_thread(self._locate, path)
        if found is None:
            await _plain(send, 404, b"not found")
            return
        file, size = found
        start, end, status = 0, size, 200
        wanted = headers.get("range")
        if scope["method"] == "GET":
            self.requests.append((path, wanted))
        if wanted and (m := _RANGE.fullmatch(wanted.strip())):
            start = int(m[1])
            end = min(size, int(m[2]) + 1) if m[2] else size
            if start >= size or start >= end:
                await _plain(send, 416, b"range not satisfiable", (f"bytes */{size}",))
                return
            status = 206
        extra = [("content-range", f"bytes {start}-{end - 1}/{size}")] if status == 206 else []
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": _encode(
                    [
                        ("content-length", str(end - start)),
                        ("content-type", "application/octet-stream"),
                        ("accept-ranges", "bytes"),
                        *extra,
                    ]
                ),
            }
        )
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        await self._stream(send, path, file, start, end)

    async def _stream(self, send: Send, path: str, file: Path, start: int, end: int) -> None:
        f = await asyncio.to_thread(file.open, "rb")
        try:
            f.seek(start)
            left = end - start
            while left > 0:
                chunk = await asyncio.to_thread(f.read, min(_CHUNK, left))
                if not chunk:  # the file shrank under us: end the body short
                    break
                left -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
                self.served[path] += len(chunk)
            if left > 0:
                await send({"type": "http.response.body", "body": b""})
        finally:
            f.close()

    def _locate(self, url_path: str) -> tuple[Path, int] | None:
        """The file a URL path names and its size; ``None`` outside the directory or missing."""
        candidate = (self._root / unquote(url_path).lstrip("/")).resolve()
        if not candidate.is_relative_to(self._root) or not candidate.is_file():
            return None
        return candidate, candidate.stat().st_size


def _encode(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


async def _plain(send: Send, status: int, body: bytes, content_range: tuple[str, ...] = ()) -> None:
    headers = [("content-length", str(len(body))), ("content-type", "text/plain")]
    headers += [("content-range", value) for value in content_range]
    await send({"type": "http.response.start", "status": status, "headers": _encode(headers)})
    await send({"type": "http.response.body", "body": body})


# --- uvicorn in the running event loop ------------------------------------------------------


async def serve_app(app: AsgiApp, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve an ASGI app with uvicorn in the running event loop, on loopback.

    Args:
        app: the ASGI app (a :class:`StaticApp`, or a test's wrapper around one).
        host: a loopback address.
        port: the TCP port, 0 for a free one.

    Returns:
        The running server; ``await running.close()`` stops it.

    Raises:
        ConfigError: the host is not loopback or the port cannot be bound.
        EcuworksError: uvicorn did not start.
    """
    return await serve_asgi(
        app, host, port, what="the P-Data server", option="--port", log_level="critical"
    )


async def serve_directory(
    directory: Path, host: str = "127.0.0.1", port: int = 0
) -> tuple[RunningServer, StaticApp]:
    """Serve a published P-Data repository directory on loopback.

    Args:
        directory: the repository, as ``RepositoryBuilder.publish`` or ``pdata demo`` wrote it.
        host: a loopback address.
        port: the TCP port, 0 for a free one.

    Returns:
        The running server and the app (whose ``served`` counts bytes per path).

    Raises:
        ConfigError: not a directory, not loopback, or the port cannot be bound.
    """
    app = StaticApp(directory)
    return await serve_app(app, host, port), app
