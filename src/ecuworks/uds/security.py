"""Key algorithms for SecurityAccess (0x27), plugged in by name through entry points.

An ECU unlocks a security level when the tester answers its seed with the right key
(ISO 14229-1:2020, 10.4). How the key follows from the seed is the vehicle maker's secret;
ecuworks looks algorithms up by name in the entry point group
``ecuworks.security_algorithms``, so a workshop can install its makers' algorithms as
separate packages. ecuworks itself ships the demo algorithm of the simulated vehicles::

    [project.entry-points."ecuworks.security_algorithms"]
    hmac-sha256 = "ecuworks.uds.security:hmac_sha256"
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from importlib.metadata import entry_points

from ecuworks.errors import SecurityAlgorithmError

__all__ = [
    "ENTRY_POINT_GROUP",
    "KeyAlgorithm",
    "available_algorithms",
    "hmac_sha256",
    "load_algorithm",
]

ENTRY_POINT_GROUP = "ecuworks.security_algorithms"

KeyAlgorithm = Callable[[bytes, bytes, int], bytes]
"""``algorithm(seed, secret, level) -> key``: computes the key for one seed."""


def hmac_sha256(seed: bytes, secret: bytes, level: int) -> bytes:
    """Compute the demo key: HMAC-SHA256(secret, seed) truncated to the seed's length.

    This is the algorithm of the simulated vehicles (DESIGN.md); ``level`` does not enter
    the key. Seeds longer than 32 bytes get a 32-byte key.

    Args:
        seed: the seed from the ECU's ``67 <level> <seed>`` answer.
        secret: the ECU's secret.
        level: the security level (odd sub-function) being unlocked; unused.

    Returns:
        The key to send with ``27 <level + 1> <key>``.
    """
    del level  # part of the KeyAlgorithm signature; this algorithm does not use it
    return hmac.new(secret, seed, hashlib.sha256).digest()[: len(seed)]


def available_algorithms() -> list[str]:
    """Return the names of every installed key algorithm, sorted."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def load_algorithm(name: str) -> KeyAlgorithm:
    """Load the key algorithm registered under ``name``.

    Args:
        name: the entry point name, e.g. ``"hmac-sha256"``.

    Returns:
        The algorithm.

    Raises:
        SecurityAlgorithmError: no algorithm of that name is installed, or its entry point
            does not load or is not callable.
    """
    found = entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not found:
        known = ", ".join(available_algorithms()) or "none"
        raise SecurityAlgorithmError(
            f"no security key algorithm named {name!r} is installed (known: {known}); "
            f"install the package that provides it under the entry point group "
            f"{ENTRY_POINT_GROUP!r}"
        )
    entry_point = next(iter(found))
    try:
        algorithm = entry_point.load()
    except Exception as exc:  # a plugin may fail in any way while importing
        raise SecurityAlgorithmError(
            f"security key algorithm {name!r} ({entry_point.value}) failed to load: {exc}"
        ) from exc
    if not callable(algorithm):
        raise SecurityAlgorithmError(
            f"security key algorithm {name!r} ({entry_point.value}) is not callable"
        )
    return algorithm  # type: ignore[no-any-return]
