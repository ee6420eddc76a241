"""Enabling codes from the central backend: ``POST /api/v1/fsc`` with the workstation's token.

The backend issues a code only to a workstation whose workshop holds a grant for the VIN and
the application, and records each code it issues (``ecuworks backend`` grants). The
workstation uses the backend its history goes to (``ecuworks sync configure``): one URL and
one token for both.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

import httpx

from ecuworks.enabling.fsc import FscSource
from ecuworks.errors import ConfigError
from ecuworks.platform.sync import SyncTarget

__all__ = ["backend_fsc_source"]

_TIMEOUT_S: Final = 30.0
_RECORD_BYTES: Final = 93


def backend_fsc_source(target: SyncTarget) -> FscSource:
    """The backend at ``target`` as a source of enabling codes.

    Each call asks the backend for one code. Every failure is a
    :class:`~ecuworks.errors.ConfigError` that names the backend, the application and the
    VIN, and what to do: the job stops at that action with its journal kept.
    """

    async def issue(vin: str, app_id: int, upgrade_index: int, /) -> bytes:
        what = f"the enabling code for application 0x{app_id:04X} on VIN {vin}"
        try:
            async with httpx.AsyncClient(timeout=_TIMEOUT_S) as client:
                response = await client.post(
                    f"{target.url}/api/v1/fsc",
                    json={"vin": vin, "app_id": app_id, "upgrade_index": upgrade_index},
                    headers={"authorization": f"Bearer {target.token}"},
                )
        except httpx.HTTPError as error:
            raise ConfigError(
                f"the backend {target.url} did not answer for {what} ({error!r}); check the "
                "network, then run 'ecuworks resume'"
            ) from error
        if response.status_code == 401:
            raise ConfigError(
                f"the backend {target.url} refused this workstation's token for {what}; set "
                "a valid one with 'ecuworks sync configure', then run 'ecuworks resume'"
            )
        if response.status_code == 403:
            raise ConfigError(
                f"the backend {target.url} refused {what}: {_detail(response)}; once it is "
                "granted, run 'ecuworks resume'"
            )
        if response.status_code == 400:
            raise ConfigError(f"the backend {target.url} refused {what}: {_detail(response)}")
        if response.status_code != 200:
            raise ConfigError(
                f"the backend {target.url} answered {response.status_code} for {what}; try "
                "again with 'ecuworks resume'"
            )
        return _record(response, target.url, what)

    return issue


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else f"status {response.status_code}"


def _record(response: httpx.Response, url: str, what: str) -> bytes:
    try:
        record = base64.b64decode(response.json()["fsc"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        record = b""
    if len(record) != _RECORD_BYTES:
        raise ConfigError(
            f"the backend {url} answered no {_RECORD_BYTES}-byte record for {what}; is it an "
            "ecuworks backend?"
        )
    return record
