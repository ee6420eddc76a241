"""Verify side of the P-Data repository: a core that only takes bytes.

``TrustedRepository`` wraps python-tuf's ``TrustedMetadataSet`` (which does the TUF client
workflow's checks: signatures and thresholds, rollback, freeze, mix-and-match) and
translates its errors into :class:`PDataMismatch` naming the role or unit. Downloading,
size caps on the wire and saving are the I/O shell's job (``pdata sync``); this module
never opens a socket. ``verify_directory`` is the small file-reading shell behind
``ecuworks pdata verify DIR``.

Load order is TUF's: root (and any newer roots), timestamp, snapshot, targets, series.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, cast

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp
from tuf.api.serialization import DeserializationError
from tuf.ngclient._internal.trusted_metadata_set import TrustedMetadataSet
from tuf.ngclient.config import EnvelopeType

from ecuworks.errors import MismatchReason, PDataMismatch

__all__ = ["TargetInfo", "TargetVerifier", "TrustedRepository", "verify_target"]

_SigDetail = Callable[[], tuple[MismatchReason, str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetInfo:
    """What the signed metadata says about one image.

    Attributes:
        series: the series (delegated role) that signed it.
        path: the target path, ``<series>/<path in series>``.
        length: its exact length in bytes.
        hashes: hex digests by algorithm; ``sha256`` is always there.
        custom: the P-Data fields (``sgbm``, ``process_class``, ``hardware``, ``release``).
    """

    series: str
    path: str
    length: int
    hashes: Mapping[str, str]
    custom: Mapping[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """The SHA-256 hex digest the bytes must have."""
        return self.hashes["sha256"]

    @property
    def stored_name(self) -> str:
        """The consistent-snapshot file name under ``targets/``: ``<dir>/<sha256>.<name>``."""
        p = PurePosixPath(self.path)
        return str(p.parent / f"{self.sha256}.{p.name}")


class TrustedRepository:
    """Verified P-Data metadata, fed as bytes, starting from a trusted root.

    Args:
        root_bytes: the root metadata the workshop trusts (shipped or pinned at setup).
        now: the time to check expiry against (tests freeze it); default the current time.

    Raises:
        PDataMismatch: the trusted root itself does not verify.
    """

    def __init__(self, root_bytes: bytes, *, now: datetime | None = None) -> None:
        with _translate("root", "rollback", lambda: _self_signed_detail(root_bytes)):
            self._set = TrustedMetadataSet(root_bytes, EnvelopeType.METADATA)
        if now is not None:
            self._set.reference_time = now

    @property
    def root(self) -> Root:
        """The current trusted root."""
        return self._set.root

    @property
    def timestamp(self) -> Timestamp:
        """The trusted timestamp."""
        return self._set.timestamp

    @property
    def snapshot(self) -> Snapshot:
        """The trusted snapshot."""
        return self._set.snapshot

    @property
    def targets(self) -> Targets:
        """The trusted top-level targets."""
        return self._set.targets

    @property
    def series(self) -> tuple[str, ...]:
        """The series the top-level targets delegate to, in order."""
        delegations = self._set.targets.delegations
        return tuple(delegations.roles) if delegations and delegations.roles else ()

    def update_root(self, data: bytes) -> Root:
        """Verify the next root version (signed by the old and the new root keys)."""
        old = self._set.root
        with _translate("root", "rollback", lambda: _signature_detail(old, "root", data, True)):
            try:
                return self._set.update_root(data)
            except tuf_errors.BadVersionNumberError as exc:
                version = _peek_version(data)
                reason: MismatchReason = "rollback" if version <= old.version else "mix-and-match"
                raise _mismatch("root", reason, f"{exc} (trusted v{old.version})") from exc

    def update_timestamp(self, data: bytes) -> Timestamp:
        """Verify a timestamp; an equal version keeps the trusted one."""
        with _translate("timestamp", "rollback", self._root_sig("timestamp", data)):
            try:
                return self._set.update_timestamp(data)
            except tuf_errors.EqualVersionNumberError:
                return self._set.timestamp

    def update_snapshot(self, data: bytes, *, trusted: bool = False) -> Snapshot:
        """Verify a snapshot against the timestamp and any snapshot trusted before.

        Args:
            data: the snapshot bytes.
            trusted: ``True`` for a snapshot this client verified before (kept locally).
        """
        previous = self._set.get(Snapshot.type)
        with _translate("snapshot", "rollback", self._root_sig("snapshot", data)):
            try:
                return self._set.update_snapshot(data, trusted=trusted)
            except tuf_errors.BadVersionNumberError as exc:
                loaded = self._set.snapshot
                older = previous is not None and (
                    loaded is previous or loaded.version < previous.version
                )
                expected = self._set.timestamp.snapshot_meta.version
                if older:
                    raise _mismatch("snapshot", "rollback", str(exc)) from exc
                raise _mismatch(
                    "snapshot",
                    "mix-and-match",
                    f"timestamp lists snapshot v{expected}, got v{loaded.version}",
                ) from exc

    def update_targets(self, data: bytes) -> Targets:
        """Verify the top-level targets against the snapshot."""
        return self._update_delegate("targets", "root", data)

    def update_delegated(self, series: str, data: bytes) -> Targets:
        """Verify the targets metadata of one series, delegated by the top-level targets."""
        if series not in self.series:
            raise _mismatch(series, "unknown-unit", "no such series in the signed targets")
        return self._update_delegate(series, "targets", data)

    def target_info(self, series: str, path: str) -> TargetInfo:
        """Look up one image of a series.

        Args:
            series: the series, e.g. ``"F030"``.
            path: the image's path inside the series (without the ``<series>/`` prefix).

        Raises:
            PDataMismatch: ``unknown-unit`` if the signed metadata does not list it.
            RuntimeError: the series' metadata was not loaded yet.
        """
        full = f"{series}/{path}"
        if series not in self.series:
            raise _mismatch(full, "unknown-unit", f"series {series} is not in the signed data")
        role = self._set.get(series)
        if role is None:
            raise RuntimeError(f"load the metadata of series {series} first")
        target = cast("Targets", role).targets.get(full)
        if target is None:
            raise _mismatch(full, "unknown-unit", "no such unit in the signed data")
        return _info(series, target.path, target.length, target.hashes, target.custom)

    def targets_of(self, series: str) -> tuple[TargetInfo, ...]:
        """Every image the loaded metadata of ``series`` lists."""
        role = cast("Targets", self._set[series])
        return tuple(
            _info(series, t.path, t.length, t.hashes, t.custom) for t in role.targets.values()
        )

    def _update_delegate(self, role: str, delegator: str, data: bytes) -> Targets:
        def detail() -> tuple[MismatchReason, str]:
            parent = cast("Root | Targets", self._set[delegator])
            return _signature_detail(parent, role, data, False)

        with _translate(role, "mix-and-match", detail):
            try:
                return self._set.update_delegated_targets(data, role, delegator)
            except tuf_errors.RepositoryError as exc:
                if type(exc) is tuf_errors.RepositoryError and "does not contain" in str(exc):
                    raise _mismatch(role, "unknown-unit", "the snapshot does not list it") from exc
                raise

    def _root_sig(self, role: str, data: bytes) -> _SigDetail:
        return lambda: _signature_detail(self._set.root, role, data, False)

    @staticmethod
    def verify_target(info: TargetInfo, chunks: Iterable[bytes]) -> None:
        """Check streamed bytes against ``info``; see :func:`verify_target`."""
        _verify_stream(info, chunks)


def verify_target(info: TargetInfo, chunks: Iterable[bytes]) -> None:
    """Check streamed bytes against ``info`` before any of them may reach an ECU.

    Reads at most ``info.length + 1`` bytes, so endless data costs nothing.

    Raises:
        PDataMismatch: ``length`` if the data is shorter or longer, ``hash`` if the
            SHA-256 differs.
    """
    _verify_stream(info, chunks)


def _verify_stream(info: TargetInfo, chunks: Iterable[bytes]) -> None:
    verifier = TargetVerifier(info)
    for chunk in chunks:
        verifier.feed(chunk)
    verifier.finish()


class TargetVerifier:
    """Checks an image against its signed length and SHA-256 as its bytes stream past.

    For a writer that must not read its file back: :meth:`feed` each chunk as it arrives
    and keep what it returns, then :meth:`finish`.
    """

    def __init__(self, info: TargetInfo) -> None:
        self._info = info
        self._digest = hashlib.sha256()
        self.seen = 0

    def feed(self, chunk: bytes) -> bytes:
        """Take the next bytes; return the part that may be kept (at most length + 1 in all).

        Raises:
            PDataMismatch: ``length``, as soon as the data runs past the signed length.
        """
        piece = chunk[: self._info.length + 1 - self.seen]
        self.seen += len(piece)
        self._digest.update(piece)
        if self.seen > self._info.length:
            raise _mismatch(
                self._info.path, "length", f"more than the signed {self._info.length} bytes"
            )
        return piece

    def finish(self) -> None:
        """Raise unless exactly the signed bytes were fed.

        Raises:
            PDataMismatch: ``length`` if short, ``hash`` if the SHA-256 differs.
        """
        info = self._info
        if self.seen < info.length:
            raise _mismatch(
                info.path, "length", f"{self.seen} bytes, signed length is {info.length}"
            )
        if not hmac.compare_digest(self._digest.hexdigest(), info.sha256):
            raise _mismatch(info.path, "hash", "SHA-256 differs from the signed metadata")


# -- error translation ---------------------------------------------------------------------


def _mismatch(unit: str | None, reason: MismatchReason, detail: str) -> PDataMismatch:
    return PDataMismatch(unit=unit, reason=reason, detail=detail)


@contextmanager
def _translate(
    role: str, version_reason: MismatchReason, sig_detail: _SigDetail | None = None
) -> Iterator[None]:
    """Turn python-tuf's repository errors into ``PDataMismatch`` for ``role``."""
    try:
        yield
    except PDataMismatch:
        raise
    except tuf_errors.UnsignedMetadataError as exc:
        reason, detail = sig_detail() if sig_detail else ("signature", str(exc))
        raise _mismatch(role, reason, detail) from exc
    except tuf_errors.ExpiredMetadataError as exc:
        raise _mismatch(role, "expired", f"{exc} (the metadata may be frozen)") from exc
    except tuf_errors.LengthOrHashMismatchError as exc:
        raise _mismatch(role, "hash", str(exc)) from exc
    except tuf_errors.BadVersionNumberError as exc:
        raise _mismatch(role, version_reason, str(exc)) from exc
    except DeserializationError as exc:
        raise _mismatch(role, "signature", f"not valid TUF metadata: {exc}") from exc
    except tuf_errors.RepositoryError as exc:
        # e.g. a newer snapshot dropping a role, or metadata of the wrong type
        raise _mismatch(role, version_reason, str(exc)) from exc


