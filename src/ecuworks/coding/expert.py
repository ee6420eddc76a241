"""Parameter-level (expert) coding: what one named parameter holds, may hold, and should hold.

The trade's expert mode reads and sets single coding parameters by hand. Everything here
but :func:`read_records` is pure: it takes the ECU's coding layout (P-Data) and the records
read from the ECU. Setting a parameter is not done here: it runs as a one-action plan
through the journal like every other job (``ecuworks.plan.jobs.build_expert_plan``), with
:func:`ecuworks.coding.ncd.coded_records` writing only that parameter.
"""

from __future__ import annotations

from collections.abc import Mapping

from ecuworks.errors import ConfigError
from ecuworks.pdata.catalog import Catalog
from ecuworks.pdata.model import CodingLayout, CodingParameter
from ecuworks.uds.client import UdsClient
from ecuworks.wire.vo import VehicleOrder

__all__ = [
    "check_value",
    "decode_value",
    "find_parameter",
    "parameter_values",
    "read_records",
    "vo_value",
]


def find_parameter(layout: CodingLayout, parameter: str) -> CodingParameter:
    """Return the layout's parameter of that name.

    Raises:
        ConfigError: the layout has no such parameter; the message lists those it has.
    """
    for candidate in layout.parameters:
        if candidate.name == parameter:
            return candidate
    known = ", ".join(p.name for p in layout.parameters) or "none: the ECU is not coded"
    raise ConfigError(f"no coding parameter {parameter!r}; the ECU's parameters are: {known}")


def parameter_values(layout: CodingLayout, parameter: str) -> list[str]:
    """Return the value names a parameter may take, in the P-Data's order.

    Raises:
        ConfigError: the layout has no such parameter.
    """
    return list(find_parameter(layout, parameter).values)


def check_value(layout: CodingLayout, parameter: str, value: str) -> None:
    """Check that ``value`` is one of the parameter's value names.

    Raises:
        ConfigError: no such parameter, or no such value (the message lists the values).
    """
    values = parameter_values(layout, parameter)
    if value not in values:
        raise ConfigError(
            f"coding parameter {parameter} has no value {value!r}; it takes: {', '.join(values)}"
        )


def decode_value(layout: CodingLayout, records: Mapping[int, bytes], parameter: str) -> str | None:
    """Return the value name the parameter's bits hold in ``records``.

    Args:
        layout: the ECU's coding layout.
        records: the coding records as read from the ECU, by DID.
        parameter: the parameter's name.

    Returns:
        The value name, or None when the bits hold a number no value is named for.

    Raises:
        ConfigError: no such parameter, or its record missing or too short.
    """
    field = find_parameter(layout, parameter)
    data = records.get(field.did)
    if data is None:
        raise ConfigError(f"coding record 0x{field.did:04X} of {parameter} was not read")
    if len(data) <= field.byte:
        raise ConfigError(
            f"coding record 0x{field.did:04X} is {len(data)} bytes, too short for {parameter} "
            f"(byte {field.byte}); the ECU's software and the P-Data do not match"
        )
    bits = (data[field.byte] & field.mask) >> field.shift
    # Several names for one number would be a P-Data mistake; the first one is the answer.
    return next((name for name, number in field.values.items() if number == bits), None)


def vo_value(
    catalog: Catalog, series: str, address: int, vo: VehicleOrder, parameter: str
) -> str | None:
    """Return the value the vehicle order's coding rules give the parameter (None: no rule)."""
    return catalog.coding_values(series, address, vo).get(parameter)


async def read_records(client: UdsClient, layout: CodingLayout) -> dict[int, bytes]:
    """Read every coding record of the layout, in layout order.

    Reading needs no session change: an ECU's application answers ReadDataByIdentifier for
    its coding DIDs in any session, the default one included; only writing them needs the
    coding session (0x41). The bootloader has no coding DIDs (NRC 0x31).

    Raises:
        UdsError: the ECU refused a read (e.g. it runs its bootloader).
        LinkError: the ECU or the link went quiet.
    """
    return {record.did: await client.read_did(record.did) for record in layout.records}
