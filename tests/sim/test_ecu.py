"""The ECU's UDS server as a state machine: literal requests in, literal answers out.

No sockets and no clock: a :class:`Bench` holds the simulated time, sends a request at
``now`` and moves ``now`` to the last reply, as a tester waiting for the final answer would.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib
from collections.abc import Callable

import pytest

from ecuworks.profiles import BusProfile, EcuProfile, RegionProfile, VehicleProfile
from ecuworks.sim.ecu import EcuServer, Reply
from ecuworks.sim.state import VehicleState
from ecuworks.wire.ilevel import ILevelTriple
from ecuworks.wire.sgbm import SgbmId, parse_svk
from ecuworks.wire.uds import encode_memory_location
from ecuworks.wire.unit_image import build_image
from ecuworks.wire.vo import VehicleOrder

SECRET = bytes.fromhex("00112233445566778899aabbccddeeff")
GATEWAY, DME = 0x10, 0x12
BTLD_AT, BTLD_SIZE = 0x0000_0000, 0x2000
SWFL_AT, SWFL_SIZE = 0x0001_0000, 0x4000
BTLD_UNIT = "BTLD-00001261-001.000.000"
SWFL_UNIT = "SWFL-00001281-001.000.000"
NEW_SWFL = SgbmId.parse("SWFL-00001281-002.000.000")
NEW_BTLD = SgbmId.parse("BTLD-00001261-001.001.000")
# 16 KiB at 300 ms/KiB: 4.8 s, so the answer is 78 at 0, 2 and 4 s, then 71 at 4.8 s.
ERASE_MS_PER_KIB = 300.0
WRITE_KIB_S = 64.0
BOOT_S = 0.5
MAX_BLOCK = 0x402  # 1024 data bytes after SID and counter


def ecu_profile(address: int, name: str, **overrides: object) -> EcuProfile:
    fields: dict[str, object] = {
        "address": address,
        "name": name,
        "variant": f"{name}_TEST",
        "bus": "enet",
        "hardware": f"HWEL-0000{address:02X}10-001.000.000",
        "regions": (
            RegionProfile(
                process_class="BTLD",
                address=BTLD_AT,
                size=BTLD_SIZE,
                unit=f"BTLD-0000{address:02X}61-001.000.000",
            ),
            RegionProfile(
                process_class="SWFL",
                address=SWFL_AT,
                size=SWFL_SIZE,
                unit=f"SWFL-0000{address:02X}81-001.000.000",
            ),
        ),
        "cafd": (f"CAFD-0000{address:02X}51-001.000.000",),
        "max_block_length": MAX_BLOCK,
        "erase_ms_per_kib": ERASE_MS_PER_KIB,
        "write_kib_s": WRITE_KIB_S,
        "boot_ms": BOOT_S * 1000,
        "security_secret": SECRET,
        "programming_counter": 3,
        "programming_counter_max": 10,
        "coding": {0x3000: bytes.fromhex("0102"), 0x3001: bytes.fromhex("aabbccdd")},
        "individual_data": {0x4000: bytes.fromhex("00000a0b")},
        "dtcs": (0x123456, 0xABCDEF),
    }
    fields.update(overrides)
    return EcuProfile(**fields)  # type: ignore[arg-type]


def vehicle_profile() -> VehicleProfile:
    return VehicleProfile(
        name="test-car",
        series="F030",
        vin="WBA8E9C50GK123456",
        vo="8E9C#0715*A96%LCSW&$1CA$609",
        ilevel_current="F030-24-03-550",
        ilevel_last="F030-23-11-530",
        ilevel_shipment="F030-15-07-520",
        transports=("doip",),
        gateway_address=GATEWAY,
        buses=(BusProfile(name="enet", kind="ethernet", bitrate=100_000_000),),
        ecus=(ecu_profile(GATEWAY, "ZGW"), ecu_profile(DME, "DME")),
        size_scale=1.0,
        battery_volts=13.8,
        charger=True,
    )


def key_for(seed: bytes) -> bytes:
    return hmac.new(SECRET, seed, hashlib.sha256).digest()[: len(seed)]


def location(address: int, size: int) -> bytes:
    return encode_memory_location(address, size, address_bytes=4, size_bytes=4)


def nrc(sid: int, code: int) -> bytes:
    return bytes((0x7F, sid, code))


class Bench:
    """One ECU server and the simulated time."""

    def __init__(self, address: int = DME) -> None:
        self.vehicle = VehicleState.from_profile(vehicle_profile())
        self.server = EcuServer(self.vehicle.ecus[address], self.vehicle, seed=7)
        self.ecu = self.server.state
        self.now = 0.0

    def send(self, request: bytes | str, *, functional: bool = False) -> list[Reply]:
        """Send at ``now``; move ``now`` to the last reply (a tester awaits the final)."""
        data = bytes.fromhex(request) if isinstance(request, str) else request
        replies = self.server.handle(data, self.now, functional=functional)
        if replies:
            self.now += replies[-1].delay
        return replies

    def ask(self, request: bytes | str, *, functional: bool = False) -> bytes:
        """Send and return the single answer (asserts there is exactly one)."""
        replies = self.send(request, functional=functional)
        assert len(replies) == 1, replies
        return replies[0].data

    def wait(self, seconds: float) -> None:
        self.now += seconds
        self.server.poll(self.now)

    # -- steps of the flash sequence ----------------------------------------------------

    def programming(self) -> None:
        assert self.ask("1003")[:2] == bytes.fromhex("5003")
        assert self.ask("1002")[:2] == bytes.fromhex("5002")

    def unlock(self, level: int = 0x11) -> None:
        seed = self.ask(bytes((0x27, level)))[2:]
        assert self.ask(bytes((0x27, level + 1)) + key_for(seed)) == bytes((0x67, level + 1))

    def erase(self, address: int = SWFL_AT, size: int = SWFL_SIZE) -> list[Reply]:
        return self.send(bytes.fromhex("3101FF00") + location(address, size))

    def flash(
        self,
        image: bytes,
        *,
        address: int = SWFL_AT,
        block: int = MAX_BLOCK - 2,
        data_format: int = 0x00,
        size: int | None = None,
        stop_after: int | None = None,
    ) -> bytes:
        """Request the download, send the blocks, exit; return the wire bytes sent."""
        wire = zlib.compress(image) if data_format == 0x10 else image
        announced = len(image) if size is None else size
        assert self.ask(bytes((0x34, data_format)) + location(address, announced))[0] == (0x74)
        counter = 1
        for i, start in enumerate(range(0, len(wire), block)):
            if stop_after is not None and i == stop_after:
                return wire
            answer = self.send(bytes((0x36, counter)) + wire[start : start + block])
            assert answer[-1].data == bytes((0x76, counter))
            counter = (counter + 1) & 0xFF
        assert self.ask("37") == b"\x77"
        return wire

    def check_memory(self, crc: int) -> bytes:
        return self.ask(bytes.fromhex("31010202") + crc.to_bytes(4, "big"))

    def reset_and_boot(self) -> None:
        assert self.ask("1101") == bytes.fromhex("5101")
        self.wait(BOOT_S)


def image_of(unit: SgbmId, length: int = 10_000, *, seed: int = 1) -> bytes:
    payload = bytes((seed * 31 + i * 7) & 0xFF for i in range(length))
    return build_image(unit, payload)


def read_did(bench: Bench, did: int) -> bytes:
    answer = bench.ask(bytes((0x22,)) + did.to_bytes(2, "big"))
    assert answer[:3] == bytes((0x62,)) + did.to_bytes(2, "big"), answer.hex()
    return answer[3:]


# -- the whole flash sequence ----------------------------------------------------------


def test_full_programming_sequence_installs_the_new_software() -> None:
    bench = Bench()
    assert bench.ask("1003") == bytes.fromhex("5003 0032 01F4")
    assert bench.ask("1002") == bytes.fromhex("5002 0032 01F4")
    assert bench.ecu.mode == "bootloader"
    seed_answer = bench.ask("2711")
    assert seed_answer[:2] == bytes.fromhex("6711")
    assert len(seed_answer) == 18
    assert bench.ask(bytes.fromhex("2712") + key_for(seed_answer[2:])) == bytes.fromhex("6712")

    start = bench.now
    erase = bench.erase()
    assert [(r.delay, r.data.hex()) for r in erase] == [
        (0.0, "7f3178"),
        (2.0, "7f3178"),
        (4.0, "7f3178"),
        (pytest.approx(4.8), "7101ff0000"),
    ]
    assert bench.now == pytest.approx(start + 4.8)
    assert SWFL_UNIT not in bench.ecu.svk

    image = image_of(NEW_SWFL)
    assert bench.ask(bytes.fromhex("3400") + location(SWFL_AT, len(image))) == bytes.fromhex(
        "7420 0402"
    )
    counter = 1
    for start_at in range(0, len(image), MAX_BLOCK - 2):
        block = image[start_at : start_at + MAX_BLOCK - 2]
        replies = bench.send(bytes((0x36, counter)) + block)
        assert replies == [
            Reply(pytest.approx(len(block) / (WRITE_KIB_S * 1024)), bytes((0x76, counter)))
        ]
        counter += 1
    assert bench.ask("37") == bytes.fromhex("77")
    assert bench.check_memory(zlib.crc32(image)) == bytes.fromhex("7101020200")
    assert bench.ask("3101FF01") == bytes.fromhex("7101FF0100")

    assert bench.ask("1101") == bytes.fromhex("5101")
    assert bench.send("22F186") == []  # booting
    bench.wait(BOOT_S)
    assert bench.ecu.mode == "application"
    assert read_did(bench, 0xF186) == b"\x01"
    svk = [str(u) for u in parse_svk(read_did(bench, 0xF101))]
    assert str(NEW_SWFL) in svk
    assert svk == [bench.ecu.hardware, BTLD_UNIT, str(NEW_SWFL), *bench.ecu.cafd]
    assert read_did(bench, 0x2502) == (4).to_bytes(2, "big")
    assert read_did(bench, 0x2503) == (10).to_bytes(2, "big")


def test_erase_empties_the_region_in_the_svk_at_once() -> None:
    bench = Bench()
    bench.programming()
    bench.unlock()
    bench.erase()
    svk = [str(u) for u in parse_svk(read_did(bench, 0xF101))]
    assert not any(u.startswith("SWFL") for u in svk)
    assert bench.ecu.regions[1].unit is None
    assert not bench.ecu.regions[1].valid


def test_compressed_download_dfi_0x10() -> None:
    bench = Bench()
    bench.programming()
    bench.unlock()
    bench.erase()
    image = build_image(NEW_SWFL, bytes(12_000))  # compresses to a few dozen bytes
    wire = bench.flash(image, data_format=0x10)
    assert len(wire) < len(image) // 10
    # 0202 takes the CRC of what crossed the wire, not of the image.
    assert bench.check_memory(zlib.crc32(wire)) == bytes.fromhex("7101020200")
    assert bench.check_memory(zlib.crc32(image)) == bytes.fromhex("7101020201")
    assert bench.ask("3101FF01") == bytes.fromhex("7101FF0100")
    assert bench.ecu.regions[1].unit == str(NEW_SWFL)


def test_compressed_block_write_time_counts_decompressed_bytes() -> None:
    bench = Bench()
    bench.programming()
    bench.unlock()
    bench.erase()
    image = build_image(NEW_SWFL, bytes(12_000))
    wire = zlib.compress(image)
    bench.ask(bytes.fromhex("3410") + location(SWFL_AT, len(image)))
    replies = bench.send(bytes((0x36, 1)) + wire)
    # 12 064 bytes at 64 KiB/s take 0.184 s > P2server: pending first, then the answer.
    assert [r.data.hex() for r in replies] == ["7f3678", "7601"]
    assert replies[-1].delay == pytest.approx(len(image) / (WRITE_KIB_S * 1024))


def test_block_counter_wraps_from_ff_to_00() -> None:
    bench = Bench()
    bench.ecu.max_block_length = 2 + 32
    bench.programming()
    bench.unlock()
    bench.erase()
    image = image_of(NEW_SWFL, 300 * 32 - 64)  # 300 blocks of 32 bytes
    assert bench.ask(bytes.fromhex("3400") + location(SWFL_AT, len(image))) == bytes.fromhex(
        "7420 0022"
    )
    counters = []
    counter = 1
    for start in range(0, len(image), 32):
        answer = bench.send(bytes((0x36, counter)) + image[start : start + 32])
        counters.append(answer[-1].data[1])
        counter = (counter + 1) & 0xFF
    assert counters[253:258] == [0xFE, 0xFF, 0x00, 0x01, 0x02]
    assert bench.ask("37") == b"\x77"
    assert bench.ecu.regions[1].valid


def test_a_repeated_block_is_answered_again_and_not_written_twice() -> None:
    bench = Bench()
    bench.programming()
    bench.unlock()
    bench.erase()
    image = image_of(NEW_SWFL, 2000)
    bench.ask(bytes.fromhex("3400") + location(SWFL_AT, len(image)))
    first = bytes((0x36, 1)) + image[:1024]
    assert bench.send(first)[-1].data == bytes.fromhex("7601")
    assert bench.send(first) == [Reply(0.0, bytes.fromhex("7601"))]  # retransmission
    assert bench.send(bytes((0x36, 2)) + image[1024:2048])[-1].data == bytes.fromhex("7602")
    assert bench.send(bytes((0x36, 3)) + image[2048:])[-1].data == bytes.fromhex("7603")
    assert bench.ask("37") == b"\x77"
    assert bench.check_memory(zlib.crc32(image)) == bytes.fromhex("7101020200")


def test_interrupted_application_download_leaves_the_bootloader_and_reflash_recovers() -> None:
    bench = Bench()
    bench.programming()
    bench.unlock()
    bench.erase()
    image = image_of(NEW_SWFL)
    bench.flash(image, stop_after=4)
    bench.reset_and_boot()
    assert bench.ecu.mode == "bootloader"
    # The bootloader still answers: identification works, the application's DIDs do not.
    assert read_did(bench, 0xF190) == b"WBA8E9C50GK123456"
    assert bench.ask("223000") == nrc(0x22, 0x31)
    assert bench.ask("1902FF") == nrc(0x19, 0x11)

    bench.programming()
    bench.unlock()
    bench.erase()
    bench.flash(image)
    assert bench.ask("3101FF01") == bytes.fromhex("7101FF0100")
    bench.reset_and_boot()
    assert bench.ecu.mode == "application"
    assert str(NEW_SWFL) in bench.ecu.svk


def test_interrupted_bootloader_download_bricks_the_ecu() -> None:
    bench = Bench()
    bench.programming()
    bench.unlock()
    bench.erase(BTLD_AT, BTLD_SIZE)
    bench.flash(image_of(NEW_BTLD, 4000), address=BTLD_AT, stop_after=2)
    assert bench.ask("1101") == bytes.fromhex("5101")
    assert bench.ecu.mode == "bricked"
    bench.wait(60.0)
    for request in ("3E00", "1003", "22F190", "1101"):
        assert bench.send(request) == []
    assert bench.server.next_deadline() is None


def test_bootloader_update_then_reset_runs_the_new_bootloader() -> None:
    bench = Bench()
    bench.programming()
    bench.unlock()
    bench.erase(BTLD_AT, BTLD_SIZE)
    bench.flash(image_of(NEW_BTLD, 4000), address=BTLD_AT)
    assert bench.ask("3101FF01") == bytes.fromhex("7101FF0100")
    bench.reset_and_boot()
    assert bench.ecu.mode == "application"
    assert str(NEW_BTLD) in bench.ecu.svk


def test_tampered_payload_never_becomes_valid() -> None:
    bench = Bench()
    bench.programming()
    bench.unlock()
    bench.erase()
    image = bytearray(image_of(NEW_SWFL))
    image[5000] ^= 0x01
    wire = bench.flash(bytes(image))
    # The transfer itself was intact: 0202 passes, FF01 finds the hash mismatch.
    assert bench.check_memory(zlib.crc32(wire)) == bytes.fromhex("7101020200")
    assert bench.ask("3101FF01") == bytes.fromhex("7101FF0101")
    assert bench.ecu.regions[1].unit == str(NEW_SWFL)
    assert not bench.ecu.regions[1].valid
    bench.reset_and_boot()
    assert bench.ecu.mode == "bootloader"
    assert read_did(bench, 0x2502) == (3).to_bytes(2, "big")


def test_image_of_another_class_is_not_valid_in_the_region() -> None:
    bench = Bench()
    bench.programming()
    bench.unlock()
    bench.erase()
    bench.flash(image_of(NEW_BTLD, 4000))
    assert bench.ask("3101FF01") == bytes.fromhex("7101FF0101")


def test_programming_counter_rises_once_per_programming() -> None:
    bench = Bench()
    bench.programming()
    bench.unlock()
    bench.erase()
    bench.flash(image_of(NEW_SWFL))
    assert bench.ask("3101FF01") == bytes.fromhex("7101FF0100")
    assert bench.ask("3101FF01") == bytes.fromhex("7101FF0100")
    assert bench.ecu.programming_counter == 4


def test_programming_counter_at_max_refuses_erase() -> None:
    bench = Bench()
    bench.ecu.programming_counter = bench.ecu.programming_counter_max
    bench.programming()
    bench.unlock()
    assert bench.erase() == [Reply(0.0, nrc(0x31, 0x22))]
    assert bench.ecu.regions[1].valid


def test_power_loss_mid_erase_leaves_the_region_blank_and_the_ecu_in_its_bootloader() -> None:
    bench = Bench()
    bench.programming()
    bench.unlock()
    replies = bench.server.handle(bytes.fromhex("3101FF00") + location(SWFL_AT, SWFL_SIZE), 0.0)
    assert replies[-1].delay == pytest.approx(4.8)
    bench.server.power_loss(1.0)
    bench.now = 1.0 + BOOT_S
    bench.server.poll(bench.now)
    assert bench.ecu.mode == "bootloader"
    assert bench.ecu.regions[1].unit is None
    assert bench.ask("22F186") == bytes.fromhex("62F18601")


def test_power_loss_mid_download_leaves_the_region_invalid() -> None:
    bench = Bench()
    bench.programming()
    bench.unlock()
    bench.erase()
    bench.flash(image_of(NEW_SWFL), stop_after=3)
    bench.server.power_loss(bench.now)
    bench.wait(BOOT_S)
    assert bench.ecu.mode == "bootloader"
    assert not bench.ecu.regions[1].valid
    # RAM is gone: a new download needs a new session, unlock and erase.
    bench.programming()
    bench.unlock()
    assert bench.ask(bytes.fromhex("3400") + location(SWFL_AT, 100)) == nrc(0x34, 0x70)


def test_busy_during_erase_except_tester_present() -> None:
    bench = Bench()
    bench.programming()
    bench.unlock()
    bench.server.handle(bytes.fromhex("3101FF00") + location(SWFL_AT, SWFL_SIZE), 0.0)
    assert bench.server.handle(bytes.fromhex("22F186"), 1.0) == [Reply(0.0, nrc(0x22, 0x21))]
    assert bench.server.handle(bytes.fromhex("3E80"), 1.5, functional=True) == []
    assert bench.server.handle(bytes.fromhex("22F186"), 4.8) == [
        Reply(0.0, bytes.fromhex("62F18602"))
    ]


# -- sessions, S3 and security ---------------------------------------------------------


def test_s3_timeout_falls_back_to_default_and_relocks() -> None:
    bench = Bench()
    bench.ask("1003")
    bench.unlock(0x01)
    assert bench.server.security_level == 0x01
    assert bench.server.next_deadline() == pytest.approx(bench.now + 5.0)
    bench.wait(4.9)
    assert bench.ecu.session == 0x03
    bench.wait(0.2)
    assert bench.ecu.session == 0x01
    assert bench.server.security_level is None
    assert bench.ask("2E40000000ffff") == nrc(0x2E, 0x7F)


def test_protocol_timers_stay_in_real_time_when_the_clock_is_scaled() -> None:
    # At time scale 100, 5 s of S3 must still be 5 real seconds: 500 simulated ones,
    # or a tester sending tester present every 1.5 s would lose its session.
    bench = Bench()
    bench.server = EcuServer(bench.ecu, bench.vehicle, seed=7, protocol_scale=100.0)
    bench.ask("1003")
    bench.wait(490.0)
    assert bench.ecu.session == 0x03
    bench.wait(20.0)
    assert bench.ecu.session == 0x01


def test_tester_present_keeps_the_session_open() -> None:
    bench = Bench()
    bench.ask("1003")
    for _ in range(10):
        bench.wait(4.0)
        assert bench.send("3E80", functional=True) == []
    assert bench.ecu.session == 0x03
    assert bench.ask("3E00") == bytes.fromhex("7E00")


def test_s3_timeout_in_programming_session_resets_the_ecu() -> None:
    bench = Bench()
    bench.programming()
    assert bench.ecu.mode == "bootloader"
    bench.wait(5.0)
    assert bench.ecu.session == 0x01
    assert bench.send("22F186") == []  # booting
    bench.wait(BOOT_S)
    assert bench.ecu.mode == "application"  # nothing was erased


def test_leaving_programming_session_with_10_01_reboots() -> None:
    bench = Bench()
    bench.programming()
    assert bench.ask("1001") == bytes.fromhex("5001 0032 01F4")
    assert bench.send("3E00") == []
    bench.wait(BOOT_S)
    assert bench.ask("3E00") == bytes.fromhex("7E00")
    assert bench.ecu.mode == "application"


def test_security_lockout_after_three_wrong_keys() -> None:
    bench = Bench()
    bench.programming()
    for expected in (0x35, 0x35, 0x36):
        bench.ask("2711")
        assert bench.ask("2712" + "00" * 16) == nrc(0x27, expected)
    assert bench.ask("2711") == nrc(0x27, 0x37)
    for _ in range(3):  # 9.9 s, with tester present to keep the session
        bench.wait(3.3)
        assert bench.send("3E80") == []
    assert bench.ask("2711") == nrc(0x27, 0x37)
    bench.wait(0.2)
    assert bench.ask("2711")[:2] == bytes.fromhex("6711")


def test_seed_of_an_unlocked_level_is_zero() -> None:
    bench = Bench()
    bench.programming()
    bench.unlock()
    assert bench.ask("2711") == bytes.fromhex("6711") + bytes(16)


def test_seeds_are_repeatable_per_seed_argument() -> None:
    first, second = Bench(), Bench()
    first.ask("1003")
    second.ask("1003")
    seed = first.ask("2701")
    assert seed == second.ask("2701")
    assert first.ask("2701") != seed  # a new seed for every request


def test_session_change_relocks() -> None:
    bench = Bench()
    bench.ask("1003")
    bench.unlock(0x01)
    bench.ask("1003")
    assert bench.server.security_level is None


# -- data services -------------------------------------------------------------------------


def test_read_several_dids_in_one_request() -> None:
    bench = Bench()
    answer = bench.ask("22F190F18625022503")
    assert answer == (
        bytes.fromhex("62F190") + b"WBA8E9C50GK123456" + bytes.fromhex("F18601 2502 0003 2503 000A")
    )


def test_read_skips_unknown_dids_when_one_is_known() -> None:
    bench = Bench()
    assert bench.ask("22F1903000") == bytes.fromhex(
        "62F190"
    ) + b"WBA8E9C50GK123456" + bytes.fromhex("30000102")
    assert bench.ask("22ABCD3000") == bytes.fromhex("6230000102")


def test_gateway_dids() -> None:
    bench = Bench(GATEWAY)
    triple = ILevelTriple.decode(read_did(bench, 0xF1A0))
    assert str(triple.current) == "F030-24-03-550"
    assert VehicleOrder.decode(read_did(bench, 0xF1A1)).has("$609")
    assert read_did(bench, 0xF1A2) == (13800).to_bytes(2, "big")
    # Only the gateway has them.
    assert Bench(DME).ask("22F1A0") == nrc(0x22, 0x31)


def test_gateway_writes_i_level_and_vo_when_unlocked() -> None:
    bench = Bench(GATEWAY)
    bench.ask("1003")
    new = ILevelTriple.decode(
        b"F030-24-07-550".ljust(14) + b"F030-24-03-550".ljust(14) + b"F030-15-07-520".ljust(14)
    )
    assert bench.ask(bytes.fromhex("2EF1A0") + new.encode()) == nrc(0x2E, 0x33)
    bench.unlock(0x01)
    assert bench.ask(bytes.fromhex("2EF1A0") + new.encode()) == bytes.fromhex("6EF1A0")
    assert bench.vehicle.ilevel_current == "F030-24-07-550"
    assert bench.vehicle.ilevel_last == "F030-24-03-550"
    order = VehicleOrder.parse(bench.vehicle.vo).with_option("$6AC")
    assert bench.ask(bytes.fromhex("2EF1A1") + order.encode()) == bytes.fromhex("6EF1A1")
    assert VehicleOrder.parse(bench.vehicle.vo).has("$6AC")
    assert bench.ask(bytes.fromhex("2EF1A1") + b"nonsense") == nrc(0x2E, 0x31)
    assert bench.ask(bytes.fromhex("2EF1A0") + b"x" * 41) == nrc(0x2E, 0x13)


def test_coding_is_written_in_the_coding_session_only() -> None:
    bench = Bench()
    bench.ask("1003")
    assert bench.ask("2E30000304") == nrc(0x2E, 0x31)
    assert bench.ask("1041") == bytes.fromhex("5041 0032 01F4")
    assert bench.ask("2E30000304") == bytes.fromhex("6E3000")
    assert bench.ecu.coding[0x3000] == bytes.fromhex("0304")
    assert read_did(bench, 0x3000) == bytes.fromhex("0304")


def test_individual_data_is_written_in_extended_and_coding_sessions() -> None:
    bench = Bench()
    bench.ask("1003")
    assert bench.ask("2E400001020304") == bytes.fromhex("6E4000")
    bench.ask("1041")
    assert bench.ask("2E400005060708") == bytes.fromhex("6E4000")
    assert bench.ecu.individual_data[0x4000] == bytes.fromhex("05060708")


def test_dtcs_read_by_status_mask_and_clear() -> None:
    bench = Bench()
    bench.ecu.dtcs[1] = (0xABCDEF, 0x04)
    assert bench.ask("190209") == bytes.fromhex("5902FF 12345609")
    assert bench.ask("1902FF") == bytes.fromhex("5902FF 12345609 ABCDEF04")
    assert bench.ask("14123456") == bytes.fromhex("54")
    assert bench.ask("1902FF") == bytes.fromhex("5902FF ABCDEF04")
    assert bench.ask("14FFFFFF") == bytes.fromhex("54")
    assert bench.ask("1902FF") == bytes.fromhex("5902FF")


def test_communication_control_dtc_setting_and_suppression() -> None:
    bench = Bench()
    bench.ask("1003")
    assert bench.ask("280301") == bytes.fromhex("6803")
    assert bench.send("288301", functional=True) == []
    assert bench.ask("8502") == bytes.fromhex("C502")
    assert bench.send("8582") == []
    assert bench.ask("8501") == bytes.fromhex("C501")


def test_energy_mode_routine() -> None:
    bench = Bench(GATEWAY)
    bench.ask("1003")
    assert bench.ask("31010F0C03") == bytes.fromhex("71010F0C00")
    assert bench.vehicle.energy_mode == "flash"
    assert bench.ask("31010F0C00") == bytes.fromhex("71010F0C00")
    assert bench.vehicle.energy_mode == "normal"
    assert bench.ask("31010F0C09") == nrc(0x31, 0x31)


# -- every NRC from the misuse that triggers it ----------------------------------------


Setup = Callable[[Bench], None]


def _default(bench: Bench) -> None:
    del bench


def _extended(bench: Bench) -> None:
    bench.ask("1003")


def _programming_locked(bench: Bench) -> None:
    bench.programming()


def _programming(bench: Bench) -> None:
    bench.programming()
    bench.unlock()


def _erased(bench: Bench) -> None:
    _programming(bench)
    bench.erase()


def _downloading(bench: Bench) -> None:
    _erased(bench)
    bench.ask(bytes.fromhex("3400") + location(SWFL_AT, 3000))


def _downloading_zlib(bench: Bench) -> None:
    _erased(bench)
    bench.ask(bytes.fromhex("3410") + location(SWFL_AT, 3000))


def _low_battery(setup: Setup) -> Setup:
    def step(bench: Bench) -> None:
        setup(bench)
        bench.vehicle.battery.volts = 10.2

    return step


def _high_battery(setup: Setup) -> Setup:
    def step(bench: Bench) -> None:
        setup(bench)
        bench.vehicle.battery.volts = 16.4

    return step


def _bootloader_mode(bench: Bench) -> None:
    _erased(bench)
    bench.reset_and_boot()


def _locked_out(bench: Bench) -> None:
    bench.programming()
    for _ in range(3):
        bench.ask("2711")
        bench.ask("2712" + "00" * 16)


def _seed_requested(bench: Bench) -> None:
    bench.programming()
    bench.ask("2711")


ERASE_SWFL = "3101FF00" + location(SWFL_AT, SWFL_SIZE).hex()

MISUSES = [
    # 0x11 serviceNotSupported, 0x7F serviceNotSupportedInActiveSession
    ("unknown service", _default, "2300001000", "7F2311"),
    ("bootloader has no fault memory", _bootloader_mode, "14FFFFFF", "7F1411"),
    ("download in extended session", _extended, "3400" + location(SWFL_AT, 100).hex(), "7F347F"),
    ("security access in default session", _default, "2701", "7F277F"),
    ("write in default session", _default, "2E40000000ffff", "7F2E7F"),
    # DiagnosticSessionControl
    ("programming session from default", _default, "1002", "7F107E"),
    ("unknown session", _default, "1005", "7F1012"),
    ("coding session in the bootloader", _programming_locked, "1041", "7F1012"),
    ("session request too long", _default, "100300", "7F1013"),
    ("session request too short", _default, "10", "7F1013"),
    # SecurityAccess
    ("unknown security level", _extended, "2705", "7F2712"),
    ("programming level in extended session", _extended, "2711", "7F277E"),
    ("key without seed", _programming_locked, "2712" + "00" * 16, "7F2724"),
    ("wrong key", _seed_requested, "2712" + "00" * 16, "7F2735"),
    ("empty key", _seed_requested, "2712", "7F2713"),
    ("seed during lockout", _locked_out, "2711", "7F2737"),
    # ReadDataByIdentifier / WriteDataByIdentifier
    ("unknown DID", _default, "22ABCD", "7F2231"),
    ("odd DID length", _default, "22F1", "7F2213"),
    ("unknown DID write", _extended, "2EABCD00", "7F2E31"),
    ("coding outside the coding session", _extended, "2E30000304", "7F2E31"),
    ("record of the wrong length", _extended, "2E4000aa", "7F2E13"),
    ("write too short", _extended, "2E4000", "7F2E13"),
    # RoutineControl
    ("erase with security locked", _programming_locked, ERASE_SWFL, "7F3133"),
    ("erase in extended session", _extended, ERASE_SWFL, "7F3133"),
    ("erase of no region", _programming, "3101FF00" + location(SWFL_AT, 0x1000).hex(), "7F3131"),
    ("erase at low voltage", _low_battery(_programming), ERASE_SWFL, "7F3193"),
    ("erase at high voltage", _high_battery(_programming), ERASE_SWFL, "7F3192"),
    ("erase with a truncated location", _programming, "3101FF004400", "7F3113"),
    ("unknown routine", _programming, "3101ABCD", "7F3131"),
    ("stop routine", _programming, "3102FF00", "7F3112"),
    ("routine results", _programming, "3103FF01", "7F3112"),
    ("routine too short", _programming, "3101FF", "7F3113"),
    ("check memory without a download", _programming, "3101020212345678", "7F3124"),
    ("check memory without the CRC", _programming, "31010202", "7F3113"),
    # RequestDownload
    (
        "download with security locked",
        _programming_locked,
        "3400" + location(SWFL_AT, 100).hex(),
        "7F3433",
    ),
    (
        "download into a region not erased",
        _programming,
        "3400" + location(SWFL_AT, 100).hex(),
        "7F3470",
    ),
    (
        "download while one is active",
        _downloading,
        "3400" + location(SWFL_AT, 100).hex(),
        "7F3422",
    ),
    ("download with encryption", _erased, "3401" + location(SWFL_AT, 100).hex(), "7F3431"),
    (
        "download with another compression",
        _erased,
        "3420" + location(SWFL_AT, 100).hex(),
        "7F3431",
    ),
    (
        "download larger than the region",
        _erased,
        "3400" + location(SWFL_AT, SWFL_SIZE + 1).hex(),
        "7F3431",
    ),
    (
        "download not at a region start",
        _erased,
        "3400" + location(SWFL_AT + 0x1000, 100).hex(),
        "7F3431",
    ),
    (
        "download at low voltage",
        _low_battery(_erased),
        "3400" + location(SWFL_AT, 100).hex(),
        "7F3493",
    ),
    ("download with a truncated location", _erased, "34004400", "7F3413"),
    # TransferData
    ("transfer without download", _programming, "3601aa", "7F3624"),
    ("transfer with a wrong counter", _downloading, "3602aa", "7F3673"),
    (
        "transfer longer than the block length",
        _downloading,
        "3601" + "00" * (MAX_BLOCK - 1),
        "7F3613",
    ),
    ("transfer of corrupt compressed data", _downloading_zlib, "3601" + "ff" * 100, "7F3672"),
    ("transfer at low voltage", _low_battery(_downloading), "3601aa", "7F3693"),
    ("transfer at high voltage", _high_battery(_downloading), "3601aa", "7F3692"),
    ("transfer without data", _downloading, "3601", "7F3613"),
    # RequestTransferExit
    ("exit without download", _programming, "37", "7F3724"),
    ("exit before all data arrived", _downloading, "37", "7F3724"),
    # the rest
    ("unknown reset type", _default, "1105", "7F1112"),
    ("reset request too long", _default, "110100", "7F1113"),
    ("tester present sub-function", _default, "3E01", "7F3E12"),
    ("report type not supported", _default, "190100", "7F1912"),
    ("clear with a short group", _default, "14FFFF", "7F1413"),
    ("clear of a DTC not stored", _default, "14000001", "7F1431"),
    ("communication type out of range", _extended, "280300", "7F2831"),
    ("DTC setting type not supported", _extended, "8503", "7F8512"),
]


@pytest.mark.parametrize(
    ("setup", "request_hex", "expected"),
    [pytest.param(s, r, e, id=name) for name, s, r, e in MISUSES],
)
def test_misuse_is_refused_with_the_matching_nrc(
    setup: Setup, request_hex: str, expected: str
) -> None:
    bench = Bench()
    setup(bench)
    assert bench.send(request_hex) == [Reply(0.0, bytes.fromhex(expected))]


def test_transfer_beyond_the_announced_size_is_suspended() -> None:
    bench = Bench()
    _downloading(bench)
    for counter in (1, 2):
        bench.send(bytes((0x36, counter)) + bytes(1024))
    assert bench.send(bytes((0x36, 3)) + bytes(1024)) == [Reply(0.0, nrc(0x36, 0x71))]
    # The download is over: further blocks are out of sequence.
    assert bench.send(bytes((0x36, 4)) + bytes(10)) == [Reply(0.0, nrc(0x36, 0x24))]


def test_a_request_during_a_long_erase_is_busy() -> None:
    bench = Bench()
    _programming(bench)
    bench.server.handle(bytes.fromhex(ERASE_SWFL), bench.now)
    assert bench.server.handle(bytes.fromhex("37"), bench.now + 1) == [Reply(0.0, nrc(0x37, 0x21))]


# -- functional addressing -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "request_hex"),
    [
        pytest.param(_default, "2300001000", id="0x11"),
        pytest.param(_default, "1005", id="0x12"),
        pytest.param(_default, "22ABCD", id="0x31"),
        pytest.param(_default, "1002", id="0x7E"),
        pytest.param(_default, "2701", id="0x7F"),
    ],
)
def test_functional_requests_get_no_such_nrc(setup: Setup, request_hex: str) -> None:
    bench = Bench()
    setup(bench)
    assert bench.send(request_hex, functional=True) == []


def test_functional_requests_get_other_nrcs_and_positive_answers() -> None:
    bench = Bench()
    assert bench.send("14FFFF", functional=True) == [Reply(0.0, nrc(0x14, 0x13))]
    assert bench.send("3E00", functional=True) == [Reply(0.0, bytes.fromhex("7E00"))]
    assert bench.send("3E80", functional=True) == []


def test_suppressed_positive_response_still_gives_negative_ones() -> None:
    bench = Bench()
    assert bench.send("1083") == []
    assert bench.ecu.session == 0x03
    assert bench.send("1082") == []  # from 03 it is allowed ...
    assert bench.ecu.session == 0x02
    assert Bench().send("1082") == [Reply(0.0, nrc(0x10, 0x7E))]  # ... from 01 it is not


def test_erase_with_suppress_bit_still_sends_the_final_answer_after_pending() -> None:
    bench = Bench()
    _programming(bench)
    replies = bench.send("3181FF00" + location(SWFL_AT, SWFL_SIZE).hex())
    assert replies[0].data == nrc(0x31, 0x78)
    assert replies[-1].data == bytes.fromhex("7101FF0000")


def test_off_ecu_answers_nothing() -> None:
    bench = Bench()
    bench.ecu.mode = "off"
    assert bench.send("3E00") == []
    bench.server.power_loss(1.0)
    assert bench.ecu.mode == "off"


def test_the_ecu_measures_the_terminal_voltage_once_the_runtime_sets_it() -> None:
    bench = Bench(GATEWAY)
    _programming(bench)
    bench.vehicle.battery.terminal_volts = 10.3  # under load, with the set voltage 13.8 V
    assert bench.erase() == [Reply(0.0, nrc(0x31, 0x93))]
    bench.vehicle.battery.terminal_volts = 14.1
    # The gateway's bootloader measures too: a tester recovering it needs the voltage.
    assert bench.ask("22F1A2") == bytes.fromhex("62F1A2") + (14100).to_bytes(2, "big")
    bench.reset_and_boot()
    assert read_did(bench, 0xF1A2) == (14100).to_bytes(2, "big")


def test_bootloader_in_extended_session_restarts_into_the_application_on_s3() -> None:
    bench = Bench()
    bench.programming()
    assert bench.ask("1003")[:2] == bytes.fromhex("5003")
    assert bench.ecu.mode == "bootloader"  # 02 -> 03 keeps the bootloader running
    bench.wait(5.0)
    bench.wait(BOOT_S)
    assert bench.ecu.mode == "application"
    # From the application, leaving the extended session is no restart.
    bench.ask("1003")
    assert bench.ask("1001")[:2] == bytes.fromhex("5001")
    assert bench.ask("3E00") == bytes.fromhex("7E00")
