"""VO coding: coding rules and the vehicle order give the bytes written to an ECU."""
