"""The VCI's D-CAN bridge: CAN frames over TCP in the open socketcand protocol.

An E-series car's D-CAN is reached through the VCI, which bridges the bus to Ethernet. We
speak the server side of socketcand (github.com/linux-can/socketcand, ``doc/protocol.md``),
so python-can's stock ``socketcand`` interface is a client that works unchanged::

    bus = can.Bus(interface="socketcand", channel="can0", host="127.0.0.1", port=port)

The protocol is ASCII elements ``< ... >``. A session as the server sees it::

    server: < hi >
    client: < open can0 >                      server: < ok >
    client: < rawmode >                        server: < ok >
    client: < send 6F1 8 12 2 10 3 0 0 0 0 >   (a frame onto the bus; no answer)
    server: < frame 612 1700000000.000000 F1025003 >   (a frame from the bus)

Details this module keeps to, because the peers depend on them:

- ``< hi >`` and each ``< ok >`` go out as exactly those bytes, no newline: python-can
  compares the whole ``recv`` result with them during the handshake.
- A ``frame`` has its id as 3 hex digits (11-bit) or 8 (29-bit), the time in seconds with
  6 decimals, and the data as one run of 2-digit hex; python-can tells extended ids by
  the id's width, and so does socketcand's ``send``: an 8-digit id is extended.
- ``send`` data bytes may have 1 or 2 hex digits (python-can writes ``{x:x}``).
- Classic CAN only (0-8 data bytes): D-CAN is ISO 15765-4 classic CAN at 500 kbit/s.

Frames one client sends reach the ``on_frame`` callback and, as on a real bus, every other
client in raw mode. The codec part (``parse_command``, ``format_frame``,
``ElementSplitter``) is sans-I/O; :class:`SocketcandServer` only moves its bytes.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import logging
import math
import re
import string
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from ecuworks.errors import ConfigError, ParseError

__all__ = [
    "HI",
    "OK",
    "BcMode",
    "Command",
    "Echo",
    "ElementSplitter",
    "FrameHandler",
    "Open",
    "RawMode",
    "Send",
    "SocketcandServer",
    "format_error",
    "format_frame",
    "parse_command",
]

log = logging.getLogger(__name__)

HI: Final = b"< hi >"
OK: Final = b"< ok >"
ECHO: Final = b"< echo >"
MAX_ELEMENT: Final = 256  # the longest valid element, a 29-bit send of 8 bytes, is ~45
MAX_DATA: Final = 8  # classic CAN (ISO 11898-1)
MAX_STANDARD_ID: Final = 0x7FF
MAX_EXTENDED_ID: Final = 0x1FFFFFFF
_HEX: Final = frozenset(string.hexdigits)
_CHANNEL: Final = re.compile(r"[A-Za-z0-9_.:-]{1,32}")
_WHITESPACE: Final = b" \t\r\n"


# --- codec -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Open:
    """``< open CHANNEL >``: attach to a bus (socketcand then is in broadcast-manager mode)."""

    channel: str


@dataclass(frozen=True, slots=True)
class RawMode:
    """``< rawmode >``: receive every frame on the bus."""


@dataclass(frozen=True, slots=True)
class BcMode:
    """``< bcmode >``: back to broadcast-manager mode (no frames delivered here)."""


@dataclass(frozen=True, slots=True)
class Echo:
    """``< echo >``: answered with ``< echo >`` (a liveness probe)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """``< send ID LEN B0 .. >``: put one frame on the bus."""

    can_id: int
    data: bytes
    extended: bool = False


Command = Open | RawMode | BcMode | Echo | Send


def _hex(token: str, what: str) -> int:
    if not token or not _HEX.issuperset(token):
        raise ParseError(f"{what} must be hexadecimal, got {token!r}")
    return int(token, 16)


