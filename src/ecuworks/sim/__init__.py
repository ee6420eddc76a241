"""The simulated vehicle: gateway, ECUs, buses, battery and VCI on real loopback sockets.

An implementation of the server side independent of the client: it imports
``ecuworks.wire``, ``ecuworks.profiles`` and ``ecuworks.errors`` only. docs/adr/0003 fixes
its parts and the contracts between them.
"""
