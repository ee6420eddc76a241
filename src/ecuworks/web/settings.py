"""What the web UI is started with."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from ecuworks.enabling.fsc import FscSource

__all__ = ["WebSettings"]


@dataclass(frozen=True, kw_only=True)
class WebSettings:
    """The workstation's settings.

    Attributes:
        home: the data directory (P-Data, journal, the embedded database).
        db_url: the database URL (``sqlite:///...`` or ``postgresql://...``).
        workstation: this workstation's name, recorded in the history and reservations.
        interfaces: vehicle interfaces to know from the start: (name, vci_url, admin_url).
        secure_cookies: mark cookies Secure (behind HTTPS); off on loopback.
        time_scale: the simulated vehicle's time scale, for the report (1 for a real car).
        fsc_source: where enabling codes come from (retrofit, replacement); None: nowhere,
            and a job that needs a new code fails saying so.
        issuer_key: the issuer's public key, to explain a code an ECU refuses.
        hardware_wait_s: how long a replacement waits for the technician's swap.
    """

    home: Path
    db_url: str
    workstation: str = field(default_factory=socket.gethostname)
    interfaces: tuple[tuple[str, str, str | None], ...] = ()
    secure_cookies: bool = False
    time_scale: float = 1.0
    fsc_source: FscSource | None = None
    issuer_key: bytes | None = None
    hardware_wait_s: float = 900.0
