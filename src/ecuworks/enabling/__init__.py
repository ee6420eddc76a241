"""Enabling codes (FSC) on the workstation: check a code, write it, read the ECU's verdict.

The trade's FSC ("Freischaltcode") unlocks one function on one vehicle; see
:mod:`ecuworks.wire.fsc` for the record and :mod:`ecuworks.enabling.fsc` for the API.
"""

from ecuworks.enabling.fsc import (
    CODING_LEVEL,
    FscCheck,
    FscSource,
    ensure_accepted,
    read_fsc_records,
    read_fsc_status,
    verify_fsc,
    write_fsc,
    write_fscs,
)

__all__ = [
    "CODING_LEVEL",
    "FscCheck",
    "FscSource",
    "ensure_accepted",
    "read_fsc_records",
    "read_fsc_status",
    "verify_fsc",
    "write_fsc",
    "write_fscs",
]
