"""Byte codecs with no I/O: DoIP, HSFZ, UDS helpers and the trade's identifiers.

Nothing here awaits, opens a socket or reads a clock; time is passed in. Each codec offers
``parse(bytes) -> message`` and ``message.encode() -> bytes``, and raises only
:class:`ecuworks.errors.ParseError` on bad input.
"""
