"""The ECU server's programming services: routines (0x31) and the download (0x34/0x36/0x37).

:class:`Programming` holds what a bootloader keeps in RAM between requests: which regions
were erased in this programming session, the active :class:`~ecuworks.sim.flash.Download`
and the block sequence counter. A reset, a power loss or leaving the session drops all of
it (:meth:`Programming.abort`); what is in flash (the regions in
:class:`~ecuworks.sim.state.EcuState`) stays.

Routines (DESIGN.md, "Addresses and flash protocol"):

* ``FF00`` erase, option record ``ALFID address size`` naming exactly one region. The region
  is invalid from the first moment (so a power loss mid-erase leaves it blank); the answer
  is ``7F 31 78`` at once and every 2 s until the erase time (size in KiB times
  ``erase_ms_per_kib``), then ``71 01 FF 00 00``.
* ``0202`` check memory, option record CRC-32 (4 bytes big-endian): status 0x00 when it
  equals the CRC-32 of every byte transferred since the last 0x34, else 0x01.
* ``FF01`` check programming dependencies: status 0x00 when every region is valid; the
  first pass since an erase makes the application valid and raises the programming counter.
* ``0F0C`` energy mode, option record 1 byte: 0 normal, 1 production, 2 transport,
  3 flash (the trade's codes for the vehicle's energy-saving modes); application only.

FF00, 0202 and FF01 need security level 0x11 unlocked, which only the programming session
offers; without it they answer NRC 0x33 securityAccessDenied. Each of them runs to
completion within its start request, so stopRoutine (0x02) and requestRoutineResults
(0x03) are NRC 0x12 for them.

Download decisions: memorySize is the uncompressed size (see ``sim/flash.py``); a
RequestTransferExit before all of it arrived is NRC 0x24 requestSequenceError and leaves
the download open, so the tester can still send the missing blocks; a block the ECU refuses
(0x71 too much data, 0x72 corrupt compressed data) ends the download, and the region stays
invalid until it is erased and written again.
"""

from __future__ import annotations

from ecuworks.errors import ParseError
from ecuworks.sim.ecu_base import Refusal, Reply, check_voltage, replies_after
from ecuworks.sim.flash import Download, DownloadError
from ecuworks.sim.state import EcuState, VehicleState
from ecuworks.wire.uds import (
    PROGRAMMING_SECURITY_LEVEL,
    Nrc,
    Routine,
    ServiceId,
    decode_memory_location,
)

__all__ = ["ENERGY_MODES", "Programming"]

ENERGY_MODES = {0: "normal", 1: "production", 2: "transport", 3: "flash"}

_START = 0x01
_OK, _FAILED = 0x00, 0x01
_LENGTH = Nrc.INCORRECT_MESSAGE_LENGTH_OR_INVALID_FORMAT
_RANGE = Nrc.REQUEST_OUT_OF_RANGE
_SID_ROUTINE = ServiceId.ROUTINE_CONTROL