def _parse_send(args: list[str]) -> Send:
    if len(args) < 2:
        raise ParseError("send needs an id and a length: send ID LEN [BYTE ..]")
    id_token, len_token, *byte_tokens = args
    can_id = _hex(id_token, "the CAN id")
    if len(id_token) == 8:  # socketcand's rule: an 8-digit id is a 29-bit id
        extended = True
        if can_id > MAX_EXTENDED_ID:
            raise ParseError(f"29-bit CAN id {id_token} is above 1FFFFFFF")
    elif len(id_token) <= 3:
        extended = False
        if can_id > MAX_STANDARD_ID:
            raise ParseError(f"11-bit CAN id {id_token} is above 7FF")
    else:
        raise ParseError(f"CAN id {id_token!r} must have 1-3 hex digits (11-bit) or 8 (29-bit)")
    if len(len_token) > 2:
        raise ParseError(f"frame length {len_token!r} is not 0-8")
    length = _hex(len_token, "the frame length")
    if length > MAX_DATA:
        raise ParseError(f"frame length {length} is not 0-8 (classic CAN)")
    if len(byte_tokens) != length:
        raise ParseError(f"frame length says {length} bytes but {len(byte_tokens)} follow")
    if any(len(token) > 2 for token in byte_tokens):
        raise ParseError("each data byte must be 1 or 2 hex digits")
    data = bytes(_hex(token, "a data byte") for token in byte_tokens)
    return Send(can_id=can_id, data=data, extended=extended)


def parse_command(text: str) -> Command:
    """Decode one element a client sent.

    Args:
        text: one whole element, ``<`` to ``>``, as ``ElementSplitter`` yields it.

    Returns:
        The command.

    Raises:
        ParseError: not an element, an unknown or unsupported command, or bad arguments.
    """
    if not (text.startswith("<") and text.endswith(">")):
        raise ParseError("an element must be enclosed in angle brackets")
    tokens = text[1:-1].split()
    if not tokens:
        raise ParseError("empty element")
    command, args = tokens[0], tokens[1:]
    if command == "send":
        return _parse_send(args)
    if command == "open":
        if len(args) != 1 or not _CHANNEL.fullmatch(args[0]):
            raise ParseError("open needs one bus name, e.g. open can0")
        return Open(channel=args[0])
    simple: dict[str, Command] = {"rawmode": RawMode(), "bcmode": BcMode(), "echo": Echo()}
    if command in simple:
        if args:
            raise ParseError(f"{command} takes no arguments")
        return simple[command]
    raise ParseError(
        f"unsupported command {command[:32]!r}: this VCI speaks open, rawmode, bcmode, "
        "echo and send"
    )


def format_frame(can_id: int, data: bytes, timestamp: float, *, extended: bool = False) -> bytes:
    """Encode a frame from the bus for a raw-mode client.

    Args:
        can_id: the identifier, 11-bit unless ``extended``.
        data: 0 to 8 bytes.
        timestamp: when the frame was on the bus, seconds since the epoch.
        extended: a 29-bit identifier.

    Returns:
        ``< frame ID SECONDS.MICROS DATA >`` as socketcand sends it.

    Raises:
        ValueError: the id, data or timestamp do not fit.
    """
    limit = MAX_EXTENDED_ID if extended else MAX_STANDARD_ID
    if not 0 <= can_id <= limit:
        raise ValueError(f"CAN id 0x{can_id:X} does not fit in {29 if extended else 11} bits")
    if len(data) > MAX_DATA:
        raise ValueError(f"a classic CAN frame carries 0-8 bytes, not {len(data)}")
    if not math.isfinite(timestamp) or timestamp < 0:
        raise ValueError(f"timestamp must be a non-negative time, got {timestamp!r}")
    ident = f"{can_id:08X}" if extended else f"{can_id:03X}"
    return f"< frame {ident} {timestamp:.6f} {data.hex().upper()} >".encode("ascii")


def format_error(message: str) -> bytes:
    """Encode ``< error MESSAGE >``; characters that would break the element become ``?``."""
    clean = "".join(c if c.isprintable() and c not in "<>" else "?" for c in message)
    return f"< error {clean[:200]} >".encode("ascii", errors="replace")


