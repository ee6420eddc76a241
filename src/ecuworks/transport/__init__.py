"""Asyncio links to the ECUs of one vehicle: DoIP, HSFZ and ISO-TP over CAN.

Every transport implements :class:`ecuworks.transport.base.Link`; the UDS client above
neither knows nor cares which one it talks through.
"""
