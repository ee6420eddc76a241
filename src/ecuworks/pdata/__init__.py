"""Programming data (P-Data): model, signed repository (TUF), importers, demo data, sync.

Every byte sent to an ECU is verified against signed metadata first (DESIGN.md).
"""