class Programming:
    """Routines and downloads of one ECU; see the module docstring.

    Args:
        ecu: the ECU's state (its regions are written here).
        vehicle: the vehicle (battery, energy mode).
    """

    __slots__ = (
        "_counter",
        "_download",
        "_erased",
        "_last",
        "_previous",
        "ecu",
        "scale",
        "vehicle",
    )

    def __init__(self, ecu: EcuState, vehicle: VehicleState, *, scale: float = 1.0) -> None:
        self.ecu = ecu
        self.vehicle = vehicle
        self.scale = scale  # protocol timers stay in real time (see EcuServer)
        self._erased: set[int] = set()
        self._download: Download | None = None
        self._last: Download | None = None
        self._counter = 0
        self._previous: int | None = None

    @property
    def download(self) -> Download | None:
        """The active download, if any."""
        return self._download

    def abort(self) -> None:
        """Forget everything held in RAM (reset, power loss, session change)."""
        self._erased.clear()
        self._download = None
        self._last = None
        self._previous = None

    # -- RoutineControl (0x31) ---------------------------------------------------------

    def routine(self, request: bytes, *, level: int | None) -> list[Reply]:
        """Answer RoutineControl ``31 sub RID [option record]``.

        Args:
            request: the whole request.
            level: the unlocked security level, or None.

        Returns:
            The replies, the positive one last (0x78 stream first for an erase).

        Raises:
            Refusal: see the module docstring for each routine's refusals.
        """
        if len(request) < 4:
            raise Refusal(_LENGTH)
        sub = request[1] & 0x7F
        rid = int.from_bytes(request[2:4], "big")
        option = request[4:]
        programming = rid in (
            Routine.ERASE_MEMORY,
            Routine.CHECK_MEMORY,
            Routine.CHECK_PROGRAMMING_DEPENDENCIES,
        )
        energy = rid == Routine.ENERGY_MODE and self.ecu.mode == "application"
        if not (programming or energy):
            raise Refusal(_RANGE, f"no routine 0x{rid:04X} here")
        if sub != _START:
            # Stop (0x02) and results (0x03) included: these routines run to completion.
            raise Refusal(Nrc.SUB_FUNCTION_NOT_SUPPORTED, f"sub-function 0x{sub:02X}")
        if programming and level != PROGRAMMING_SECURITY_LEVEL:
            raise Refusal(Nrc.SECURITY_ACCESS_DENIED, "level 0x11 is not unlocked")
        if rid == Routine.ERASE_MEMORY:
            return self._erase(option)
        if rid == Routine.CHECK_MEMORY:
            return [Reply(0.0, self._check_memory(option))]
        if rid == Routine.CHECK_PROGRAMMING_DEPENDENCIES:
            return [Reply(0.0, self._check_dependencies(option))]
        return [Reply(0.0, self._energy_mode(option))]

    @staticmethod
    def _answer(rid: int, status: int) -> bytes:
        """Return ``71 01 RID status``."""
        return bytes((0x71, _START)) + rid.to_bytes(2, "big") + bytes((status,))

    def _erase(self, option: bytes) -> list[Reply]:
        """Routine FF00: erase one region."""
        try:
            address, size, consumed = decode_memory_location(option)
        except ParseError as exc:
            raise Refusal(_LENGTH, str(exc)) from exc
        if consumed != len(option):
            raise Refusal(_LENGTH, "bytes after the memory location")
        check_voltage(self.vehicle)
        if self._download is not None:
            raise Refusal(Nrc.CONDITIONS_NOT_CORRECT, "a download is active")
        ecu = self.ecu
        if ecu.programming_counter >= ecu.programming_counter_max:
            raise Refusal(
                Nrc.CONDITIONS_NOT_CORRECT,
                f"programming counter at its maximum {ecu.programming_counter_max}",
            )
        region = ecu.region_at(address)
        if region is None or region.size != size:
            raise Refusal(_RANGE, f"no region of {size} bytes at 0x{address:X}")
        region.erase()
        ecu.application_valid = False
        self._erased.add(address)
        seconds = size / 1024 * ecu.erase_ms_per_kib / 1000
        final = self._answer(Routine.ERASE_MEMORY, _OK)
        return replies_after(_SID_ROUTINE, seconds, final, pending=True, scale=self.scale)

    def _check_memory(self, option: bytes) -> bytes:
        """Routine 0202: compare the tester's CRC-32 with the transferred bytes'."""
        if len(option) != 4:
            raise Refusal(_LENGTH, "option record must be the 4-byte CRC-32")
        if self._last is None:
            raise Refusal(Nrc.REQUEST_SEQUENCE_ERROR, "no download since the session began")
        matches = int.from_bytes(option, "big") == self._last.crc32
        return self._answer(Routine.CHECK_MEMORY, _OK if matches else _FAILED)

    def _check_dependencies(self, option: bytes) -> bytes:
        """Routine FF01: every region valid makes the application valid."""
        if option:
            raise Refusal(_LENGTH, "routine FF01 takes no option record")
        ecu = self.ecu
        if not ecu.all_regions_valid:
            ecu.application_valid = False
            return self._answer(Routine.CHECK_PROGRAMMING_DEPENDENCIES, _FAILED)
        if not ecu.application_valid:
            ecu.application_valid = True
            ecu.programming_counter += 1
        return self._answer(Routine.CHECK_PROGRAMMING_DEPENDENCIES, _OK)

    def _energy_mode(self, option: bytes) -> bytes:
        """Routine 0F0C: set the vehicle's energy mode."""
        if len(option) != 1:
            raise Refusal(_LENGTH, "routine 0F0C takes a 1-byte mode")
        mode = ENERGY_MODES.get(option[0])
        if mode is None:
            raise Refusal(_RANGE, f"no energy mode {option[0]}")
        self.vehicle.energy_mode = mode
        return self._answer(Routine.ENERGY_MODE, _OK)

    # -- RequestDownload (0x34), TransferData (0x36), RequestTransferExit (0x37) ------

    def request_download(self, request: bytes, *, level: int | None) -> bytes:
        """Answer ``34 DFI ALFID address size`` with ``74 LFI maxNumberOfBlockLength``.

        Raises:
            Refusal: 0x13 malformed, 0x33 locked, 0x22 a download already active, 0x92/0x93
                voltage, 0x31 unsupported format or no region there or too large, 0x70 the
                region was not erased in this programming session.
        """
        if len(request) < 3:
            raise Refusal(_LENGTH)
        try:
            address, size, consumed = decode_memory_location(request[2:])
        except ParseError as exc:
            raise Refusal(_LENGTH, str(exc)) from exc
        if 2 + consumed != len(request):
            raise Refusal(_LENGTH, "bytes after the memory location")
        if level != PROGRAMMING_SECURITY_LEVEL:
            raise Refusal(Nrc.SECURITY_ACCESS_DENIED, "level 0x11 is not unlocked")
        if self._download is not None:
            raise Refusal(Nrc.CONDITIONS_NOT_CORRECT, "a download is already active")
        check_voltage(self.vehicle)
        region = self.ecu.region_at(address)
        if region is None:
            raise Refusal(_RANGE, f"no region starts at 0x{address:X}")
        try:
            download = Download(region, address, size, request[1])
        except DownloadError as exc:
            raise Refusal(exc.nrc, str(exc)) from exc
        if address not in self._erased:
            raise Refusal(Nrc.UPLOAD_DOWNLOAD_NOT_ACCEPTED, "region not erased")
        # The erase is used up: a second download needs a second erase.
        self._erased.discard(address)
        self._download = self._last = download
        self._counter = 1
        self._previous = None
        length = self.ecu.max_block_length
        width = max(2, (length.bit_length() + 7) // 8)
        return bytes((0x74, width << 4)) + length.to_bytes(width, "big")

    def transfer_data(self, request: bytes) -> list[Reply]:
        """Answer ``36 counter data`` with ``76 counter`` once the block is in flash.

        The block sequence counter starts at 0x01 and wraps from 0xFF to 0x00. A repeat of
        the last accepted counter is a retransmission (the tester missed the answer): it is
        answered again and not written twice (ISO 14229-1 TransferData).

        Raises:
            Refusal: 0x13 malformed or longer than maxNumberOfBlockLength, 0x24 no download
                active, 0x73 wrong counter, 0x92/0x93 voltage, 0x71/0x72 see the module
                docstring.
        """
        if len(request) < 2:
            raise Refusal(_LENGTH)
        download = self._download
        if download is None:
            raise Refusal(Nrc.REQUEST_SEQUENCE_ERROR, "no download active")
        counter = request[1]
        if len(request) > self.ecu.max_block_length:
            raise Refusal(_LENGTH, "block longer than maxNumberOfBlockLength")
        answer = bytes((0x76, counter))
        if counter != self._counter:
            if counter == self._previous:
                return [Reply(0.0, answer)]
            raise Refusal(Nrc.WRONG_BLOCK_SEQUENCE_COUNTER)
        if len(request) == 2:
            raise Refusal(_LENGTH, "no data in the block")
        check_voltage(self.vehicle)
        try:
            written = download.feed(request[2:])
        except DownloadError as exc:
            self._download = None
            raise Refusal(exc.nrc, str(exc)) from exc
        self._previous = counter
        self._counter = (counter + 1) & 0xFF
        seconds = written / (self.ecu.write_kib_s * 1024)
        return replies_after(ServiceId.TRANSFER_DATA, seconds, answer, scale=self.scale)

    def transfer_exit(self, request: bytes) -> bytes:
        """Answer ``37`` with ``77``; the region takes the unit the image declares.

        The unit becomes valid only if the image verifies (DESIGN.md: a unit whose payload
        does not match its hash never becomes valid); the answer is positive either way,
        and routine FF01 reports the failure.

        Raises:
            Refusal: 0x24 no download active, or not all of memorySize has arrived.
        """
        del request  # a transferRequestParameterRecord is allowed and not used
        download = self._download
        if download is None:
            raise Refusal(Nrc.REQUEST_SEQUENCE_ERROR, "no download active")
        if not download.complete:
            raise Refusal(
                Nrc.REQUEST_SEQUENCE_ERROR,
                f"{download.written} of {download.size} bytes transferred",
            )
        result = download.result
        download.region.unit = result.unit
        download.region.valid = result.valid
        self._download = None
        return b"\x77"
