"""TransferData benchmark: ecuworks against stock doipclient + udsoncan and a raw-socket floor.

``python -m bench.transfer`` (``make bench``) starts one test server (:mod:`bench.server`) in
its own process, then downloads an image with 4 KiB and with 64 KiB blocks with each client,
each client in a fresh process so that its peak RSS is its own. Every download is a whole
UDS sequence (34, 36 x n, 37) on a routing-activated DoIP connection; the server checks the
counters and the byte count, and answers 37 with the CRC-32 of what it received.

A first small download sizes the timed ones to about ``TARGET_S`` seconds each, so slow and
fast clients both get a steady state and the run stays bounded. The clients take turns for
``ROUNDS`` rounds and the fastest round of each counts. The figures (MiB/s, requests/s, µs
per request, client overhead per request over the raw floor, client CPU per request, peak
RSS) go to the terminal and to ``bench/out/transfer.json``. Speed never fails the run; exit
1 means a client crashed or sent wrong data. bench/README.md says how to read them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import resource
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import common
from bench.common import figure, print_goals

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "bench" / "out" / "transfer.json"

KIB, MIB = 1024, 1024 * 1024
BLOCK_SIZES = (4 * KIB, 64 * KIB)
CLIENTS = ("raw", "doipclient", "ecuworks")
TESTER, ECU = 0x0EF3, 0x0012
ADDRESS = 0x8000_0000
TARGET_S = 0.7  # seconds of steady state per timed download
ROUNDS = 3  # timed downloads per client, each in a fresh process, taking turns; fastest counts
PROBE = {4 * KIB: 1 * MIB, 64 * KIB: 8 * MIB}  # sizing download per block size
CAP = {4 * KIB: 256 * MIB, 64 * KIB: 1024 * MIB}  # upper bound of a measured download
RSS_IMAGE = 256 * MIB
QUICK_IMAGE, QUICK_RSS_IMAGE = 512 * KIB, 2 * MIB
CHILD_TIMEOUT_S = 240.0

# The image is a fixed pseudo-random 1 MiB pattern repeated; DOUBLE lets any slice up to
# 1 MiB be cut at any offset without a copy across the wrap.
PATTERN = random.Random(0x5EED).randbytes(MIB)
DOUBLE = PATTERN + PATTERN


def chunks(size: int, length: int) -> Iterator[bytes]:
    """The image of ``size`` bytes in pieces of ``length`` (the last may be shorter)."""
    for offset in range(0, size, length):
        start = offset % MIB
        yield DOUBLE[start : start + min(length, size - offset)]


def views(size: int, length: int) -> Iterator[memoryview]:
    """Like :func:`chunks`, without copying."""
    double = memoryview(DOUBLE)
    for offset in range(0, size, length):
        start = offset % MIB
        yield double[start : start + min(length, size - offset)]


def image_crc(size: int) -> int:
    """CRC-32 of the image of ``size`` bytes."""
    crc = 0
    for piece in views(size, MIB):
        crc = zlib.crc32(piece, crc)
    return crc


@dataclass(frozen=True, slots=True, kw_only=True)
class Download:
    """One timed download: 34, every 36, 37."""

    size: int
    bytes: int
    blocks: int
    seconds: float
    cpu_seconds: float  # this process's user + system time
    crc32: int


class _Stopwatch:
    """Wall time and this process's CPU time since it was made."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def times(self) -> dict[str, float]:
        """``seconds`` and ``cpu_seconds`` so far."""
        return {
            "seconds": time.perf_counter() - self.wall,
            "cpu_seconds": time.process_time() - self.cpu,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What a client process downloads: a sizing probe (0 = none), then the timed one."""

    probe: int
    size: int  # used when there is no probe; otherwise the upper bound
    target_s: float = TARGET_S

    def measured_size(self, probe: Download) -> int:
        """Whole MiB for about ``target_s`` seconds at the probe's rate, within bounds."""
        rate = probe.bytes / max(probe.seconds, 1e-6)
        return min(self.size, max(MIB, MIB * round(rate * self.target_s / MIB)))

    def run(self, download: Callable[[int], Download]) -> Download:
        """Probe if asked, then the timed download."""
        size = self.measured_size(download(self.probe)) if self.probe else self.size
        return download(size)

    async def run_async(self, download: Callable[[int], Awaitable[Download]]) -> Download:
        """:meth:`run` for an async client."""
        size = self.measured_size(await download(self.probe)) if self.probe else self.size
        return await download(size)


# -- the three clients ------------------------------------------------------------------

_HEADER = struct.Struct(">BBHI")
_DIAG = struct.Struct(">BBHIHH")  # header + source + target
_BLOCK = struct.Struct(">BBHIHHBB")  # header + source + target + 36 + counter


class _RawDoip:
    """The floor: a blocking socket, pre-packed headers, one sendmsg per block."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray(64 * KIB)
        self.view = memoryview(self.buf)
        activation = _HEADER.pack(2, 0xFD, 0x0005, 7) + struct.pack(">HB4x", TESTER, 0)
        self.sock.sendall(activation)
        answer = self.receive(0x0006)
        if answer[4] != 0x10:
            raise ConnectionError(f"routing activation refused: {answer.hex()}")

    def receive(self, wanted: int = 0x8001) -> bytes:
        """Payload of the next message of type ``wanted``, skipping diagnostic acks."""
        got = pos = 0
        while True:
            while got - pos >= 8:
                _, _, payload_type, length = _HEADER.unpack_from(self.buf, pos)
                if got - pos < 8 + length:
                    break
                if payload_type == wanted:
                    return bytes(self.view[pos + 8 : pos + 8 + length])
                if payload_type != 0x8002:
                    raise ConnectionError(f"unexpected DoIP payload type 0x{payload_type:04X}")
                pos += 8 + length
            n = self.sock.recv_into(self.view[got:])
            if n == 0:
                raise ConnectionError("the server closed the connection")
            got += n

    def request(self, uds: bytes) -> bytes:
        """Send one UDS request and return the UDS response."""
        self.sock.sendall(_DIAG.pack(2, 0xFD, 0x8001, 4 + len(uds), TESTER, ECU) + uds)
        return self.receive()[4:]

    def download(self, size: int) -> Download:
        """One download with the block length the server grants."""
        watch = _Stopwatch()
        answer = self.request(b"\x34\x00\x44" + struct.pack(">II", ADDRESS, size))
        if answer[0] != 0x74:
            raise ConnectionError(f"RequestDownload refused: {answer.hex()}")
        block_length = int.from_bytes(answer[2 : 2 + (answer[1] >> 4)]) - 2
        blocks = 0
        for blocks, block in enumerate(views(size, block_length), 1):
            counter = blocks & 0xFF
            head = _BLOCK.pack(2, 0xFD, 0x8001, 6 + len(block), TESTER, ECU, 0x36, counter)
            if self.sock.sendmsg([head, block]) < len(head) + len(block):
                raise ConnectionError("short send")  # not seen on loopback; keeps the floor simple
            answer = self.receive()[4:]
            if answer[0] != 0x76 or answer[1] != counter:
                raise ConnectionError(f"TransferData refused: {answer.hex()}")
        answer = self.request(b"\x37")
        if answer[0] != 0x77:
            raise ConnectionError(f"RequestTransferExit refused: {answer.hex()}")
        times = watch.times()
        crc = int.from_bytes(answer[1:5])
        return Download(size=size, bytes=size, blocks=blocks, crc32=crc, **times)


def run_raw(port: int, plan: Plan) -> Download:
    """The raw-socket floor."""
    raw = _RawDoip(port)
    with raw.sock:
        return plan.run(raw.download)


def run_doipclient(port: int, plan: Plan) -> Download:
    """Stock doipclient + udsoncan, used as their documentation shows."""
    from doipclient import DoIPClient
    from doipclient.connectors import DoIPClientUDSConnector
    from udsoncan import MemoryLocation
    from udsoncan.client import Client

    doip = DoIPClient("127.0.0.1", ECU, tcp_port=port, client_logical_address=TESTER)
    with Client(DoIPClientUDSConnector(doip, close_connection=True)) as client:

        def download(size: int) -> Download:
            watch = _Stopwatch()
            location = MemoryLocation(ADDRESS, size, address_format=32, memorysize_format=32)
            granted = client.request_download(location).service_data.max_length
            blocks = 0
            for blocks, block in enumerate(chunks(size, granted - 2), 1):
                client.transfer_data(blocks & 0xFF, block)
            records = client.request_transfer_exit().service_data.parameter_records
            times = watch.times()
            crc = int.from_bytes(records)
            return Download(size=size, bytes=size, blocks=blocks, crc32=crc, **times)

        return plan.run(download)


def run_ecuworks(port: int, plan: Plan) -> Download:
    """ecuworks: DoipLink + UdsClient.download from a generator of 1 MiB pieces."""
    from ecuworks.transport.doip import DoipLink
    from ecuworks.uds.client import UdsClient

    async def session() -> Download:
        async with DoipLink("127.0.0.1", port, tester_address=TESTER) as link:
            client = UdsClient(link, ECU)

            async def download(size: int) -> Download:
                watch = _Stopwatch()
                result = await client.download(ADDRESS, size, chunks(size, MIB))
                times = watch.times()
                return Download(
                    size=size,
                    bytes=result.bytes_sent,
                    blocks=result.blocks,
                    crc32=result.crc32,
                    **times,
                )

            return await plan.run_async(download)

    return asyncio.run(session())


RUNNERS: dict[str, Callable[[int, Plan], Download]] = {
    "raw": run_raw,
    "doipclient": run_doipclient,
    "ecuworks": run_ecuworks,
}


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Body of one client process: run, check, and report with this process's peak RSS."""
    result = RUNNERS[spec["client"]](spec["port"], Plan(**spec["plan"]))
    return {
        **asdict(result),
        "crc_ok": result.crc32 == image_crc(result.size),
        "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


# -- orchestration -------------------------------------------------------------------------


@contextlib.contextmanager
def running_server(block_sizes: tuple[int, ...]) -> Iterator[dict[int, int]]:
    """Start :mod:`bench.server` in its own process; yield {block size: port}."""
    blocks = ",".join(map(str, block_sizes))
    cmd = [sys.executable, "-m", "bench.server", "--blocks", blocks]
    with subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            words = proc.stdout.readline().decode().split()
            if not words or words[0] != "ready":
                raise RuntimeError("the test server did not start")
            yield {int(k): int(v) for k, v in (w.split("=") for w in words[1:])}
        finally:
            proc.stdin.close()  # the server exits when its stdin closes
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def measure(client: str, port: int, plan: Plan, block_size: int) -> dict[str, Any]:
    """Run one client in a fresh process; its report, or ``{"error": ...}``."""
    spec = {"client": client, "port": port, "plan": asdict(plan)}
    cmd = [sys.executable, "-m", "bench.transfer", "--child", json.dumps(spec)]
    row: dict[str, Any] = {"client": client, "block_size": block_size, "size": plan.size}
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return row | {"error": f"no result within {CHILD_TIMEOUT_S:g} s"}
    if done.returncode != 0:
        return row | {"error": (done.stderr.strip().splitlines() or ["crashed"])[-1]}
    row |= json.loads(done.stdout.strip().splitlines()[-1])
    if not row["crc_ok"] or row["bytes"] != row["size"]:
        row["error"] = "the data that arrived differs from the image"
    elif row["blocks"] != -(-row["size"] // block_size):
        row["error"] = f"{row['blocks']} blocks: not the block length the server granted"
    return row


def best_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One client's rounds as one run: the fastest, with the largest peak RSS."""
    failed = [r for r in rows if "error" in r]
    if failed:
        return failed[0]
    best = dict(min(rows, key=lambda r: r["seconds"] / r["bytes"]))
    best["rounds_s"] = [round(r["seconds"], 4) for r in rows]
    best["rss_kib"] = max(r["rss_kib"] for r in rows)
    return best


def run_all(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every client at every block size, then the RSS download; (runs, RSS run).

    The clients take turns, ``ROUNDS`` times, so that a spell of load from other processes
    slows all of them rather than one; the fastest round counts. The first round sizes the
    image for the later ones.
    """
    runs = []
    with running_server(BLOCK_SIZES) as ports:
        for block_size in BLOCK_SIZES:
            rows: dict[str, list[dict[str, Any]]] = {client: [] for client in CLIENTS}
            for round_ in range(1 if quick else ROUNDS):
                for client in CLIENTS:
                    if quick:
                        plan = Plan(probe=0, size=QUICK_IMAGE)
                    elif round_ == 0:
                        plan = Plan(probe=PROBE[block_size], size=CAP[block_size])
                    elif "error" in rows[client][0]:
                        continue
                    else:
                        plan = Plan(probe=0, size=rows[client][0]["size"])
                    rows[client].append(measure(client, ports[block_size], plan, block_size))
            runs += [best_of(rows[client]) for client in CLIENTS]
        rss_plan = Plan(probe=0, size=QUICK_RSS_IMAGE if quick else RSS_IMAGE)
        rss_run = measure("ecuworks", ports[64 * KIB], rss_plan, 64 * KIB)
    return runs, rss_run


# -- figures ---------------------------------------------------------------------------------


def _label(size: int) -> str:
    return f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"


METRICS = (  # key, figure name, unit, table column, table format
    ("mib_s", "throughput", "MiB/s", "MiB/s", "{:,.1f}"),
    ("req_s", "requests", "req/s", "req/s", "{:,.0f}"),
    ("us_per_req", "time per request", "µs", "µs/req", "{:,.1f}"),
    ("overhead_us", "client overhead per request", "µs", "overhead µs/req", "{:,.1f}"),
    ("cpu_us_per_req", "client CPU per request", "µs", "client CPU µs/req", "{:,.1f}"),
    ("rss_mb", "peak RSS", "MB", "peak RSS MB", "{:,.1f}"),
)


def add_metrics(runs: list[dict[str, Any]]) -> None:
    """Derive each successful run's figures, overhead against the raw run of its block size."""
    floors = {r["block_size"]: r for r in runs if r["client"] == "raw" and "error" not in r}
    for r in runs:
        if "error" in r:
            continue
        r["mib_s"] = r["bytes"] / r["seconds"] / MIB
        r["req_s"] = r["blocks"] / r["seconds"]
        r["us_per_req"] = r["seconds"] / r["blocks"] * 1e6
        r["cpu_us_per_req"] = r["cpu_seconds"] / r["blocks"] * 1e6
        r["rss_mb"] = r["rss_kib"] * KIB / 1e6
    for r in runs:
        floor = floors.get(r["block_size"])
        if "error" not in r and floor is not None:
            r["overhead_us"] = r["us_per_req"] - floor["us_per_req"]


def figures(runs: list[dict[str, Any]], rss_run: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-client figures, then the four goals of the issue."""
    ok = {(r["client"], r["block_size"]): r for r in runs if "error" not in r}
    out = [
        figure(f"{client} {_label(block_size)} {name}", r.get(key), unit)
        for (client, block_size), r in ok.items()
        for key, name, unit, _, _ in METRICS
    ]

    def rate(client: str, block_size: int) -> float | None:
        r = ok.get((client, block_size))
        return r["mib_s"] if r else None

    ours, stock, floor = (rate(c, 4 * KIB) for c in ("ecuworks", "doipclient", "raw"))
    return [
        *out,
        figure("ecuworks/doipclient at 4 KiB", ours and stock and ours / stock, "x", ">= 10"),
        figure("ecuworks/raw at 4 KiB", ours and floor and 100 * ours / floor, "%", ">= 25"),
        figure("ecuworks MiB/s at 64 KiB", rate("ecuworks", 64 * KIB), "MiB/s", ">= 120"),
        figure(
            f"peak RSS {_label(rss_run['size'])} download", rss_run.get("rss_mb"), "MB", "< 150"
        ),
    ]


def machine() -> dict[str, Any]:
    """What the figures were measured on, with the peer's versions."""
    return {
        **common.machine(),
        "doipclient": metadata.version("doipclient"),
        "udsoncan": metadata.version("udsoncan"),
    }


def report(runs: list[dict[str, Any]], figs: list[dict[str, Any]], info: dict[str, Any]) -> None:
    """Print the machine, one row per run, and the goals."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = 132  # keep the table whole in logs and pipes
    console.print(
        f"TransferData over DoIP on loopback - {info['cpu']}, {info['cores']} cores, "
        f"Python {info['python']}, doipclient {info['doipclient']}, udsoncan {info['udsoncan']}"
    )
    runs_table = Table(
        "block", "client", "image", *(column for _, _, _, column, _ in METRICS), "check"
    )
    for r in runs:
        if "error" in r:
            values = [""] * (len(METRICS) + 1)
            check = f"[red]{r['error']}"
        else:
            values = [_label(r["bytes"])]
            values += [f.format(r[k]) if k in r else "-" for k, _, _, _, f in METRICS]
            check = "ok"
        client = f"{r['client']} (RSS run)" if r is runs[-1] else r["client"]
        runs_table.add_row(_label(r["block_size"]), client, *values, check)
    console.print(runs_table)
    print_goals(console, info, figs)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; 0 unless a client crashed or sent wrong data."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small images (smoke test)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write figures")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one client process
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0

    info = machine()  # before the run, so that the load average is other processes' load
    runs, rss_run = run_all(args.quick)
    add_metrics([*runs, rss_run])
    figs = figures(runs, rss_run)
    report([*runs, rss_run], figs, info)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": "transfer", "machine": info, "runs": [*runs, rss_run], "figures": figs}
    args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(f"figures written to {args.json}")
    return 1 if any("error" in r for r in [*runs, rss_run]) else 0


if __name__ == "__main__":
    sys.exit(main())
