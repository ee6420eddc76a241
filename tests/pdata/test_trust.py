"""P-Data repository: built with python-tuf's metadata API, verified from bytes.

Each attack is refused with a PDataMismatch naming the role or unit and the check that
failed, before any byte could reach an ECU.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata

from ecuworks.errors import PDataMismatch
from ecuworks.pdata.keys import TOP_LEVEL_ROLES, KeyRing
from ecuworks.pdata.repository import RepositoryBuilder
from ecuworks.pdata.trust import TrustedRepository, verify_target
from ecuworks.pdata.verify import verify_directory

SERIES = ("F030", "G020")
DME = {
    "sgbm": "SWFL-0000ABCD-001.002.003",
    "process_class": "SWFL",
    "hardware": ["HWEL-00001234-001.000.000"],
    "release": 1,
}
EGS = {**DME, "sgbm": "SWFL-0000BEEF-004.005.006", "hardware": ["HWEL-00005678-001.000.000"]}
IMAGE = bytes(range(256)) * 300  # 76.8 kB: more than one chunk


@pytest.fixture
def keys() -> KeyRing:
    return KeyRing.generate((*TOP_LEVEL_ROLES, *SERIES))


@pytest.fixture
def repo(tmp_path: Path, keys: KeyRing) -> Path:
    out = tmp_path / "repo"
    builder = RepositoryBuilder(out, keys)
    builder.add_target("F030", "DME/swfl_abcd.bin", IMAGE, custom=DME)
    builder.add_target("F030", "egs_beef.bin", b"\x01\x02\x03" * 1000, custom=EGS)
    builder.add_target("G020", "DME/swfl_abcd.bin", IMAGE[::-1], custom={**DME, "release": 2})
    builder.publish()
    return out


def read(repo: Path, name: str) -> bytes:
    return (repo / name).read_bytes()


def load(repo: Path, *, now: datetime | None = None) -> TrustedRepository:
    """A client that trusts 1.root.json and has loaded the current metadata."""
    client = TrustedRepository(read(repo, "1.root.json"), now=now)
    client.update_timestamp(read(repo, "timestamp.json"))
    client.update_snapshot(read(repo, f"{client.timestamp.snapshot_meta.version}.snapshot.json"))
    meta = client.snapshot.meta
    client.update_targets(read(repo, f"{meta['targets.json'].version}.targets.json"))
    for series in client.series:
        client.update_delegated(
            series, read(repo, f"{meta[f'{series}.json'].version}.{series}.json")
        )
    return client


def resign(data: bytes, *signers: CryptoSigner) -> bytes:
    """The same metadata, signed by ``signers`` only (none: unsigned)."""
    md = Metadata.from_bytes(data)
    md.signatures.clear()
    for signer in signers:
        md.sign(signer, append=True)
    return md.to_bytes()


def chunks(data: bytes, size: int = 4096) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


# -- happy paths ----------------------------------------------------------------------------


def test_two_series_verify_from_root(repo: Path) -> None:
    report = verify_directory(repo, repo / "1.root.json")

    assert report.ok
    assert report.series == {"F030": 1, "G020": 1}
    assert len(report.verified) == 3
    assert sorted(p.name for p in repo.glob("*.json")) == [
        "1.F030.json", "1.G020.json", "1.root.json", "1.snapshot.json", "1.targets.json",
        "timestamp.json",
    ]  # fmt: skip


def test_target_info_carries_pdata_fields_and_streamed_bytes_verify(repo: Path) -> None:
    client = load(repo)
    info = client.target_info("F030", "DME/swfl_abcd.bin")

    assert info.length == len(IMAGE)
    assert info.custom == DME
    stored = repo / "targets" / info.stored_name
    assert stored.name.startswith(info.sha256 + ".")  # consistent snapshot name
    verify_target(info, chunks(stored.read_bytes()))


def test_publishing_a_new_release_bumps_only_what_changed(repo: Path, keys: KeyRing) -> None:
    builder = RepositoryBuilder(repo, keys)  # continues from the published repository
    builder.add_target("F030", "DME/swfl_abcd.bin", IMAGE + b"v2", custom={**DME, "release": 2})
    builder.publish()

    report = verify_directory(repo, repo / "1.root.json")
    assert report.ok
    assert report.snapshot_version == 2
    assert report.series == {"F030": 2, "G020": 1}
    client = load(repo)
    assert client.target_info("F030", "DME/swfl_abcd.bin").custom["release"] == 2


def test_client_holding_old_root_follows_a_root_key_rotation(repo: Path, keys: KeyRing) -> None:
    builder = RepositoryBuilder(repo, keys)
    builder.rotate_keys("root", [CryptoSigner.generate_ed25519()])
    builder.publish()

    report = verify_directory(repo, repo / "1.root.json")
    assert report.root_version == 2
    assert report.ok


def test_keys_saved_and_loaded_sign_the_same_repository(
    tmp_path: Path, keys: KeyRing, repo: Path
) -> None:
    keys.save(tmp_path / "keys")
    loaded = KeyRing.load(tmp_path / "keys")
    builder = RepositoryBuilder(repo, loaded)
    builder.add_target("G020", "new.bin", b"new", custom=EGS)
    builder.publish()

    assert verify_directory(repo, repo / "1.root.json").ok


# -- attacks ----------------------------------------------------------------------------------


def test_tampered_image_is_refused_by_hash(repo: Path) -> None:
    info = load(repo).target_info("F030", "DME/swfl_abcd.bin")
    data = bytearray((repo / "targets" / info.stored_name).read_bytes())
    data[1000] ^= 0x01

    with pytest.raises(PDataMismatch) as caught:
        verify_target(info, chunks(bytes(data)))
    assert caught.value.reason == "hash"
    assert caught.value.unit == "F030/DME/swfl_abcd.bin"
    assert str(caught.value).startswith("P-Data mismatch: F030/DME/swfl_abcd.bin (hash): SHA-256")
    assert "ecuworks pdata sync" in str(caught.value)


def test_endless_image_is_refused_by_length_after_length_plus_one_bytes(repo: Path) -> None:
    info = load(repo).target_info("F030", "DME/swfl_abcd.bin")
    pulled = 0

    def endless() -> Iterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"\x00"

    with pytest.raises(PDataMismatch) as caught:
        verify_target(info, endless())
    assert caught.value.reason == "length"
    assert pulled == info.length + 1


def test_short_image_is_refused_by_length(repo: Path) -> None:
    info = load(repo).target_info("F030", "egs_beef.bin")
    with pytest.raises(PDataMismatch) as caught:
        verify_target(info, [b"\x01\x02"])
    assert caught.value.reason == "length"


def test_missing_image_is_reported_by_directory_verify(repo: Path) -> None:
    info = load(repo).target_info("G020", "DME/swfl_abcd.bin")
    (repo / "targets" / info.stored_name).unlink()

    report = verify_directory(repo, repo / "1.root.json")
    assert not report.ok
    assert [(f.unit, f.reason) for f in report.failures] == [("G020/DME/swfl_abcd.bin", "length")]


def test_rolled_back_timestamp_is_refused(repo: Path, keys: KeyRing) -> None:
    old_timestamp = read(repo, "timestamp.json")
    builder = RepositoryBuilder(repo, keys)
    builder.add_target("F030", "egs_beef.bin", b"v2", custom=EGS)
    builder.publish()
    client = TrustedRepository(read(repo, "1.root.json"))
    client.update_timestamp(read(repo, "timestamp.json"))  # v2, trusted before

    with pytest.raises(PDataMismatch) as caught:
        client.update_timestamp(old_timestamp)
    assert (caught.value.unit, caught.value.reason) == ("timestamp", "rollback")


def test_rolled_back_snapshot_is_refused(repo: Path, keys: KeyRing) -> None:
    builder = RepositoryBuilder(repo, keys)
    builder.add_target("F030", "egs_beef.bin", b"v2", custom=EGS)
    builder.publish()
    client = TrustedRepository(read(repo, "1.root.json"))
    client.update_timestamp(read(repo, "timestamp.json"))
    client.update_snapshot(read(repo, "2.snapshot.json"), trusted=True)  # kept locally

    with pytest.raises(PDataMismatch) as caught:
        client.update_snapshot(read(repo, "1.snapshot.json"))
    assert (caught.value.unit, caught.value.reason) == ("snapshot", "rollback")
    assert "F030.json" in str(caught.value)


def test_expired_timestamp_freeze_is_refused(repo: Path) -> None:
    later = datetime.now(UTC) + timedelta(days=2)
    client = TrustedRepository(read(repo, "1.root.json"), now=later)

    with pytest.raises(PDataMismatch) as caught:
        client.update_timestamp(read(repo, "timestamp.json"))
    assert (caught.value.unit, caught.value.reason) == ("timestamp", "expired")


def test_old_series_metadata_with_new_snapshot_is_mix_and_match(repo: Path, keys: KeyRing) -> None:
    builder = RepositoryBuilder(repo, keys)
    builder.add_target("F030", "egs_beef.bin", b"v2", custom=EGS)
    builder.publish()
    client = TrustedRepository(read(repo, "1.root.json"))
    client.update_timestamp(read(repo, "timestamp.json"))
    client.update_snapshot(read(repo, "2.snapshot.json"))
    client.update_targets(read(repo, "1.targets.json"))

    with pytest.raises(PDataMismatch) as caught:
        client.update_delegated("F030", read(repo, "1.F030.json"))  # snapshot lists v2
    assert (caught.value.unit, caught.value.reason) == ("F030", "mix-and-match")


def test_old_snapshot_with_new_timestamp_is_mix_and_match(repo: Path, keys: KeyRing) -> None:
    builder = RepositoryBuilder(repo, keys)
    builder.add_target("F030", "egs_beef.bin", b"v2", custom=EGS)
    builder.publish()
    client = TrustedRepository(read(repo, "1.root.json"))
    client.update_timestamp(read(repo, "timestamp.json"))

    with pytest.raises(PDataMismatch) as caught:
        client.update_snapshot(read(repo, "1.snapshot.json"))  # timestamp lists v2
    assert (caught.value.unit, caught.value.reason) == ("snapshot", "mix-and-match")
    assert "v2" in caught.value.detail


def test_targets_forged_with_an_unknown_key_are_refused(repo: Path) -> None:
    forged = resign(read(repo, "1.targets.json"), CryptoSigner.generate_ed25519())
    client = load(repo)
    fresh = TrustedRepository(read(repo, "1.root.json"))
    fresh.update_timestamp(read(repo, "timestamp.json"))
    fresh.update_snapshot(read(repo, "1.snapshot.json"))
    assert client.targets.version == 1

    with pytest.raises(PDataMismatch) as caught:
        fresh.update_targets(forged)
    assert (caught.value.unit, caught.value.reason) == ("targets", "signature")
    assert "not signed by a trusted key" in str(caught.value)


def test_unsigned_series_metadata_is_refused(repo: Path) -> None:
    client = TrustedRepository(read(repo, "1.root.json"))
    client.update_timestamp(read(repo, "timestamp.json"))
    client.update_snapshot(read(repo, "1.snapshot.json"))
    client.update_targets(read(repo, "1.targets.json"))

    with pytest.raises(PDataMismatch) as caught:
        client.update_delegated("G020", resign(read(repo, "1.G020.json")))
    assert (caught.value.unit, caught.value.reason) == ("G020", "signature")


def test_series_metadata_signed_by_another_series_key_is_refused(repo: Path, keys: KeyRing) -> None:
    client = TrustedRepository(read(repo, "1.root.json"))
    client.update_timestamp(read(repo, "timestamp.json"))
    client.update_snapshot(read(repo, "1.snapshot.json"))
    client.update_targets(read(repo, "1.targets.json"))
    crossed = resign(read(repo, "1.G020.json"), *keys.for_role("F030"))

    with pytest.raises(PDataMismatch) as caught:
        client.update_delegated("G020", crossed)
    assert caught.value.reason == "signature"


@pytest.mark.parametrize("role", ["root", "targets"])
def test_threshold_of_two_signatures_not_met(tmp_path: Path, role: str) -> None:
    keys = KeyRing.generate((*TOP_LEVEL_ROLES, *SERIES), count={role: 2})
    out = tmp_path / "repo"
    builder = RepositoryBuilder(out, keys, thresholds={role: 2})
    builder.add_target("F030", "a.bin", b"a", custom=DME)
    builder.publish()
    assert verify_directory(out, out / "1.root.json").ok
    one_key = keys.for_role(role)[:1]

    if role == "root":
        with pytest.raises(PDataMismatch) as caught:
            TrustedRepository(resign(read(out, "1.root.json"), *one_key))
    else:
        client = TrustedRepository(read(out, "1.root.json"))
        client.update_timestamp(read(out, "timestamp.json"))
        client.update_snapshot(read(out, "1.snapshot.json"))
        with pytest.raises(PDataMismatch) as caught:
            client.update_targets(resign(read(out, "1.targets.json"), *one_key))
    assert (caught.value.unit, caught.value.reason) == (role, "threshold")
    assert "1 of 2" in str(caught.value)


def test_root_rotation_not_signed_by_the_old_root_is_refused(repo: Path, keys: KeyRing) -> None:
    builder = RepositoryBuilder(repo, keys)
    new_key = CryptoSigner.generate_ed25519()
    builder.rotate_keys("root", [new_key])
    builder.publish()
    client = TrustedRepository(read(repo, "1.root.json"))

    with pytest.raises(PDataMismatch) as caught:
        client.update_root(resign(read(repo, "2.root.json"), new_key))
    assert (caught.value.unit, caught.value.reason) == ("root", "signature")


def test_unknown_unit_and_unknown_series_are_refused(repo: Path) -> None:
    client = load(repo)

    with pytest.raises(PDataMismatch) as caught:
        client.target_info("F030", "DME/not_there.bin")
    assert (caught.value.unit, caught.value.reason) == ("F030/DME/not_there.bin", "unknown-unit")
    with pytest.raises(PDataMismatch) as caught:
        client.target_info("E090", "DME/swfl_abcd.bin")
    assert caught.value.reason == "unknown-unit"
    assert "E090" in str(caught.value)
