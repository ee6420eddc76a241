"""A minimal, fast DoIP entity for the TransferData benchmark (ISO 13400-2 over TCP).

Run as ``python -m bench.server --blocks 4096,65536``: it listens on one loopback port per
block size (the port decides the maxNumberOfBlockLength it grants) and prints one line
``ready 4096=PORT 65536=PORT``. It serves one connection at a time with as little work per
message as a correct entity allows, so that the benchmark measures the clients. It exits
when its standard input closes or after ``--lifetime`` seconds.

It polls its socket (``recv`` with MSG_DONTWAIT in a loop) instead of sleeping in a
blocking ``recv``: on this project's virtual machines waking a sleeping process on the
other vCPU costs 100-250 us, measured with a plain socket ping-pong (4 KiB request, 24-byte
answer: 168-296 us per round trip with a blocking server, 51-61 us with a polling one).
That wake-up is the server's cost, not a client's, and would otherwise dominate every
client's figure. The poll keeps one core busy while a client is connected, which leaves
the client the other. ``--blocking`` serves with blocking sockets for comparison.

What it answers (gateway 0x0010, ECU 0x0012, any tester address):

- routing activation request (0x0005) -> response (0x0006), code 0x10 success;
- diagnostic message (0x8001) -> ONE send of the positive ack (0x8002, no echo) followed by
  the UDS response: ``34`` -> ``74 20 <max>`` (or ``74 40 <max, 4 bytes>`` above 0xFFFF),
  ``36 cc data`` -> ``76 cc``, ``37`` -> ``77 <CRC-32 of every byte received, BE>``,
  ``3E 00`` -> ``7E 00``; anything else -> ``7F sid 11``;
- anything else (alive check responses, ...) -> ignored.

It checks what each client sent: the block sequence counter (``7F 36 73``), the block length
against what it granted (``7F 36 13``), and at ``37`` that the byte count equals the memory
size announced in ``34`` (``7F 37 72`` otherwise). A client that finishes a download has
therefore sent every byte, in order; the CRC-32 in ``77`` lets it check the content.
"""

from __future__ import annotations

import argparse
import select
import socket
import struct
import sys
import time
import zlib

ECU_ADDRESS = 0x0012
GATEWAY_ADDRESS = 0x0010

HEADER = struct.Struct(">BBHI")  # version, inverse version, payload type, payload length
ADDRESSES = struct.Struct(">HH")
MAX_MESSAGE = (1 << 20) + 64  # larger DoIP messages get a header NACK "message too large"
BUFFER_SIZE = 8 * MAX_MESSAGE
IDLE_TIMEOUT_S = 30.0  # a connection that says nothing for this long is dropped

ROUTING_ACTIVATION_REQUEST = 0x0005
ROUTING_ACTIVATION_RESPONSE = 0x0006
DIAGNOSTIC_MESSAGE = 0x8001
DIAGNOSTIC_MESSAGE_ACK = 0x8002
DIAGNOSTIC_MESSAGE_NACK = 0x8003
GENERIC_NACK = 0x0000


def _frame(version: int, payload_type: int, payload: bytes) -> bytes:
    return HEADER.pack(version, version ^ 0xFF, payload_type, len(payload)) + payload


