"""UDS over ISO-TP (ISO 15765-2) on CAN, through python-can and can-isotp.

E-series vehicles are diagnosed on D-CAN (500 kbit/s, 11-bit identifiers) through the VCI;
each UDS PDU is segmented into CAN frames by ISO-TP. :class:`IsotpLink` is that path as a
:class:`~ecuworks.transport.base.Link`.

Threads, and why. can-isotp's stacks are threaded (two threads each, which run the
ISO 15765-2 timers, flow control and segmentation), python-can reads the bus in a
:class:`can.Notifier` thread, and the rest of ecuworks is asyncio. The link therefore owns:

* one python-can bus and one notifier, whose single listener routes each received frame to
  the stack of the ECU that sent it (one routing decision per frame instead of every stack
  filtering every frame, and frames from ECUs not yet spoken to -- answers to a functional
  request -- open a stack on the spot instead of being lost);
* one :class:`isotp.TransportLayer` per ECU, created on first use, fed from a frame queue
  by that router and sending through the shared bus, plus one that only transmits
  functional requests;
* per ECU stack, one thread that waits for reassembled PDUs and hands each to the event
  loop with ``loop.call_soon_threadsafe`` -- the only way anything reaches
  :meth:`Link._deliver`. Sending only queues the PDU with the stack, so no await blocks on
  the bus; ISO-TP errors reach the waiting request the same thread-safe way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import can
import isotp

from ecuworks.errors import ConfigError, LinkClosed, LinkError
from ecuworks.transport.base import Link
from ecuworks.transport.can_addressing import BMW_DCAN, CanAddressing, normal_11bit

__all__ = ["BMW_DCAN", "CanAddressing", "IsotpLink", "default_params", "normal_11bit"]

_log = logging.getLogger(__name__)

T = TypeVar("T")

# How often idle threads look for a stop request; bounds how long close() takes.
_POLL: Final = 0.05
_JOIN_TIMEOUT: Final = 2.0
# Largest PDU accepted: far above CAN ECUs' maxNumberOfBlockLength (0x800-0xFFF) plus the
# 0x36 header; PDUs over 4095 bytes use ISO 15765-2:2016's first frame escape sequence.
_MAX_PDU: Final = 0xFFFF


# ISO-TP errors after which the PDU in transfer is lost, so the exchange waiting for it
# must fail now rather than time out later. Other errors (a stray consecutive or flow
# control frame, a reception restarted by a newer first frame) are logged only.
_LOST_PDU: Final[dict[type[Exception], str]] = {
    isotp.FlowControlTimeoutError: "no flow control for our first frame within N_Bs",
    isotp.OverflowError: "the ECU refused our request as too long (flow status overflow)",
    isotp.UnsupportedWaitFrameError: "the ECU asked us to wait (flow status WAIT)",
    isotp.MaximumWaitFrameReachedError: "the ECU asked us to wait too often (N_WFTmax)",
    isotp.BadGeneratorError: "the request ran out of data",
    isotp.ConsecutiveFrameTimeoutError: "the ECU's answer stopped mid-way (N_Cr expired)",
    isotp.WrongSequenceNumberError: "a consecutive frame of the answer was lost",
    isotp.FrameTooLongError: "the answer is longer than this link accepts",
    isotp.ChangingInvalidRXDLError: "the answer's frames changed length mid-way",
    isotp.InvalidCanFdFirstFrameRXDL: "the answer's first frame has an invalid CAN FD length",
}


def default_params(addressing: CanAddressing, fd: bool) -> dict[str, Any]:
    """The can-isotp parameters an :class:`IsotpLink` uses unless told otherwise."""
    return {
        # Our flow control asks ECUs to send consecutive frames back to back and without
        # further flow control (ISO 15765-2, 9.6.5): the bus sets the pace.
        "stmin": 0,
        "blocksize": 0,
        "tx_padding": addressing.padding,
        "tx_data_length": 64 if fd else 8,
        "can_fd": fd,
        "bitrate_switch": fd,
        "max_frame_size": _MAX_PDU,
        "rx_flowcontrol_timeout": 1000,  # N_Bs, ISO 15765-2's value
        # N_Cr is 1000 ms; twice that absorbs a USB adapter's or a loaded host's hiccup
        # without giving up a 4 KiB transfer near its end.
        "rx_consecutive_frame_timeout": 2000,
        # Bootloaders may answer a long 0x36 with FC.WAIT while their buffer drains.
        "wftmax": 16,
    }


def _check_params(params: Mapping[str, Any]) -> None:
    check = isotp.TransportLayer.Params()
    try:
        for key, value in params.items():
            check.set(key, value, validate=False)
        check.validate()
    except (AttributeError, ValueError) as exc:
        raise ConfigError(
            f"invalid ISO-TP parameters {dict(params)!r}: {exc}; see can-isotp's parameter list"
        ) from exc


class _EcuStack:
    """One ECU's (or the functional) ISO-TP stack, its frame queue and its delivery thread."""

    def __init__(
        self,
        link: IsotpLink,
        address: int,
        isotp_address: isotp.Address,
        params: Mapping[str, Any],
        *,
        functional: bool,
    ) -> None:
        self.link = link
        self.address = address
        self.functional = functional
        self.frames: queue.SimpleQueue[isotp.CanMessage] = queue.SimpleQueue()
        self.stack = isotp.TransportLayer(
            rxfn=self._next_frame,
            txfn=self._send_frame,
            address=isotp_address,
            error_handler=self._on_error,
            params=dict(params),
            read_timeout=_POLL,
        )
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._deliver_pdus, name=f"ecuworks-isotp-0x{address:02X}", daemon=True
        )

    def start(self) -> None:
        self.stack.start()
        if not self.functional:
            self._thread.start()

    def request_stop(self) -> None:
        self._stopping.set()

    def stop(self) -> None:
        """Stop the delivery thread and the stack's threads (called off the event loop)."""
        self._stopping.set()
        self.stack.stop()  # meanwhile the delivery thread notices _stopping
        if self._thread.is_alive():
            self._thread.join(_JOIN_TIMEOUT)

    def send(self, payload: bytes) -> None:
        kind = isotp.TargetAddressType.Functional if self.functional else None
        self.stack.send(payload, target_address_type=kind)

    # -- stack threads -----------------------------------------------------------------

    def _next_frame(self, timeout: float) -> isotp.CanMessage | None:
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            return None

    def _send_frame(self, frame: isotp.CanMessage) -> None:
        self.link._send_frame(self.address, frame)

    def _on_error(self, error: Exception) -> None:
        reason = _LOST_PDU.get(type(error))
        if reason is None or self.functional:
            _log.debug("ISO-TP with ECU 0x%02X: %s", self.address, error)
            return
        self.link._post(
            self.link._fail,
            self.address,
            LinkError(
                f"ISO-TP transfer with ECU 0x{self.address:02X} failed: {reason} "
                f"(ISO 15765-2); check that the ECU is awake and the bus not overloaded"
            ),
        )

    def _deliver_pdus(self) -> None:
        while not self._stopping.is_set():
            pdu = self.stack.recv(block=True, timeout=_POLL)
            if pdu is not None:
                self.link._post(self.link._deliver, self.address, bytes(pdu))


