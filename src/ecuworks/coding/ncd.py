"""Coded bytes (the trade's NCD) from the ECU's coding layout and the values the VO gives.

Pure: :func:`coded_records` takes the records read from the ECU and returns what to write.
Bits of a record that no parameter names are kept as the ECU has them; a record's ``sum8``
checksum is computed afresh.
"""

from __future__ import annotations

from collections.abc import Mapping

from ecuworks.errors import ConfigError
from ecuworks.pdata.model import CodingLayout

__all__ = ["coded_records"]


def coded_records(
    layout: CodingLayout, values: Mapping[str, str], current: Mapping[int, bytes]
) -> dict[int, bytes]:
    """Return every coding record with the parameters set to ``values``.

    Args:
        layout: the ECU's coding records and parameters.
        values: parameter name -> value name (``Catalog.coding_values``).
        current: the records as read from the ECU, by DID.

    Returns:
        DID -> record to write, for every record of the layout, in layout order.

    Raises:
        ConfigError: a record missing from ``current`` or of the wrong length, a parameter
            the layout does not have, or a value name the parameter does not have.
    """
    records: dict[int, bytearray] = {}
    for record in layout.records:
        data = current.get(record.did)
        if data is None:
            raise ConfigError(f"coding record 0x{record.did:04X} was not read from the ECU")
        if len(data) != record.length:
            raise ConfigError(
                f"coding record 0x{record.did:04X} is {len(data)} bytes, the P-Data says "
                f"{record.length}; the ECU's software and the P-Data do not match"
            )
        records[record.did] = bytearray(data)
    parameters = {p.name: p for p in layout.parameters}
    for name, value in values.items():
        parameter = parameters.get(name)
        if parameter is None:
            raise ConfigError(f"coding parameter {name!r} is not in the ECU's coding layout")
        field = parameter.values.get(value)
        if field is None:
            known = ", ".join(parameter.values)
            raise ConfigError(f"coding parameter {name} has no value {value!r} (has: {known})")
        coded = records[parameter.did]
        coded[parameter.byte] = (coded[parameter.byte] & ~parameter.mask & 0xFF) | (
            (field << parameter.shift) & parameter.mask
        )
    return {r.did: r.with_checksum(bytes(records[r.did])) for r in layout.records}
