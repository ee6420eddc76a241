"""The simulated g-series car, driven by a client no one here wrote (issue 3).

``independent_client.py`` beside this file imports no ecuworks code: stock doipclient and
udsoncan identify the car, read VIN and SVK from three ECUs and flash one SWFL unit on the
DME, with the security key computed from ``/state``. Here the simulator runs as its own
process (``python -m ecuworks sim``, as a user starts it) and the script as another; one
run is also captured on ``lo`` and decoded by tshark's DoIP and UDS dissectors, which must
find every message type of the session and nothing malformed.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.interop.capture import MALFORMED_OR_ERROR, dumpcap, tshark, until_live

pytestmark = pytest.mark.interop

SCRIPT = Path(__file__).with_name("independent_client.py")
ALLOWED_THIRD_PARTY = {"doipclient", "udsoncan", "httpx"}

# UDP DoIP frames the capture test sends itself (ISO 13400-2), valid and answered.
ENTITY_STATUS_REQUEST = bytes.fromhex("02FD400100000000")  # probe: is the capture live?
POWER_MODE_REQUEST = bytes.fromhex("02FD400300000000")  # end mark, after the session
POWER_MODE_RESPONSE_HEADER = bytes.fromhex("02FD400400000001")

# What the session must show: UDP identification, routing activation, diagnostic
# messages and their acknowledgements; UDS services of the flash sequence.
EXPECTED_DOIP_TYPES = {0x0001, 0x0004, 0x0005, 0x0006, 0x8001, 0x8002}
EXPECTED_UDS_REQUESTS = {0x10, 0x11, 0x22, 0x27, 0x31, 0x34, 0x36, 0x37, 0x3E}
EXPECTED_STEPS = [
    "vehicle identification",
    "GET /state",
    "routing activation",
    "read F190 VIN",
    "read F101 SVK",
    "read 2502 programming counter",
    "10 03 extended session",
    "10 02 programming session",
    "27 11 request seed",
    "27 12 send key",
    "31 01 FF00 erase",
    "34 RequestDownload",
    "36 TransferData",
    "37 RequestTransferExit",
    "31 01 0202 check memory",
    "31 01 FF01 check dependencies",
    "11 01 hard reset",
    "3E 00 tester present (after reset)",
    "read F101 SVK after reset",
    "read 2502 programming counter after",
    "GET /state after",
]


@dataclass(frozen=True)
class Sim:
    doip_port: int
    control_port: int
    vin: str


@pytest.fixture
async def simulator(tmp_path: Path) -> AsyncIterator[Sim]:
    """``python -m ecuworks sim --vehicle g-series`` on free loopback ports."""
    stderr = (tmp_path / "sim.stderr").open("wb")
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "ecuworks", "sim", "--vehicle", "g-series"),
        *("--doip-port", "0", "--control-port", "0", "--time-scale", "1000"),
        *("--state", str(tmp_path / "state.json")),
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
    )
    assert process.stdout is not None
    drain: asyncio.Task[bytes] | None = None
    try:
        ready = ""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                while line := (await process.stdout.readline()).decode():
                    if line.startswith("ready "):
                        ready = line
                        break
        if not ready:
            stderr.flush()
            pytest.fail(
                "the simulator did not say 'ready' within 30 s:\n"
                + (tmp_path / "sim.stderr").read_text(errors="replace")
            )
        drain = asyncio.ensure_future(process.stdout.read())  # whatever it prints later
        fields = dict(word.split("=", 1) for word in ready.split()[1:])
        yield Sim(int(fields["doip"]), int(fields["control"]), fields["vin"])
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
        if drain is not None:
            await drain
        stderr.close()


async def run_client(sim: Sim, *args: str, exit_code: int = 0) -> tuple[dict[str, Any], str]:
    """Run the independent client against ``sim``: its JSON summary and its stderr."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, str(SCRIPT)),
        *("--doip-port", str(sim.doip_port), "--control-port", str(sim.control_port)),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    summary = json.loads(out) if out.strip() else {}
    failed = [step for step in summary.get("steps", []) if not step["ok"]]
    assert process.returncode == exit_code, (
        f"independent client exited {process.returncode}: {err.decode()}\nfailed steps: {failed}"
    )
    return summary, err.decode()