class _Router(can.Listener):
    """The notifier's one listener: hands each frame to its ECU's stack."""

    def __init__(self, link: IsotpLink) -> None:
        self._link = link

    def on_message_received(self, msg: can.Message) -> None:
        try:
            self._link._route(msg)
        except Exception:  # a bad frame must not look like a dead bus to the notifier
            _log.exception("cannot route CAN frame %s", msg)

    def on_error(self, exc: Exception) -> None:
        self._link._bus_failed(exc)


class IsotpLink(Link):
    """A :class:`Link` to ECUs on a CAN bus: UDS over ISO-TP through python-can.

    Args:
        interface: python-can interface name (``"socketcan"``, ``"pcan"``, ``"virtual"``...).
        channel: the interface's channel (``"can0"``, ``"PCAN_USBBUS1"``, any name for
            ``virtual``).
        addressing: how ECU addresses map to CAN ids; :data:`BMW_DCAN` or
            :func:`normal_11bit`.
        tester_address: this tester's address (0xF1 on BMW D-CAN).
        functional_address: target byte of functional requests (0xDF on BMW D-CAN).
        bitrate: the bus bitrate, passed to python-can.
        fd: CAN FD with 64-byte frames and bit rate switching (ISO 15765-2:2016).
        isotp_params: can-isotp parameters that override the defaults (STmin 0, block
            size 0, full-length padding, N_Bs 1 s, N_Cr 2 s, PDUs up to 64 KiB).
        bus_kwargs: further keyword arguments for :class:`can.Bus` (e.g. ``data_bitrate``).

    Raises:
        ConfigError: ``isotp_params`` are invalid.
    """

    def __init__(
        self,
        interface: str,
        channel: str,
        *,
        addressing: CanAddressing = BMW_DCAN,
        tester_address: int = 0xF1,
        functional_address: int = 0xDF,
        bitrate: int = 500_000,
        fd: bool = False,
        isotp_params: Mapping[str, Any] | None = None,
        bus_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(tester_address=tester_address, functional_address=functional_address)
        self.interface = interface
        self.channel = channel
        self.addressing = addressing
        self.bitrate = bitrate
        self.fd = fd
        self._params = {**default_params(addressing, fd), **(isotp_params or {})}
        _check_params(self._params)
        self._bus_kwargs = dict(bus_kwargs or {})
        self._lock = threading.Lock()  # guards the fields below against the notifier thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bus: can.BusABC | None = None
        self._notifier: can.Notifier | None = None
        self._stacks: dict[int, _EcuStack] = {}
        self._functional: _EcuStack | None = None
        self._teardown: asyncio.Task[None] | None = None
        self._send_lock = threading.Lock()  # one frame at a time into the bus driver

    def __repr__(self) -> str:
        return f"IsotpLink({self.interface!r}, {self.channel!r}, {self.addressing.name})"

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Open the CAN interface. Stacks for ECUs are created on first use.

        python-can opens buses synchronously, and some wait on the network (socketcand
        waits for its server's greeting), so the bus opens in a worker thread: the event
        loop keeps serving, whatever else runs on it (a simulator in the same process).

        Raises:
            LinkError: python-can cannot open the interface.
        """
        if self._teardown is not None:
            await self._teardown  # a bus failure's teardown must finish before reopening
            self._teardown = None
        if self._bus is not None:
            return
        self._loop = asyncio.get_running_loop()
        config: dict[str, Any] = {"bitrate": self.bitrate, **self._bus_kwargs}
        if self.fd:
            config["fd"] = True
        try:
            bus = await _run_in_thread(
                lambda: can.Bus(interface=self.interface, channel=self.channel, **config),
                "ecuworks-can-open",
            )
        except Exception as exc:  # backends raise anything from OSError to ImportError
            raise LinkError(
                f"cannot open CAN interface {self.interface!r} channel {self.channel!r}: "
                f"{exc}. Check that the adapter is plugged in, its driver is installed, "
                f"the channel name is right and the interface name is one python-can knows "
                f"(e.g. socketcan, pcan, vector, kvaser, virtual)"
            ) from exc
        with self._lock:
            self._bus = bus
        try:
            self._notifier = can.Notifier(bus, [_Router(self)], timeout=_POLL)
        except Exception as exc:
            with self._lock:
                self._bus = None
            bus.shutdown()
            raise LinkError(
                f"cannot read CAN interface {self.interface!r} channel {self.channel!r}: {exc}"
            ) from exc
        self._mark_up()

    async def close(self) -> None:
        """Stop every stack, the notifier and the bus; waiting requests fail. Idempotent."""
        self._fail_all(LinkClosed(f"the CAN link {self.interface}/{self.channel} was closed"))
        await self._shut_down()

    async def _shut_down(self) -> None:
        with self._lock:
            bus, self._bus = self._bus, None
            notifier, self._notifier = self._notifier, None
            stacks = list(self._stacks.values())
            if self._functional is not None:
                stacks.append(self._functional)
            self._stacks.clear()
            self._functional = None
        if bus is None:
            if self._teardown is not None and self._teardown is not asyncio.current_task():
                await self._teardown
            return

        def work() -> None:
            # Each stop waits up to one poll interval for its threads to notice; stopping
            # them side by side keeps close() near one interval however many ECUs there are.
            stoppers = [threading.Thread(target=stack.stop) for stack in stacks]
            if notifier is not None:
                stoppers.append(
                    threading.Thread(target=notifier.stop, kwargs={"timeout": _JOIN_TIMEOUT})
                )
            for stack in stacks:
                stack.request_stop()
            for stopper in stoppers:
                stopper.start()
            for stopper in stoppers:
                stopper.join()
            bus.shutdown()

        try:
            await _run_in_thread(work, "ecuworks-isotp-close")
        except Exception:  # a backend failing to shut down must not fail close()
            _log.exception("closing the CAN link failed")

    # -- for the stacks' threads -------------------------------------------------------

    def _post(self, callback: Callable[..., object], *args: object) -> None:
        """Run ``callback(*args)`` on the event loop; from any thread."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody is left to tell
            _log.debug("event loop closed; dropped %r", callback)

    def _send_frame(self, source: int, frame: isotp.CanMessage) -> None:
        bus = self._bus
        if bus is None:
            return  # closing: the stack's last frames have nowhere to go
        message = can.Message(
            arbitration_id=frame.arbitration_id,
            data=frame.data,
            is_extended_id=frame.is_extended_id,
            is_fd=frame.is_fd,
            bitrate_switch=frame.bitrate_switch,
        )
        try:
            with self._send_lock:
                bus.send(message)
        except can.CanError as exc:
            self._post(
                self._fail,
                source,
                LinkError(
                    f"the CAN interface {self.interface}/{self.channel} refused a frame for "
                    f"ECU 0x{source:02X}: {exc}; check the bus wiring and termination"
                ),
            )

    def _route(self, msg: can.Message) -> None:
        """Hand one received frame to its ECU's stack (notifier thread)."""
        if msg.is_error_frame or msg.is_remote_frame:
            return
        source = self.addressing.source_of(
            msg.arbitration_id, msg.is_extended_id, msg.data, tester=self.tester_address
        )
        if source is None:
            return
        stack = self._stacks.get(source)
        if stack is None:
            if not self.addressing.opens_message(msg.data):
                return  # a stray consecutive or flow control frame opens nothing
            stack = self._stack(source)  # e.g. an answer to a functional request
            if stack is None:
                return
        stack.frames.put(
            isotp.CanMessage(
                arbitration_id=msg.arbitration_id,
                dlc=msg.dlc,
                data=bytes(msg.data),
                extended_id=msg.is_extended_id,
                is_fd=msg.is_fd,
                bitrate_switch=msg.bitrate_switch,
            )
        )

    def _bus_failed(self, exc: Exception) -> None:
        """The notifier could not read the bus (notifier thread)."""
        notifier = self._notifier
        if notifier is not None:
            # Stop the notifier's read loop after this callback instead of letting it spin
            # on a dead bus. timeout=0: its thread is this one; _shut_down's second stop()
            # joins it.
            notifier.stop(timeout=0)
        self._post(self._lose_bus, exc)

    def _lose_bus(self, exc: Exception) -> None:
        if self._bus is None:
            return
        self._fail_all(
            LinkError(
                f"the CAN interface {self.interface}/{self.channel} stopped working: {exc}. "
                f"Check the adapter's cable and power, then reconnect"
            )
        )
        self._teardown = asyncio.get_running_loop().create_task(self._shut_down())

    # -- stacks ------------------------------------------------------------------------

    def _stack(self, address: int, *, functional: bool = False) -> _EcuStack | None:
        """The stack for one ECU (or the functional one), started on first use.

        Called from the event loop and the notifier thread. Starting a stack starts its
        threads and waits the moment it takes them to run, not for any I/O.
        """
        with self._lock:
            stack = self._functional if functional else self._stacks.get(address)
            if stack is not None or self._bus is None:
                return stack
            if functional:
                isotp_address = self.addressing.functional(address, tester=self.tester_address)
            else:
                isotp_address = self.addressing.physical(address, tester=self.tester_address)
            stack = _EcuStack(self, address, isotp_address, self._params, functional=functional)
            stack.start()
            if functional:
                self._functional = stack
            else:
                self._stacks[address] = stack
            return stack

    async def _transmit(self, target: int, payload: bytes) -> None:
        stack = self._stack(target)
        if stack is None:
            raise LinkClosed(f"the CAN link {self.interface}/{self.channel} is closed")
        stack.send(payload)

    async def _transmit_functional(self, payload: bytes) -> None:
        stack = self._stack(self.functional_address, functional=True)
        if stack is None:
            raise LinkClosed(f"the CAN link {self.interface}/{self.channel} is closed")
        try:
            stack.send(payload)
        except ValueError as exc:
            # ISO 15765-2 allows functional addressing for single frames only.
            raise LinkError(
                f"a functional request must fit one CAN frame; {len(payload)} bytes do not"
            ) from exc


def _settle(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]  # None only with an error


async def _run_in_thread(work: Callable[[], T], name: str) -> T:
    """Run blocking python-can work in a thread of its own; its result or its exception.

    A thread of its own, not the loop's executor: when the link is closed, no thread of
    it is left behind.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = work()
        except BaseException as exc:  # handed to the awaiting task, which re-raises it
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(_settle, done, result, error)

    thread = threading.Thread(target=run, name=name)
    thread.start()
    try:
        # Shielded: a cancelled caller still lets the work finish in its thread.
        return await asyncio.shield(done)
    finally:
        thread.join(_JOIN_TIMEOUT)  # it has only to return after settling the future
