"""SecurityAccess (0x27) and the key algorithm plug-ins, against an in-memory ECU."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator

import pytest

from ecuworks.errors import ConfigError, NegativeResponse, SecurityAlgorithmError
from ecuworks.transport.memory import MemoryLink
from ecuworks.uds.client import UdsClient
from ecuworks.uds.security import available_algorithms, hmac_sha256, load_algorithm

ECU = 0x12
SECRET = bytes.fromhex("00112233445566778899aabbccddeeff")
SEED = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")


class LockedEcu:
    """Hands out ``seed`` for level 0x11 and checks the key with HMAC computed here."""

    def __init__(self, seed: bytes = SEED, secret: bytes = SECRET) -> None:
        self.seed = seed
        self.secret = secret
        self.keys: list[bytes] = []
        self.unlocked = False

    async def __call__(self, target: int, request: bytes) -> AsyncIterator[bytes]:
        if request == b"\x27\x11":
            yield b"\x67\x11" + self.seed
        elif request[:2] == b"\x27\x12":
            key = request[2:]
            self.keys.append(key)
            expected = hmac.new(self.secret, self.seed, hashlib.sha256).digest()[: len(self.seed)]
            if key == expected:
                self.unlocked = True
                yield b"\x67\x12"
            else:
                yield b"\x7f\x27\x35"
        else:
            yield b"\x7f" + request[:1] + b"\x11"


async def open_link(ecu: LockedEcu) -> MemoryLink:
    link = MemoryLink(ecu)
    await link.open()
    return link


def test_hmac_sha256_is_the_truncated_hmac_of_the_seed() -> None:
    key = hmac_sha256(SEED[:4], SECRET, 0x11)
    assert key == hmac.new(SECRET, SEED[:4], hashlib.sha256).digest()[:4]
    assert len(hmac_sha256(bytes(40), SECRET, 0x11)) == 32  # capped at the digest size


def test_the_demo_algorithm_is_registered_by_entry_point() -> None:
    assert "hmac-sha256" in available_algorithms()
    assert load_algorithm("hmac-sha256") is hmac_sha256


def test_an_unknown_algorithm_names_the_installed_ones() -> None:
    with pytest.raises(SecurityAlgorithmError, match=r"no-such-algo.*hmac-sha256"):
        load_algorithm("no-such-algo")


async def test_unlock_with_the_algorithm_by_name() -> None:
    ecu = LockedEcu()
    client = UdsClient(await open_link(ecu), ECU)
    await client.security_access(0x11, "hmac-sha256", SECRET)
    assert ecu.unlocked
    assert len(ecu.keys) == 1


async def test_unlock_with_a_callable_algorithm() -> None:
    ecu = LockedEcu()
    client = UdsClient(await open_link(ecu), ECU)
    levels: list[int] = []

    def algorithm(seed: bytes, secret: bytes, level: int) -> bytes:
        levels.append(level)
        return hmac_sha256(seed, secret, level)

    await client.security_access(0x11, algorithm, SECRET)
    assert ecu.unlocked
    assert levels == [0x11]


async def test_a_wrong_key_is_refused_with_invalid_key() -> None:
    ecu = LockedEcu()
    client = UdsClient(await open_link(ecu), ECU)
    with pytest.raises(NegativeResponse) as caught:
        await client.security_access(0x11, "hmac-sha256", b"wrong secret")
    assert caught.value.nrc == 0x35
    assert caught.value.service == 0x27
    assert caught.value.nrc_name == "invalid key"
    assert not ecu.unlocked


async def test_a_zero_seed_means_already_unlocked_and_no_key_is_sent() -> None:
    ecu = LockedEcu(seed=bytes(4))
    link = await open_link(ecu)
    await UdsClient(link, ECU).security_access(0x11, "hmac-sha256", SECRET)
    assert [payload for _, payload in link.sent] == [b"\x27\x11"]


async def test_unknown_algorithm_fails_before_anything_is_sent() -> None:
    ecu = LockedEcu()
    link = await open_link(ecu)
    with pytest.raises(SecurityAlgorithmError, match="hmac-sha256"):
        await UdsClient(link, ECU).security_access(0x11, "nope", SECRET)
    assert link.sent == []


async def test_a_failing_algorithm_is_reported_as_such() -> None:
    def broken(seed: bytes, secret: bytes, level: int) -> bytes:
        raise RuntimeError("dongle missing")

    client = UdsClient(await open_link(LockedEcu()), ECU)
    with pytest.raises(SecurityAlgorithmError, match="dongle missing"):
        await client.security_access(0x11, broken, SECRET)


async def test_required_time_delay_comes_as_negative_response() -> None:
    async def delayed(target: int, request: bytes) -> AsyncIterator[bytes]:
        yield b"\x7f\x27\x37"

    link = MemoryLink(delayed)
    await link.open()
    with pytest.raises(NegativeResponse) as caught:
        await UdsClient(link, ECU).security_access(0x11, "hmac-sha256", SECRET)
    assert caught.value.nrc == 0x37


@pytest.mark.parametrize("level", [0x00, 0x12, 0x7F, 0x81])
async def test_the_seed_level_must_be_odd(level: int) -> None:
    link = await open_link(LockedEcu())
    with pytest.raises(ConfigError):
        await UdsClient(link, ECU).security_access(level, "hmac-sha256", SECRET)
    assert link.sent == []