def check_summary(summary: dict[str, Any], sim: Sim) -> None:
    assert summary["ok"] is True
    assert summary["error"] is None
    assert all(step["ok"] for step in summary["steps"])
    names = [step["step"] for step in summary["steps"]]
    assert [name for name in EXPECTED_STEPS if name not in names] == []
    assert summary["vin"] == sim.vin
    assert sorted(summary["svk"]) == ["0x10", "0x12", "0x40"]
    assert all(summary["svk"].values())
    counter = summary["programming_counter"]
    assert counter["after"] == counter["before"] + 1 == counter["state_after"]
    flash = summary["flash"]
    assert flash["ecu"] == "0x12"
    assert flash["unit_written"] != flash["unit_before"]
    transfer = next(step for step in summary["steps"] if step["step"] == "36 TransferData")
    assert transfer["bytes"] == flash["region"]["size"] == flash["image_bytes"]
    pending = {step["step"]: step.get("pending", 0) for step in summary["steps"]}
    assert pending["31 01 FF00 erase"] >= 1  # the erase answered 7F 31 78 first


async def test_independent_client_flashes_the_g_series(simulator: Sim) -> None:
    summary, _ = await run_client(simulator)
    check_summary(summary, simulator)

    # A failure says so: exit 1, the failed step in the summary, a message on stderr.
    summary, err = await run_client(simulator, "--ecu", "0x99", exit_code=1)
    assert summary["ok"] is False
    assert "no ECU at address 0x99" in summary["error"]
    assert "FAILED" in err


def _udp_probe(sock: socket.socket, port: int, frame: bytes) -> bytes:
    sock.sendto(frame, ("127.0.0.1", port))
    return frame


async def test_tshark_decodes_the_independent_session(simulator: Sim, tmp_path: Path) -> None:
    port = simulator.doip_port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))  # keeps the probes' answers from meeting a closed port
        async with dumpcap(f"port {port}") as capture:  # TCP and UDP
            await until_live(capture, lambda: _udp_probe(udp, port, ENTITY_STATUS_REQUEST))
            summary, _ = await run_client(simulator)
            # Loopback frames are captured in order: once the end mark's answer is in,
            # the whole session before it is too.
            _udp_probe(udp, port, POWER_MODE_REQUEST)
            await capture.wait_for(POWER_MODE_RESPONSE_HEADER)
        pcap = await capture.stop()
    check_summary(summary, simulator)

    path = tmp_path / "independent.pcapng"
    path.write_bytes(pcap)
    decode = ("-r", str(path), "-d", f"tcp.port=={port},doip", "-d", f"udp.port=={port},doip")
    malformed = await tshark(*decode, "-Y", MALFORMED_OR_ERROR)
    assert malformed == [], "tshark flags packets as malformed or erroneous:\n" + "\n".join(
        (await tshark(*decode, "-V", "-Y", MALFORMED_OR_ERROR))[:200]
    )

    frames = await tshark(*decode, "-T", "fields", "-e", "frame.number")
    rows = await tshark(
        *decode, "-Y", "doip", "-T", "fields", "-E", "occurrence=a",
        "-e", "doip.type", "-e", "uds.sid",
    )  # fmt: skip
    types: list[int] = []
    sids: list[int] = []
    diagnostic_messages = 0
    for row in rows:
        type_field, _, sid_field = row.partition("\t")
        row_types = [int(value, 16) for value in type_field.split(",") if value]
        row_sids = [int(value, 16) for value in sid_field.split(",") if value]
        types += row_types
        sids += row_sids
        diagnostic_messages += row_types.count(0x8001)
    print(
        f"tshark: {len(frames)} packets, {len(types)} DoIP messages "
        f"({diagnostic_messages} diagnostic, {len(sids)} UDS decoded), 0 malformed"
    )
    assert set(types) >= EXPECTED_DOIP_TYPES, f"missing: {EXPECTED_DOIP_TYPES - set(types)}"
    assert set(sids) >= EXPECTED_UDS_REQUESTS, f"missing: {EXPECTED_UDS_REQUESTS - set(sids)}"
    # Every diagnostic message carries UDS that the UDS dissector decoded.
    assert len(sids) == diagnostic_messages


def test_the_independent_client_imports_no_ecuworks_code() -> None:
    tree = ast.parse(SCRIPT.read_text(), filename=str(SCRIPT))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in the independent client"
            assert node.module is not None
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
            called = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            assert called not in {"__import__", "import_module"}, "dynamic import"
    assert "ecuworks" not in imported
    assert imported - sys.stdlib_module_names <= ALLOWED_THIRD_PARTY, imported
