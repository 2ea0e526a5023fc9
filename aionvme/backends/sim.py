"""The ``sim`` backend: aionvme's simulated SSD seen from the host.

``SimProcess`` starts the simulator program (``python -m aionvme.simulator``)
and hands it the DMA arena, the BAR page, the doorbell eventfd and one eventfd
per MSI-X vector over a unix socket (SCM_RIGHTS).  Its extra, the control
plane (``nvme0.sim``: fault injection and a look inside the device), is
``SimControl``.  Nothing here imports the simulator's code but its
configuration schema."""
from __future__ import annotations

import json
from typing import Any, Callable
import os
import socket
import struct
import subprocess
import sys

from aionvme import _core
from aionvme import capabilities as caps
from aionvme.exceptions import DeviceError, InterfaceError
from aionvme.simulator.config import SimConfig

BAR0_SIZE = 0x4000
RESET_POWER_OFF, RESET_POWER_ON = 3, 4  # enum anv_reset_kind


class SimProcess:
    """A running simulator process and the Device attached to it."""

    name = "sim"
    capabilities = caps.PCIE | {caps.NSSR, caps.POWER_CYCLE, caps.FAULT_INJECTION}

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        # Set by the transport that owns the device: the host's side of a surprise
        # power loss (fail commands, forget cached writes), called before power goes.
        self.on_power_loss: Callable[[], None] | None = None
        arena = _core.arena()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        bar_fd = os.memfd_create("aionvme-bar", os.MFD_CLOEXEC)
        os.ftruncate(bar_fd, BAR0_SIZE)
        db_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        irq_fds = [os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK) for _ in range(config.vectors)]
        env = dict(os.environ)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aionvme.simulator", "--fd", str(child.fileno())],
            pass_fds=[child.fileno()], env=env, stdin=subprocess.DEVNULL)
        child.close()
        hello = json.dumps({"config": config.to_dict(), "arena_size": arena.size,
                            "parent_pid": os.getpid()}).encode()
        try:
            socket.send_fds(parent, [struct.pack("<I", len(hello)), hello],
                            [arena.fd, bar_fd, db_fd, *irq_fds])
            parent.settimeout(30)
            ack = parent.recv(4)
            parent.settimeout(None)
        except OSError as e:
            self.proc.kill()
            raise DeviceError(f"the simulator process did not start: {e}") from e
        if ack != b"RDY!":
            self.proc.kill()
            self.proc.wait()
            raise DeviceError(f"the simulator process failed to start (exit code {self.proc.returncode})")
        self.device = _core.Device.open_sim(parent.detach(), bar_fd, db_fd, irq_fds)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def death(self) -> str | None:
        if self.proc.poll() is not None:
            return f"the sim device process exited with code {self.proc.returncode}"
        if self.device.lost:
            return f"the sim device process (pid {self.proc.pid}) stopped answering its requests"
        return None

    def power_off(self) -> None:
        self.device.reset(RESET_POWER_OFF)

    def power_on(self) -> None:
        self.device.reset(RESET_POWER_ON)

    def extension(self, name: str) -> Any:
        """The backend's extras by name: ``"sim"`` is the control plane."""
        if name == "sim":
            return SimControl(self)
        raise InterfaceError(f"the sim backend has no extension {name!r}")

    def surprise_power_loss(self) -> None:
        """Power goes away now, without warning to the host's driver."""
        if self.on_power_loss is not None:
            self.on_power_loss()
        else:
            self.power_off()

    def close(self) -> None:
        """Detach (the process sees EOF and exits) and reap the process."""
        self.device.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()



class Fault:
    """One armed fault rule; ``hits`` counts the commands it changed."""

    __slots__ = ("_ctl", "slot")

    def __init__(self, ctl: "SimControl", slot: int) -> None:
        self._ctl = ctl
        self.slot = slot

    @property
    def hits(self) -> int:
        return int(self._ctl._call("fault_info", slot=self.slot)["hits"])

    @property
    def active(self) -> bool:
        return bool(self._ctl._call("fault_info", slot=self.slot)["active"])

    def clear(self) -> None:
        self._ctl._call("fault_clear", slot=self.slot)

    def __enter__(self) -> "Fault":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.clear()


