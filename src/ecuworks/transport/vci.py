"""The VCI's management interface: what it reports, and its reservation (DOMAIN.md, "VCI").

A workshop's vehicle interface is shared by several workstations and exactly one of them
may drive the car at a time. The interface answers on an HTTP JSON address beside its
diagnostic ports (the simulator serves it on its control port)::

    GET    /vci               {"firmware", "vin", "battery_volts", "owner", "lease_expires_in"}
    POST   /vci/reservation   {"owner", "lease_s"} -> 200,
                              or 409 {"error", "owner", "expires_in"}
    DELETE /vci/reservation   {"owner"} -> 200 {"released": bool}, or 409

:class:`VciAdmin` is the client; every failure comes out as one of ours: the address not
answering as :class:`~ecuworks.errors.LinkError`, another owner's lease as
:class:`~ecuworks.errors.InterfaceReserved`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import httpx

from ecuworks.errors import ConfigError, InterfaceReserved, LinkError

__all__ = ["VciAdmin", "VciInfo"]

_TIMEOUT_S: Final = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class VciInfo:
    """What the interface reports.

    Attributes:
        firmware: its firmware version.
        vin: the VIN of the connected vehicle.
        battery_volts: the battery voltage it measures.
        owner: who holds the reservation, or None.
        lease_expires_in: seconds left of that lease, or None.
    """

    firmware: str
    vin: str
    battery_volts: float
    owner: str | None
    lease_expires_in: float | None


class VciAdmin:
    """Client of one VCI's management address.

    Args:
        url: ``http://HOST:PORT`` of the interface's management API.
        timeout: seconds to wait for each answer.
        transport: an httpx transport (tests); None for real sockets.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = _TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError(
                f"the VCI management address must look like http://127.0.0.1:8765, got {url!r}"
            )
        self.url = url.rstrip("/")
        self._client = httpx.AsyncClient(base_url=self.url, timeout=timeout, transport=transport)

    async def __aenter__(self) -> VciAdmin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()

    async def info(self) -> VciInfo:
        """What the interface reports now."""
        body = await self._call("GET", "/vci")
        try:
            return VciInfo(
                firmware=str(body["firmware"]),
                vin=str(body["vin"]),
                battery_volts=float(body["battery_volts"]),
                owner=None if body.get("owner") is None else str(body["owner"]),
                lease_expires_in=(
                    None
                    if body.get("lease_expires_in") is None
                    else float(body["lease_expires_in"])
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LinkError(f"the VCI at {self.url} answered /vci without {exc}") from exc

    async def reserve(self, owner: str, lease_s: float) -> float:
        """Reserve the interface for ``owner``, or renew its lease.

        Returns:
            Seconds until the lease runs out unless renewed.

        Raises:
            InterfaceReserved: another owner holds it.
            LinkError: the address does not answer, or answers something else.
        """
        body = await self._call("POST", "/vci/reservation", {"owner": owner, "lease_s": lease_s})
        try:
            return float(body["expires_in"])
        except (KeyError, TypeError, ValueError) as exc:
            raise LinkError(
                f"the VCI at {self.url} answered the reservation without {exc}"
            ) from exc

    async def release(self, owner: str) -> bool:
        """Give the interface back; False if ``owner`` no longer held it (lease ran out)."""
        body = await self._call("DELETE", "/vci/reservation", {"owner": owner})
        return bool(body.get("released"))

    async def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        try:
            response = await self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise LinkError(
                f"the VCI's management address {self.url} does not answer ({exc}); "
                "check the address and that the interface is on"
            ) from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise LinkError(
                f"the VCI at {self.url} answered {method} {path} with HTTP "
                f"{response.status_code} and no JSON object; is this a VCI's management address?"
            )
        if response.status_code == httpx.codes.CONFLICT:
            owner = str(data.get("owner", "another workstation"))
            left = data.get("expires_in")
            raise InterfaceReserved(
                str(data.get("error", f"the VCI is reserved by {owner!r}")),
                owner=owner,
                expires_in=float(left) if isinstance(left, int | float) else None,
            )
        if response.status_code >= 400:
            raise LinkError(
                f"the VCI at {self.url} refused {method} {path}: "
                f"{data.get('error', response.status_code)}"
            )
        return data