def _signature_detail(
    delegator: Root | Targets, role: str, data: bytes, is_root: bool
) -> tuple[MismatchReason, str]:
    """Say how many of the required keys signed ``data`` (e.g. "1 of 2 signatures").

    Some valid signatures but too few is ``threshold``; none at all is ``signature``.
    """
    try:
        md = Metadata[Any].from_bytes(data)
    except DeserializationError:
        return "signature", "not valid TUF metadata"
    result = delegator.get_verification_result(role, md.signed_bytes, md.signatures)
    if is_root and result.verified and isinstance(md.signed, Root):
        # signed by the old root: it is the new root's own keys that fall short
        result = md.signed.get_verification_result(role, md.signed_bytes, md.signatures)
    if not result.signed:
        return "signature", f"not signed by a trusted key ({result.threshold} required)"
    return (
        "threshold",
        f"only {len(result.signed)} of {result.threshold} required signatures",
    )


def _self_signed_detail(root_bytes: bytes) -> tuple[MismatchReason, str]:
    """Say how many of its own keys signed a root that is trusted by fiat."""
    try:
        root = Metadata[Root].from_bytes(root_bytes).signed
    except DeserializationError:
        return "signature", "not valid TUF metadata"
    return _signature_detail(root, "root", root_bytes, False)


def _peek_version(data: bytes) -> int:
    version: int = Metadata[Any].from_bytes(data).signed.version
    return version


def _info(
    series: str, path: str, length: int, hashes: Mapping[str, str], custom: Any
) -> TargetInfo:
    if "sha256" not in hashes:
        raise _mismatch(path, "hash", "the signed metadata gives no SHA-256")
    return TargetInfo(
        series=series,
        path=path,
        length=length,
        hashes=dict(hashes),
        custom=dict(custom) if isinstance(custom, Mapping) else {},
    )
