"""Vehicle identification: VIN, vehicle order, I-level triple, actual SVT, battery, ECU states.

The trade calls the result of this step the vehicle's identification; its SVT is the actual
(``Ist``) SVT the measures plan compares with the target (``Soll``) SVT (DOMAIN.md).
"""

from __future__ import annotations

from ecuworks.vehicle.identify import (
    GATEWAY_CANDIDATES,
    EcuMode,
    EcuState,
    Identification,
    identify,
)

__all__ = ["GATEWAY_CANDIDATES", "EcuMode", "EcuState", "Identification", "identify"]
