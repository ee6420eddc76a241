"""The command line, run as a real process against a DoIP entity on loopback."""

from __future__ import annotations

import asyncio
import sys

from tests.transport.doip_server import DoipTestServer

VIN = b"WBA8E9C50GK123456"


async def run_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ecuworks",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:  # a hung command must not outlive the caller (make faults runs hundreds)
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def vin_ecu(target: int, request: bytes) -> list[bytes]:
    if request == bytes.fromhex("22F190"):
        return [bytes.fromhex("62F190") + VIN]
    return [bytes([0x7F, request[0], 0x31])]


async def test_send_prints_the_ecu_answer() -> None:
    async with DoipTestServer(vin_ecu, targets={0x10}) as server:
        code, out, err = await run_cli(
            "send", "22F190", "--vci", f"doip://127.0.0.1:{server.port}", "--ecu", "0x10"
        )
    assert code == 0, err
    assert out.strip() == (bytes.fromhex("62F190") + VIN).hex(" ").upper()
    assert server.requests(0x10) == [bytes.fromhex("22F190")]


async def test_send_reports_a_negative_response_by_name() -> None:
    async with DoipTestServer(vin_ecu, targets={0x10}) as server:
        code, _, err = await run_cli(
            "send", "2EF19001", "--vci", f"doip://127.0.0.1:{server.port}", "--ecu", "16"
        )
    assert code == 1
    assert "NRC 0x31" in err
    assert "request out of range" in err


async def test_unreachable_vehicle_exits_5_and_says_what_to_check() -> None:
    async with DoipTestServer(vin_ecu) as server:
        port = server.port
    code, _, err = await run_cli(
        "send", "22F190", "--vci", f"doip://127.0.0.1:{port}", "--ecu", "1"
    )
    assert code == 5
    assert f"127.0.0.1:{port}" in err
    assert "simulator running" in err


async def test_usage_errors_exit_2_with_an_example() -> None:
    code, _, err = await run_cli("send", "22F1Z0", "--vci", "doip://127.0.0.1", "--ecu", "0x10")
    assert (code, "22F190" in err) == (2, True)
    code, _, err = await run_cli("send", "22F190", "--vci", "ftp://127.0.0.1", "--ecu", "0x10")
    assert code == 2
    assert "doip://" in err
    code, _, err = await run_cli("discover", "255.255.255.255")
    assert code == 2
    assert "unicast" in err