class ElementSplitter:
    """Cuts a TCP byte stream into ``< ... >`` elements, whatever the chunking.

    Whitespace between elements is allowed. Anything else between elements, a nested
    ``<``, a non-printable or non-ASCII byte, or an element longer than ``max_element``
    raises ``ParseError``; the stream cannot be resynchronised after that, so close it.
    """

    def __init__(self, max_element: int = MAX_ELEMENT) -> None:
        self._buf = bytearray()
        self._max = max_element

    def feed(self, data: bytes) -> None:
        """Append bytes received."""
        self._buf += data

    def next_element(self) -> str | None:
        """The next complete element, or None until more bytes arrive.

        Raises:
            ParseError: the stream holds something that is no element.
        """
        buf = self._buf
        skip = len(buf) - len(buf.lstrip(_WHITESPACE))
        del buf[:skip]
        if not buf:
            return None
        if buf[0] != ord("<"):
            raise ParseError(f"expected the start of an element, got byte 0x{buf[0]:02X}")
        end = buf.find(b">")
        stop = end if end >= 0 else len(buf)
        if buf.find(b"<", 1, stop) >= 0:
            raise ParseError("an element opens inside another")
        if stop + 1 > self._max:
            raise ParseError(f"element longer than {self._max} bytes")
        if end < 0:
            return None
        raw = bytes(buf[: end + 1])
        if any(not 0x20 <= b < 0x7F for b in raw):
            raise ParseError("an element may hold printable ASCII only")
        del buf[: end + 1]
        return raw.decode("ascii")

    def elements(self) -> Iterator[str]:
        """Every complete element buffered so far (raises ``ParseError`` like above)."""
        while (element := self.next_element()) is not None:
            yield element


# --- server -------------------------------------------------------------------------------

FrameHandler = Callable[[int, bytes, bool], Awaitable[None] | None]
"""``on_frame(can_id, data, extended)``: a frame a client put on the bus; may be async."""


@dataclass(eq=False, slots=True)
class _Client:
    writer: asyncio.StreamWriter
    opened: bool = False
    raw: bool = False


