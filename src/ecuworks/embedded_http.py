"""Serve an ASGI app with uvicorn inside a running program, on loopback only.

The simulator's control API and ``pdata serve`` both run uvicorn in their own event loop:
the listening socket is bound first (so an ephemeral port is known at once and TCP_NODELAY
applies), the call returns once uvicorn accepts requests, and signals stay with the host
program. Like :mod:`ecuworks.errors`, this module sits outside the layers so every layer
may use it; it imports nothing of ecuworks but the errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Generator
from typing import Any, Final, NamedTuple

import uvicorn

from ecuworks.errors import ConfigError, EcuworksError

__all__ = ["RunningServer", "loopback_socket", "serve_asgi"]

_STARTUP_TIMEOUT_S: Final = 10.0
_SHUTDOWN_GRACE_S: Final = 5


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside a larger program: says when it is up, leaves signals to the host."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # Ctrl-C and SIGTERM belong to the program that runs the server

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.up.set()


class RunningServer(NamedTuple):
    """A running embedded server; ``url`` ends with ``/``."""

    server: EmbeddedServer
    task: asyncio.Task[None]
    sock: socket.socket
    port: int
    url: str

    async def close(self) -> None:
        """Stop serving, finish open requests, close the socket; safe to call twice.

        Raises:
            EcuworksError: the server had failed.
        """
        self.server.should_exit = True
        # asyncio.wait, not a bare await: cancelling the caller must not cancel uvicorn's
        # shutdown half-way, and a cancelled caller must still see its CancelledError.
        await asyncio.wait({self.task})
        self.sock.close()
        if not self.task.cancelled() and (exc := self.task.exception()) is not None:
            raise EcuworksError(f"the server on {self.url} failed: {exc}") from exc


def loopback_socket(host: str, port: int, *, what: str, option: str) -> socket.socket:
    """A listening TCP socket on a loopback address.

    Args:
        host: a loopback address (or ``localhost``).
        port: the TCP port, 0 for a free one.
        what: what listens, for messages (``"the control API"``).
        option: the option that sets the port, for messages (``"--control-port"``).

    Raises:
        ConfigError: the host is not loopback or the port cannot be bound.
    """
    try:
        address = ipaddress.ip_address("127.0.0.1" if host == "localhost" else host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ConfigError(f"{what} listens on loopback only, not {host!r}: use 127.0.0.1 or ::1")
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and
    # without it Nagle holds uvicorn's response body back ~40 ms behind its headers.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((str(address), port))
        sock.listen()
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {address}:{port} for {what} ({exc.strerror}); "
            f"choose another {option}, or 0 for any free one"
        ) from exc
    return sock


async def serve_asgi(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    what: str,
    option: str,
    log_level: str = "warning",
) -> RunningServer:
    """Serve ``app`` with uvicorn in the running event loop; returns once it is up.

    Args:
        app: the ASGI application.
        host: a loopback address.
        port: the TCP port, 0 for a free one.
        what: what is served, for messages and the task name.
        option: the option that sets the port, for messages.
        log_level: uvicorn's log level.

    Raises:
        ConfigError: the host is not loopback or the port cannot be bound.
        EcuworksError: uvicorn did not start.
    """
    sock = loopback_socket(host, port, what=what, option=option)
    bound: tuple[Any, ...] = sock.getsockname()
    config = uvicorn.Config(
        app,
        http="h11",
        ws="none",
        lifespan="off",
        log_level=log_level,
        log_config=None,  # the host program configures logging
        timeout_graceful_shutdown=_SHUTDOWN_GRACE_S,
    )
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"{what}:{bound[1]}")
    shown = f"[{bound[0]}]" if sock.family == socket.AF_INET6 else bound[0]
    running = RunningServer(server, task, sock, bound[1], f"http://{shown}:{bound[1]}/")
    up = asyncio.create_task(server.up.wait())
    try:
        await asyncio.wait(
            {task, up}, timeout=_STARTUP_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
    except asyncio.CancelledError:
        await _abandon(running)
        raise
    finally:
        up.cancel()
        await asyncio.wait({up})
    if not server.up.is_set():  # uvicorn failed, or did not start in time
        failure = await _abandon(running)
        raise EcuworksError(f"{what} on {running.url} did not start") from failure
    return running


async def _abandon(running: RunningServer) -> BaseException | None:
    """Stop a server that never came up; what it failed with, if anything."""
    running.task.cancel()
    try:
        await running.close()
    except EcuworksError as exc:
        return exc.__cause__ or exc
    return None