class _Connection:
    """One tester connection: DoIP framing plus the download state of ECU 0x12."""

    def __init__(self, sock: socket.socket, block_size: int, *, poll: bool = True) -> None:
        self.sock = sock
        self.poll = poll
        self.max_block_length = block_size + 2  # counts SID and block sequence counter
        self.version = 0x02
        self.tester = 0x0EF3
        self.expected = -1  # memory size announced by the last 0x34; -1 = no download
        self.received = 0
        self.crc = 0
        self.counter = 1
        self.replies_36: list[bytes] = []

    def reply(self, uds: bytes) -> bytes:
        """Diagnostic ack and UDS response from the ECU, as one byte string."""
        ack = _frame(
            self.version,
            DIAGNOSTIC_MESSAGE_ACK,
            ADDRESSES.pack(ECU_ADDRESS, self.tester) + b"\x00",
        )
        return ack + _frame(
            self.version, DIAGNOSTIC_MESSAGE, ADDRESSES.pack(ECU_ADDRESS, self.tester) + uds
        )

    def serve(self) -> None:
        """Read and answer messages until the tester closes the connection."""
        buf = bytearray(BUFFER_SIZE)
        view = memoryview(buf)
        start = end = 0
        while True:
            while end - start >= HEADER.size:
                version, inverse, payload_type, length = HEADER.unpack_from(buf, start)
                if inverse != version ^ 0xFF:
                    self.sock.sendall(_frame(0x02, GENERIC_NACK, b"\x00"))  # incorrect pattern
                    return
                total = HEADER.size + length
                if total > MAX_MESSAGE:
                    self.sock.sendall(_frame(version, GENERIC_NACK, b"\x02"))  # too large
                    return
                if end - start < total:
                    break
                self.handle(version, payload_type, view[start + HEADER.size : start + total])
                start += total
            if start == end:
                start = end = 0
            elif start > BUFFER_SIZE - MAX_MESSAGE:  # keep room for one whole message
                buf[: end - start] = view[start:end]
                start, end = 0, end - start
            n = self._receive(view[end:])
            if n == 0:
                return
            end += n

    def _receive(self, view: memoryview) -> int:
        """``recv_into``, polling when asked to (see the module docstring)."""
        if not self.poll:
            return self.sock.recv_into(view)
        idle_until = time.monotonic() + IDLE_TIMEOUT_S
        spins = 0
        while True:
            try:
                return self.sock.recv_into(view, 0, socket.MSG_DONTWAIT)
            except BlockingIOError:
                spins += 1
                if not spins % 65536 and time.monotonic() > idle_until:
                    raise TimeoutError("the tester said nothing for too long") from None

    def handle(self, version: int, payload_type: int, payload: memoryview) -> None:
        """Answer one DoIP message."""
        if payload_type == DIAGNOSTIC_MESSAGE and len(payload) > 4:
            source, target = ADDRESSES.unpack_from(payload)
            if target != ECU_ADDRESS:
                nack = ADDRESSES.pack(target, source) + b"\x03"  # unknown target address
                self.sock.sendall(_frame(version, DIAGNOSTIC_MESSAGE_NACK, nack))
            elif payload[4] == 0x36 and len(payload) > 5:
                self.sock.sendall(self.transfer_data(payload[5], payload[6:]))
            else:
                self.sock.sendall(self.reply(self.other_service(bytes(payload[4:]))))
        elif payload_type == ROUTING_ACTIVATION_REQUEST:
            self.version = version
            self.tester = ADDRESSES.unpack_from(payload)[0]
            answer = ADDRESSES.pack(self.tester, GATEWAY_ADDRESS) + b"\x10" + bytes(4)
            self.sock.sendall(_frame(version, ROUTING_ACTIVATION_RESPONSE, answer))

    def transfer_data(self, counter: int, data: memoryview) -> bytes:
        """The answer to ``36 counter data`` (ISO 14229-1 clause 14.5)."""
        if self.expected < 0:
            return self.reply(b"\x7f\x36\x24")  # requestSequenceError
        if counter != self.counter:
            return self.reply(b"\x7f\x36\x73")  # wrongBlockSequenceCounter
        if len(data) + 2 > self.max_block_length:
            return self.reply(b"\x7f\x36\x13")  # incorrectMessageLengthOrInvalidFormat
        self.received += len(data)
        self.crc = zlib.crc32(data, self.crc)
        self.counter = (counter + 1) & 0xFF
        return self.replies_36[counter]

    def other_service(self, uds: bytes) -> bytes:
        """The UDS response to anything but TransferData."""
        sid = uds[0]
        if sid == 0x34 and len(uds) >= 3:  # RequestDownload: 34 DFI ALFID address size
            address_len, size_len = uds[2] & 0x0F, uds[2] >> 4
            self.expected = int.from_bytes(uds[3 + address_len : 3 + address_len + size_len])
            self.received = self.crc = 0
            self.counter = 1
            self.replies_36 = [self.reply(bytes((0x76, c))) for c in range(256)]
            if self.max_block_length <= 0xFFFF:
                return b"\x74\x20" + self.max_block_length.to_bytes(2)
            return b"\x74\x40" + self.max_block_length.to_bytes(4)
        if sid == 0x37:  # RequestTransferExit
            complete = self.expected >= 0 and self.received == self.expected
            self.expected = -1
            if not complete:
                return b"\x7f\x37\x72"  # generalProgrammingFailure: bytes are missing
            return b"\x77" + self.crc.to_bytes(4)
        if uds == b"\x3e\x00":
            return b"\x7e\x00"
        return bytes((0x7F, sid, 0x11))  # serviceNotSupported


def serve(
    block_sizes: list[int], lifetime_s: float, host: str = "127.0.0.1", *, poll: bool = True
) -> None:
    """Listen on one port per block size and serve until stdin closes or time is up."""
    listeners: dict[socket.socket, int] = {}
    for block_size in block_sizes:
        listener = socket.create_server((host, 0))
        listeners[listener] = block_size
    ports = " ".join(f"{bs}={sock.getsockname()[1]}" for sock, bs in listeners.items())
    print(f"ready {ports}", flush=True)
    deadline = time.monotonic() + lifetime_s
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([*listeners, sys.stdin], [], [], min(remaining, 1.0))
        for ready in readable:
            if ready is sys.stdin:
                if not sys.stdin.buffer.read1(4096):
                    return  # the harness went away
                continue
            sock, _ = ready.accept()
            with sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                # Polling needs a blocking socket (MSG_DONTWAIT per call, sendall may block);
                # a socket with a timeout would wait in poll() before every recv.
                sock.settimeout(None if poll else IDLE_TIMEOUT_S)
                try:
                    _Connection(sock, listeners[ready], poll=poll).serve()
                except OSError as exc:  # a client that crashed or timed out
                    print(f"connection dropped: {exc}", file=sys.stderr, flush=True)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", default="4096,65536", help="block sizes, one port each")
    parser.add_argument("--lifetime", type=float, default=900.0, help="seconds before exiting")
    parser.add_argument(
        "--blocking", action="store_true", help="sleep in recv instead of polling the socket"
    )
    args = parser.parse_args()
    serve([int(b) for b in args.blocks.split(",")], args.lifetime, poll=not args.blocking)


if __name__ == "__main__":
    main()