def _require_loopback(host: str) -> str:
    try:
        address = ipaddress.ip_address("127.0.0.1" if host == "localhost" else host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ConfigError(f"the D-CAN bridge listens on loopback only, not {host!r}")
    return str(address)


class SocketcandServer:
    """The VCI's D-CAN bridge: a socketcand server for one bus, on loopback TCP.

    Args:
        on_frame: called with every frame a client sends, in order; if it returns an
            awaitable, that client's next element waits for it.
        channel: the bus name clients ``open`` (python-can's ``channel``).
        host: a loopback address.
        port: the TCP port, 0 for a free one (see ``port`` after ``start``).
        clock: the time stamped on frames sent to clients, seconds since the epoch.
        slow_client_s: how long a client may leave frames unread (its TCP buffers full)
            before it is disconnected, in real seconds.
    """

    def __init__(
        self,
        on_frame: FrameHandler,
        *,
        channel: str = "can0",
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        slow_client_s: float = 5.0,
    ) -> None:
        if not _CHANNEL.fullmatch(channel):
            raise ConfigError(f"bus name {channel!r} is not usable: letters, digits, _.:-")
        self.channel = channel
        self._on_frame = on_frame
        self._host = _require_loopback(host)
        self._port = port
        self._clock = clock
        self._slow_client_s = slow_client_s
        self._server: asyncio.Server | None = None
        self._clients: set[_Client] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The TCP port it listens on (after ``start``)."""
        if self._server is None:
            raise RuntimeError("the D-CAN bridge is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def raw_clients(self) -> int:
        """How many clients are in raw mode, i.e. receive frames."""
        return sum(1 for c in self._clients if c.raw)

    async def start(self) -> None:
        """Listen; ``port`` is known when this returns.

        Raises:
            ConfigError: the port cannot be bound.
            RuntimeError: it is already listening.
        """
        if self._server is not None:
            raise RuntimeError("the D-CAN bridge is already started")
        try:
            self._server = await asyncio.start_server(self._serve, self._host, self._port)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {self._host}:{self._port} for the D-CAN bridge "
                f"({exc.strerror}); choose another port, or 0 for any free one"
            ) from exc

    async def __aenter__(self) -> SocketcandServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def send_frame(self, can_id: int, data: bytes, *, extended: bool = False) -> None:
        """Put a frame from the vehicle's side on the bus: every raw-mode client gets it.

        Raises:
            ValueError: the id or data do not fit a classic CAN frame.
        """
        await self._broadcast(format_frame(can_id, data, self._clock(), extended=extended))

    async def close(self) -> None:
        """Stop listening, close every connection, wait for their handlers; idempotent."""
        if self._server is not None:
            self._server.close()
        for client in list(self._clients):
            client.writer.close()
        if self._tasks:
            # Each handler bounds its own close; one stuck in on_frame is cancelled.
            _, pending = await asyncio.wait(set(self._tasks), timeout=self._slow_client_s + 1)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _broadcast(self, line: bytes, *, besides: _Client | None = None) -> None:
        targets = [c for c in self._clients if c.raw and c is not besides]
        for client in targets:
            client.writer.write(line)
        await asyncio.gather(*(self._drain(c) for c in targets))

    async def _drain(self, client: _Client) -> None:
        """Wait until a client takes its frames; one that stopped reading is dropped."""
        try:
            await asyncio.wait_for(client.writer.drain(), self._slow_client_s)
        except TimeoutError:
            # A stuck tester must not stall the bus for the vehicle and everyone else.
            log.warning("D-CAN bridge: dropping a client that stopped reading its frames")
            client.raw = False
            client.writer.transport.abort()
        except ConnectionError:
            pass  # it went away; its handler cleans up

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        client = _Client(writer)
        self._clients.add(client)
        splitter = ElementSplitter()
        try:
            writer.write(HI)
            await writer.drain()
            while chunk := await reader.read(4096):
                splitter.feed(chunk)
                try:
                    for element in splitter.elements():
                        await self._handle(client, element)
                except ParseError as exc:  # garbage: say why, then hang up
                    writer.write(format_error(str(exc)))
                    await writer.drain()
                    break
        except ConnectionError:
            pass
        except Exception:
            log.exception("D-CAN bridge: closing a client after a failure")
        finally:
            self._clients.discard(client)
            writer.close()
            try:  # a client that reads nothing would hold a graceful close open forever
                await asyncio.wait_for(writer.wait_closed(), self._slow_client_s)
            except TimeoutError:
                writer.transport.abort()
            except ConnectionError:
                pass

    async def _handle(self, client: _Client, element: str) -> None:
        try:
            command = parse_command(element)
        except ParseError as exc:  # a well-formed element with bad content: answer, go on
            reply = format_error(str(exc))
        else:
            if isinstance(command, Send) and client.opened:
                await self._deliver(client, command)
                return
            reply = self._reply(client, command)
        client.writer.write(reply)
        await client.writer.drain()

    def _reply(self, client: _Client, command: Command) -> bytes:
        """Apply a command other than an accepted ``send``; the answer to it."""
        match command:
            case Echo():
                reply = ECHO
            case Open(channel=channel) if client.opened:
                reply = format_error(f"bus {self.channel} is already open")
            case Open(channel=channel) if channel != self.channel:
                reply = format_error(f"could not open bus {channel}: this VCI has {self.channel}")
            case Open():
                client.opened = True
                reply = OK
            case _ if not client.opened:
                reply = format_error(f"open a bus first: open {self.channel}")
            case RawMode() | BcMode():
                client.raw = isinstance(command, RawMode)
                reply = OK
            case _:  # pragma: no cover - an opened client's send never comes here
                raise AssertionError(f"unhandled command {command!r}")
        return reply

    async def _deliver(self, client: _Client, frame: Send) -> None:
        """A client's frame goes on the bus: to the vehicle and to every other raw client."""
        line = format_frame(frame.can_id, frame.data, self._clock(), extended=frame.extended)
        await self._broadcast(line, besides=client)
        result = self._on_frame(frame.can_id, frame.data, frame.extended)
        if inspect.isawaitable(result):
            await result
