"""Flash data from an ODX-F description in a PDX container (ASAM MCD-2D, FLASH category).

odxtools parses the ODX-F; the data itself is read here: external data files straight
from the PDX zip as bytes (odxtools would decode them as text), internal data from the
FLASHDATA's DATA element. Each DATABLOCK becomes one :class:`OdxFlashUnit` whose segments
carry ECU addresses: SOURCE-START-ADDRESS plus the DATABLOCK's TARGET-ADDR-OFFSET.

How a SEGMENT finds its bytes depends on the FLASHDATA's DATAFORMAT:

* INTEL-HEX, MOTOROLA-S: the records carry addresses; a SEGMENT takes the bytes from its
  SOURCE-START-ADDRESS on, for UNCOMPRESSED-SIZE bytes (or up to SOURCE-END-ADDRESS,
  inclusive); without SEGMENTS the records' own segments are used.
* BINARY: the data has no addresses, so the SEGMENTS lie one after the other in it, in
  document order, and their sizes must add up to the data's length.

Encrypted or compressed data (an ENCRYPT-COMPRESS-METHOD other than 0) and USER-DEFINED
formats are refused: ecuworks cannot check what it cannot read.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal
from xml.etree import ElementTree

import odxtools
from odxtools.database import Database
from odxtools.datablock import Datablock
from odxtools.dataformatselection import DataformatSelection
from odxtools.encryptcompressmethod import EncryptCompressMethod
from odxtools.exceptions import OdxError
from odxtools.externflashdata import ExternFlashdata
from odxtools.flashdata import Flashdata
from odxtools.internflashdata import InternFlashdata
from odxtools.negoffset import NegOffset
from odxtools.posoffset import PosOffset
from odxtools.segment import Segment as OdxSegment

from ecuworks.errors import ParseError

from .image import ImportedImage, Segment, check_segments, parse_records

__all__ = ["OdxFlashUnit", "load_pdx"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OdxFlashUnit:
    """One DATABLOCK of an ODX-F description, with its data placed at ECU addresses.

    Attributes:
        name: the DATABLOCK's SHORT-NAME.
        flash: the FLASH's SHORT-NAME.
        ecu_mem: the ECU-MEM's SHORT-NAME.
        session: the SESSION that downloads this block, or None if no session refers to it.
        data_type: the DATABLOCK's TYPE (e.g. CODE, DATA, BOOT).
        logical_block_index: LOGICAL-BLOCK-INDEX, if given.
        segments: the block's bytes at their ECU addresses, sorted by address.
        source: where the data came from, for messages.
    """

    name: str
    flash: str
    ecu_mem: str
    session: str | None
    data_type: str
    logical_block_index: int | None
    segments: tuple[Segment, ...]
    source: str

    def image(self) -> ImportedImage:
        """The block as an :class:`ImportedImage` (for hashing and streaming)."""
        return ImportedImage(segments=self.segments, source=self.source)


def load_pdx(path: Path) -> list[OdxFlashUnit]:
    """Import every DATABLOCK of every FLASH / ECU-MEM in a PDX container.

    A DATABLOCK referenced by several SESSIONs yields one unit per session, in document
    order; one referenced by none yields a unit with ``session=None``.

    Args:
        path: the PDX (zip) file.

    Returns:
        The flash units, in document order.

    Raises:
        ParseError: the PDX or its ODX-F cannot be read, a data file is missing, or the
            data does not fit the SEGMENTS; the message names the PDX and the element.
    """
    try:
        database = odxtools.load_pdx_file(path)
        with zipfile.ZipFile(path) as pdx:
            members = {name: pdx.read(name) for name in _data_file_names(database, pdx)}
    except (OSError, zipfile.BadZipFile, ElementTree.ParseError) as exc:
        raise ParseError(f"{path}: not a readable PDX container: {exc}") from exc
    except (OdxError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ParseError(f"{path}: the ODX data in this PDX is not valid: {exc}") from exc

    units: list[OdxFlashUnit] = []
    for flash in database.flashs:
        for ecu_mem in flash.ecu_mems:
            mem = ecu_mem.mem
            referenced: set[str] = set()
            plan: list[tuple[str | None, Datablock]] = []
            for session in mem.sessions:
                for datablock in session.datablocks:
                    referenced.add(datablock.short_name)
                    plan.append((session.short_name, datablock))
            plan += [(None, db) for db in mem.datablocks if db.short_name not in referenced]
            for session_name, datablock in plan:
                where = f"{path}: {flash.short_name}/{ecu_mem.short_name}/{datablock.short_name}"
                units.append(
                    OdxFlashUnit(
                        name=datablock.short_name,
                        flash=flash.short_name,
                        ecu_mem=ecu_mem.short_name,
                        session=session_name,
                        data_type=datablock.data_type,
                        logical_block_index=datablock.logical_block_index,
                        segments=_datablock_segments(datablock, members, where),
                        source=where,
                    )
                )
    return units


def _data_file_names(database: Database, pdx: zipfile.ZipFile) -> set[str]:
    """Zip member names of the external data files any FLASHDATA refers to."""
    names: set[str] = set()
    for flash in database.flashs:
        for ecu_mem in flash.ecu_mems:
            for flashdata in ecu_mem.mem.flashdatas:
                if isinstance(flashdata, ExternFlashdata):
                    member = _find_member(pdx, flashdata.datafile.value.strip())
                    if member is not None:
                        names.add(member)
    return names


def _find_member(pdx: zipfile.ZipFile, name: str) -> str | None:
    members = pdx.namelist()
    if name in members:
        return name
    wanted = PurePosixPath(name.replace("\\", "/")).name
    matches = [m for m in members if PurePosixPath(m).name == wanted]
    return matches[0] if len(matches) == 1 else None


def _datablock_segments(
    datablock: Datablock, members: dict[str, bytes], where: str
) -> tuple[Segment, ...]:
    flashdata = datablock.flashdata
    if flashdata is None:
        raise ParseError(f"{where}: the DATABLOCK refers to no FLASHDATA")
    where = f"{where} (FLASHDATA {flashdata.short_name})"
    _refuse_encoded(flashdata.encrypt_compress_method, where)
    offset = _target_offset(datablock)
    selection = flashdata.dataformat.selection
    raw = _flashdata_bytes(flashdata, members, where)

    if selection is DataformatSelection.BINARY:
        segments = _place_binary(raw, datablock.segments, where)
    elif selection in (DataformatSelection.INTEL_HEX, DataformatSelection.MOTOROLA_S):
        fmt: Literal["ihex", "srec"] = (
            "ihex" if selection is DataformatSelection.INTEL_HEX else "srec"
        )
        records = parse_records(raw, format=fmt, source=where)
        segments = _cut_records(records, datablock.segments, where)
    else:
        raise ParseError(
            f"{where}: DATAFORMAT {selection.value} cannot be read by ecuworks; "
            "convert the data to INTEL-HEX, MOTOROLA-S or BINARY"
        )

    placed = tuple(
        sorted(
            (Segment(address=s.address + offset, data=s.data) for s in segments),
            key=lambda s: s.address,
        )
    )
    if placed and placed[0].address < 0:
        raise ParseError(f"{where}: TARGET-ADDR-OFFSET moves the data below address 0")
    check_segments(placed, where)
    return placed


def _flashdata_bytes(flashdata: Flashdata, members: dict[str, bytes], where: str) -> bytes:
    if isinstance(flashdata, ExternFlashdata):
        name = flashdata.datafile.value.strip()
        found = [data for member, data in members.items() if _same_file(member, name)]
        if len(found) != 1:
            raise ParseError(f"{where}: DATAFILE {name!r} is not in the PDX container")
        return found[0]
    if isinstance(flashdata, InternFlashdata):
        text = flashdata.data
        if flashdata.dataformat.selection is not DataformatSelection.BINARY:
            return text.encode("ascii", errors="replace")
        try:
            return bytes.fromhex(re.sub(r"\s", "", text))
        except ValueError as exc:
            raise ParseError(f"{where}: BINARY DATA is not hexadecimal: {exc}") from exc
    raise ParseError(f"{where}: FLASHDATA is neither INTERN-FLASHDATA nor EXTERN-FLASHDATA")


def _same_file(member: str, name: str) -> bool:
    if member == name:
        return True
    return PurePosixPath(member).name == PurePosixPath(name.replace("\\", "/")).name


def _segment_size(segment: OdxSegment) -> int | None:
    if segment.uncompressed_size is not None:
        return segment.uncompressed_size
    if segment.source_end_address is not None:
        # SOURCE-END-ADDRESS is the last byte of the segment, inclusive.
        return segment.source_end_address - segment.source_start_address + 1
    return None


def _place_binary(raw: bytes, odx_segments: list[OdxSegment], where: str) -> tuple[Segment, ...]:
    if not odx_segments:
        raise ParseError(f"{where}: BINARY data needs SEGMENTS to give it addresses")
    result: list[Segment] = []
    position = 0
    for index, odx_segment in enumerate(odx_segments):
        _refuse_encoded(odx_segment.encrypt_compress_method, f"{where}/{odx_segment.short_name}")
        size = _segment_size(odx_segment)
        if size is None:
            if index != len(odx_segments) - 1:
                raise ParseError(
                    f"{where}/{odx_segment.short_name}: no UNCOMPRESSED-SIZE or "
                    "SOURCE-END-ADDRESS, and it is not the last segment"
                )
            size = len(raw) - position
        data = raw[position : position + size]
        if size <= 0 or len(data) != size:
            raise ParseError(
                f"{where}/{odx_segment.short_name}: needs {size} bytes at offset {position}, "
                f"but the data is {len(raw)} bytes long"
            )
        result.append(Segment(address=odx_segment.source_start_address, data=data))
        position += size
    if position != len(raw):
        raise ParseError(
            f"{where}: the SEGMENTS cover {position} bytes, but the data is {len(raw)} bytes; "
            "sizes and data do not match"
        )
    return tuple(result)


def _cut_records(
    records: tuple[Segment, ...], odx_segments: list[OdxSegment], where: str
) -> tuple[Segment, ...]:
    if not odx_segments:
        return records
    result: list[Segment] = []
    for odx_segment in odx_segments:
        name = f"{where}/{odx_segment.short_name}"
        _refuse_encoded(odx_segment.encrypt_compress_method, name)
        start = odx_segment.source_start_address
        holder = next((r for r in records if r.address <= start < r.end), None)
        if holder is None:
            raise ParseError(f"{name}: no data at SOURCE-START-ADDRESS 0x{start:08X}")
        size = _segment_size(odx_segment)
        end = holder.end if size is None else start + size
        if size is not None and (size <= 0 or end > holder.end):
            raise ParseError(
                f"{name}: 0x{start:08X}..0x{end - 1:08X} is not fully covered by the data "
                f"(contiguous data ends at 0x{holder.end - 1:08X})"
            )
        data = holder.data[start - holder.address : end - holder.address]
        result.append(Segment(address=start, data=data))
    return tuple(result)


def _target_offset(datablock: Datablock) -> int:
    offset = datablock.target_addr_offset
    if isinstance(offset, PosOffset):
        return offset.positive_offset
    if isinstance(offset, NegOffset):
        return -offset.negative_offset
    return 0


def _refuse_encoded(method: EncryptCompressMethod | None, where: str) -> None:
    if method is None:
        return
    value = method.value_raw.strip().lower().removeprefix("0x").lstrip("0")
    if value:
        raise ParseError(
            f"{where}: data is encrypted or compressed (ENCRYPT-COMPRESS-METHOD "
            f"{method.value_raw.strip()}); ecuworks imports plain data only"
        )