class SimControl:
    """Make the simulated SSD misbehave on purpose, or look inside it.

    A rule matches commands by ``opcode``, ``qid`` (0: admin), ``nsid`` and
    LBA window (``lba``, ``lba_count``); ``count`` limits how often it fires
    (-1: until cleared).

    Example:
        >>> with nvme0.sim.inject_status(opcode=0x02, sct=2, sc=0x81, count=1):
        ...     cpl = await nvme0n1.read(q, buf, 0, check=False)   # 02/81
    """

    __slots__ = ("_backend",)

    def __init__(self, backend: SimProcess) -> None:
        self._backend = backend

    def _call(self, op: str, **kw: Any) -> dict[str, Any]:
        reply = json.loads(self._backend.device.control(json.dumps({"op": op, **kw}).encode()))
        if "error" in reply:
            raise InterfaceError(f"simulator: {reply['error']}")
        return reply

    @staticmethod
    def _match(opcode: int | None, qid: int | None, nsid: int, lba: int | None,
               lba_count: int) -> dict[str, Any]:
        return {"opcode": -1 if opcode is None else opcode, "qid": -1 if qid is None else qid,
                "nsid": nsid, "lba": lba or 0, "lba_count": lba_count if lba is not None else 0}

    def inject_status(self, *, sc: int, sct: int = 0, opcode: int | None = None,
                      qid: int | None = None, nsid: int = 0, lba: int | None = None,
                      lba_count: int = 1, dnr: bool = True, more: bool = False,
                      count: int = 1) -> Fault:
        """Complete matching commands with status ``sct/sc`` instead of running them."""
        return Fault(self, self._call("fault", action="status", sct=sct, sc=sc, dnr=dnr, more=more,
                                      count=count, **self._match(opcode, qid, nsid, lba, lba_count))["slot"])

    def delay(self, *, delay_ms: float, opcode: int | None = None, qid: int | None = None,
              nsid: int = 0, lba: int | None = None, lba_count: int = 1, count: int = 1) -> Fault:
        """Run matching commands but post their completions ``delay_ms`` later."""
        return Fault(self, self._call("fault", action="delay", delay_ms=delay_ms, count=count,
                                      **self._match(opcode, qid, nsid, lba, lba_count))["slot"])

    def drop(self, *, opcode: int | None = None, qid: int | None = None, nsid: int = 0,
             lba: int | None = None, lba_count: int = 1, count: int = 1) -> Fault:
        """Never complete matching commands (the host's timeout must catch them)."""
        return Fault(self, self._call("fault", action="drop", count=count,
                                      **self._match(opcode, qid, nsid, lba, lba_count))["slot"])

    def duplicate(self, *, opcode: int | None = None, qid: int | None = None, nsid: int = 0,
                  lba: int | None = None, lba_count: int = 1, count: int = 1) -> Fault:
        """Post matching I/O commands' completions twice: the second CQE names a CID
        that is no longer outstanding (a misbehaving controller)."""
        return Fault(self, self._call("fault", action="duplicate", count=count,
                                      **self._match(opcode, qid, nsid, lba, lba_count))["slot"])

    def bad_cid(self, *, opcode: int | None = None, qid: int | None = None, nsid: int = 0,
                lba: int | None = None, lba_count: int = 1, count: int = 1) -> Fault:
        """Complete matching I/O commands with a CID the host never used, so the
        real command never completes (its deadline catches it)."""
        return Fault(self, self._call("fault", action="bad_cid", count=count,
                                      **self._match(opcode, qid, nsid, lba, lba_count))["slot"])

    def hang(self, *, opcode: int | None = None, qid: int | None = None, nsid: int = 0,
             lba: int | None = None, lba_count: int = 1, count: int = 1) -> Fault:
        """A matching command hangs the controller's firmware: it never completes,
        and no queue is served any more while the registers still answer, until
        a Controller Level Reset (``await nvme0.reset()``) or a power cycle."""
        return Fault(self, self._call("fault", action="hang", count=count,
                                      **self._match(opcode, qid, nsid, lba, lba_count))["slot"])


    # -- data faults of I/O commands: what data verification must catch ---------
    def _data_fault(self, action: str, opcode: int | None, qid: int | None, nsid: int,
                    lba: int | None, lba_count: int, count: int, **kw: Any) -> Fault:
        return Fault(self, self._call("fault", action=action, count=count, **kw,
                                      **self._match(opcode, qid, nsid, lba, lba_count))["slot"])

    def skip(self, *, opcode: int | None = None, qid: int | None = None, nsid: int = 0,
             lba: int | None = None, lba_count: int = 1, count: int = 1) -> Fault:
        """Complete matching I/O commands successfully without carrying them out: a
        lost Write (reads return the earlier data, stale), or a Write Uncorrectable or
        Deallocate that did nothing."""
        return self._data_fault("skip", opcode, qid, nsid, lba, lba_count, count)

    def bitflip(self, *, offset: int = 0, xor: int = 0x01, qid: int | None = None,
                nsid: int = 0, lba: int | None = None, lba_count: int = 1,
                count: int = 1) -> Fault:
        """Matching Reads return their data with byte ``offset`` (from the first LBA
        read) XOR ``xor``; the media stays intact."""
        if not 0 <= offset or not 1 <= xor <= 0xFF:
            raise InterfaceError(f"offset {offset} must be >= 0 and xor {xor:#x} within 0x01..0xff")
        return self._data_fault("bitflip", 0x02, qid, nsid, lba, lba_count, count, arg=offset,
                                xor=xor)

    def misplace(self, *, distance: int = 1, qid: int | None = None, nsid: int = 0,
                 lba: int | None = None, lba_count: int = 1, count: int = 1) -> Fault:
        """Matching Reads return the data of the LBAs ``distance`` further on
        (wrapping inside the namespace): misplaced data."""
        if distance == 0:
            raise InterfaceError("distance must not be 0")
        return self._data_fault("misplace", 0x02, qid, nsid, lba, lba_count, count, arg=distance)

    def zeroes(self, *, qid: int | None = None, nsid: int = 0, lba: int | None = None,
               lba_count: int = 1, count: int = 1) -> Fault:
        """Matching Reads return all bytes 00h instead of the data."""
        return self._data_fault("zeroes", 0x02, qid, nsid, lba, lba_count, count)

    def torn(self, *, keep: int = 1, qid: int | None = None, nsid: int = 0,
             lba: int | None = None, lba_count: int = 1, count: int = 1) -> Fault:
        """Matching Writes of more than ``keep`` LBAs complete successfully but only
        their first ``keep`` LBAs reach the media: a torn write (part new, part old)."""
        if keep < 0:
            raise InterfaceError(f"keep {keep} must be >= 0")
        return self._data_fault("torn", 0x01, qid, nsid, lba, lba_count, count, arg=keep)

    def clear(self) -> None:
        """Disarm every fault rule."""
        self._call("fault_clear")

    def corrupt(self, nsid: int, lba: int, offset: int = 0, xor: int = 0xFF) -> None:
        """Flip bits (``xor``) of one byte of an LBA on the media, behind the host's back."""
        self._call("corrupt", nsid=nsid, lba=lba, offset=offset, xor=xor)

    def selftest_fail(self, *, segment: int = 0, fatal: bool = False, nsid: int | None = None,
                      lba: int | None = None, sct: int | None = None, sc: int | None = None,
                      count: int = 1) -> None:
        """Make the next ``count`` device self-tests that run to their end fail.

        Their Self-test Result entries (log page 06h) report result 7h (a failed
        segment, ``segment`` 1..255), 6h (``segment=0``: which one is not known) or 5h
        (``fatal``), and the diagnostic fields given: ``nsid``, the failing ``lba``, the
        ``sct``/``sc`` of the error; each marked valid in byte 2.  ``count=0`` is refused.
        """
        self._call("selftest_fail", segment=segment, fatal=fatal, nsid=nsid, lba=lba, sct=sct,
                   sc=sc, count=count)

    def fatal(self) -> None:
        """Set CSTS.CFS: the controller stops processing commands until reset."""
        self._call("fatal")

    def temperature(self, kelvin: int) -> None:
        """Set the composite temperature (a threshold crossing raises an event)."""
        self._call("temperature", kelvin=kelvin)

    def power_loss(self) -> None:
        """Lose power now; ``await subsystem.power_on()`` brings it back."""
        self._backend.surprise_power_loss()

    def state(self) -> dict[str, Any]:
        """Counters and state of the device, for tests."""
        return self._call("state")

    def media(self, nsid: int, lba: int, count: int = 1) -> bytes:
        """The raw media contents of LBAs, read behind the host's back."""
        return bytes.fromhex(self._call("media_read", nsid=nsid, lba=lba, count=count)["hex"])
