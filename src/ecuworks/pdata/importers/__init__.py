"""Importers: flash images (Intel HEX, S-record, raw binary) and ODX-F in PDX containers.

Everything here turns files into :class:`ImportedImage` / :class:`OdxFlashUnit` values with
ECU addresses; malformed input raises :class:`ecuworks.errors.ParseError` naming the file.
"""

from __future__ import annotations

from .image import (
    CHUNK_SIZE,
    FileSegment,
    ImageFormat,
    ImportedImage,
    Segment,
    load_image,
    parse_records,
)
from .odx import OdxFlashUnit, load_pdx

__all__ = [
    "CHUNK_SIZE",
    "FileSegment",
    "ImageFormat",
    "ImportedImage",
    "OdxFlashUnit",
    "Segment",
    "load_image",
    "load_pdx",
    "parse_records",
]
