"""The simulator device process: the register model (NVMe 2.0, 3.1.3),
resets and power, and the loop that serves the host.

One thread: the loop waits on the host's socket (register and config
requests, control requests), the doorbell eventfd and timers.  IO queues
are run by the native data path (``SimCore.process_io``); admin commands by
``aionvme.simulator.admin``.
"""
from __future__ import annotations

import heapq
import itertools
import json
import os
import signal
import socket
import struct
import time
from typing import Any, Callable

from aionvme import _core
from aionvme.simulator.admin import Admin
from aionvme.simulator.config import SimConfig
from aionvme.simulator.control import Control
from aionvme.simulator.pci import PciConfig
from aionvme.simulator.state import DeviceState

BAR0_SIZE = 0x4000
MSIX_TABLE = 0x2000
MSIX_PBA = 0x3000
DOORBELLS = 0x1000
NSSR_MAGIC = 0x4E564D65  # "NVMe" (3.1.3.7)

OP_CFG_READ, OP_CFG_WRITE, OP_BAR_READ, OP_BAR_WRITE, OP_RESET, OP_CONTROL = range(1, 7)
RESET_FLR, RESET_HOT, RESET_POWER_OFF, RESET_POWER_ON = 1, 2, 3, 4
WAKE_SOCKET, WAKE_ADMIN, WAKE_TIMER = 1, 2, 3  # enum sim_wake
REQ = struct.Struct("<IIIIQ")
REP = struct.Struct("<iIQ")

# CC fields (3.1.3.5)
CC_EN = 1 << 0
CC_SHN_SHIFT = 14
CC_WRITABLE = 0x00FFFFF1
# CSTS fields (3.1.3.6)
CSTS_RDY = 1 << 0
CSTS_CFS = 1 << 1
CSTS_SHST_MASK = 3 << 2
CSTS_SHST_BUSY = 1 << 2
CSTS_SHST_DONE = 2 << 2
CSTS_NSSRO = 1 << 4


class SimDevice:
    """The simulated controller: registers, PCI function, power, queues."""

    def __init__(self, core: Any, config: SimConfig) -> None:
        self.core = core
        self.cfg = config
        self.bar = core.bar_view()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.state = DeviceState(config)
        self.pci = PciConfig(BAR0_SIZE, config.vectors, MSIX_TABLE, MSIX_PBA,
                             on_flr=self.function_level_reset, on_change=self._pci_changed)
        core.dstrd = config.dstrd
        core.mdts_bytes = (4096 << config.mdts) if config.mdts else 0
        core.sgl_supported = int(config.sgl)
        self.admin = Admin(self)
        self.control = Control(self)
        self.powered = True
        self.state.attach_namespaces(core)
        self.state.apply_write_cache(core)
        self._registers_reset()
        self._msix_reset()

    # -- CAP (3.1.3.1) -------------------------------------------------------
    @property
    def cap(self) -> int:
        cap = self.cfg.mqes                # MQES
        cap |= 1 << 16                     # CQR: contiguous queues required
        cap |= 1 << 17                     # AMS: weighted round robin with urgent
        cap |= 20 << 24                    # TO: 10 s in 500 ms units
        cap |= self.cfg.dstrd << 32        # DSTRD: doorbells 4 << DSTRD bytes apart
        cap |= 1 << 36                     # NSSRS: NVM subsystem reset supported
        cap |= 1 << 37                     # CSS: NVM command set
        cap |= 0 << 48 | 0 << 52           # MPSMIN = MPSMAX = 4 KiB
        return cap

    VS = 0x00020000  # 2.0.0

    def _registers_reset(self) -> None:
        self.cc = 0
        self.csts = 0
        self.aqa = 0
        self.asq = 0
        self.acq = 0
        self.intms = 0

    def _msix_reset(self) -> None:
        # PCI 3.0 6.8.2.9: every vector starts masked; the PBA starts clear.
        self.bar[DOORBELLS:BAR0_SIZE] = bytes(BAR0_SIZE - DOORBELLS)
        for v in range(self.cfg.vectors):
            struct.pack_into("<I", self.bar, MSIX_TABLE + 16 * v + 12, 1)
        self._pci_changed()

    def _pci_changed(self) -> None:
        self.core.msix_enabled = int(self.pci.msix_enabled)
        self.core.msix_fmask = int(self.pci.msix_function_mask)
        self.core.irq_check_pending()

    # -- the state the loop looks at ------------------------------------------
    @property
    def ready(self) -> bool:
        return bool(self.csts & CSTS_RDY)

    @property
    def reachable(self) -> bool:
        """BAR0 answers: powered, memory space enabled, in D0."""
        return self.powered and self.pci.memory_enabled and self.pci.power_state == 0

    def can_run(self) -> bool:
        return (self.reachable and self.ready and self.pci.bus_master
                and not self.csts & CSTS_CFS)

    # -- timers ---------------------------------------------------------------
    def after(self, seconds: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + seconds, next(self._seq), fn))

    def run_timers(self) -> float | None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, fn = heapq.heappop(self._timers)
            fn()
        nxt = self.core.tick(time.monotonic_ns())
        due = [self._timers[0][0] - time.monotonic()] if self._timers else []
        if nxt:
            due.append((nxt - time.monotonic_ns()) / 1e9)
        return max(0.0, min(due)) if due else None

    # -- BAR0 -----------------------------------------------------------------
    def bar_read(self, off: int, length: int) -> int:
        if not self.reachable:
            return (1 << (8 * length)) - 1  # a master abort reads all ones
        if length == 8:
            return self.bar_read(off, 4) | (self.bar_read(off + 4, 4) << 32)
        if off >= DOORBELLS:
            return struct.unpack_from("<I", self.bar, off)[0]
        regs = {
            0x00: self.cap & 0xFFFFFFFF, 0x04: self.cap >> 32, 0x08: self.VS,
            0x0C: self.intms, 0x10: self.intms, 0x14: self.cc, 0x1C: self.csts,
            0x20: 0, 0x24: self.aqa, 0x28: self.asq & 0xFFFFFFFF, 0x2C: self.asq >> 32,
            0x30: self.acq & 0xFFFFFFFF, 0x34: self.acq >> 32,
        }
        return regs.get(off, 0)

    def bar_write(self, off: int, length: int, value: int) -> None:
        if not self.reachable:
            return
        if length == 8:
            self.bar_write(off, 4, value & 0xFFFFFFFF)
            self.bar_write(off + 4, 4, value >> 32)
            return
        value &= 0xFFFFFFFF
        if DOORBELLS <= off < MSIX_TABLE:
            struct.pack_into("<I", self.bar, off, value)
            self.admin.doorbell_written(off, value)
            return
        if MSIX_TABLE <= off < MSIX_TABLE + 16 * self.cfg.vectors:
            struct.pack_into("<I", self.bar, off, value)
            self.core.irq_check_pending()
            return
        if off == 0x0C:
            self.intms |= value
        elif off == 0x10:
            self.intms &= ~value
        elif off == 0x14:
            self._write_cc(value)
        elif off == 0x1C:
            if value & CSTS_NSSRO:  # RW1C
                self.csts &= ~CSTS_NSSRO
        elif off == 0x20:
            if value == NSSR_MAGIC:
                self.subsystem_reset()
        elif off == 0x24:
            self.aqa = value & 0x0FFF0FFF
        elif off == 0x28:
            self.asq = (self.asq & ~0xFFFFFFFF) | (value & ~0xFFF)
        elif off == 0x2C:
            self.asq = (self.asq & 0xFFFFFFFF) | (value << 32)
        elif off == 0x30:
            self.acq = (self.acq & ~0xFFFFFFFF) | (value & ~0xFFF)
        elif off == 0x34:
            self.acq = (self.acq & 0xFFFFFFFF) | (value << 32)

    def _write_cc(self, value: int) -> None:
        old, self.cc = self.cc, value & CC_WRITABLE
        if not old & CC_EN and self.cc & CC_EN:
            self._enable()
        elif old & CC_EN and not self.cc & CC_EN:
            self.controller_reset()
            return
        shn = (self.cc >> CC_SHN_SHIFT) & 3
        if shn and not (old >> CC_SHN_SHIFT) & 3 and self.cc & CC_EN:
            self._shutdown(abrupt=shn == 2)

    def _enable(self) -> None:
        """CC.EN 0 -> 1 (3.5.1): check the configuration, make the admin queues."""
        css = (self.cc >> 4) & 7
        mps = (self.cc >> 7) & 0xF
        ams = (self.cc >> 11) & 7
        iosqes = (self.cc >> 16) & 0xF
        iocqes = (self.cc >> 20) & 0xF
        asqs = (self.aqa & 0xFFF) + 1
        acqs = ((self.aqa >> 16) & 0xFFF) + 1
        # CSS: CAP.CSS has only bit 0 (NVM); 110b and 111b need bits 6 and 7.
        bad = (css != 0 or mps != 0 or ams not in (0, 1)
               or iosqes not in (0, 6) or iocqes not in (0, 4)
               or asqs < 2 or acqs < 2)
        if bad:
            # The configuration cannot be honoured: fatal, as 3.5.1 allows.
            self.csts |= CSTS_CFS
            return
        self.core.cq_create(0, self.acq, acqs, 0, 1)
        self.core.sq_create(0, self.asq, asqs, 0, 0)
        self.state.enabled()
        self.apply_arbitration()

        def ready() -> None:
            if self.cc & CC_EN and not self.csts & CSTS_CFS:
                self.csts |= CSTS_RDY
        self.after(self.cfg.ready_delay_ms / 1000, ready)

    def _shutdown(self, abrupt: bool) -> None:
        """CC.SHN (3.6.2): SHST goes 01b, the cache is flushed, then 10b."""
        self.csts = (self.csts & ~CSTS_SHST_MASK) | CSTS_SHST_BUSY
        self.core.flush()
        delay = self.cfg.shutdown_delay_ms / 1000 / (4 if abrupt else 1)

        def done() -> None:
            if self.csts & CSTS_SHST_BUSY:
                self.csts = (self.csts & ~CSTS_SHST_MASK) | CSTS_SHST_DONE
                self.state.clean_shutdown = True
        self.after(delay, done)

    # -- resets (3.7) ---------------------------------------------------------
    def controller_reset(self) -> None:
        """Controller Level Reset: queues deleted, RDY and SHST cleared."""
        self.admin.reset()
        self.admin.firmware.controller_reset()
        self.core.queues_reset()
        self.state.controller_reset(self.core)
        self.apply_interrupt_features()
        self.apply_arbitration()
        keep_nssro = self.csts & CSTS_NSSRO
        self.csts = keep_nssro
        self.cc &= ~CC_EN

    def subsystem_reset(self) -> None:
        """NVM Subsystem Reset: as a conventional reset of the function; NSSRO set."""
        self.function_level_reset()
        self.csts |= CSTS_NSSRO

    def function_level_reset(self) -> None:
        self.controller_reset()
        self._registers_reset()
        self.pci.reset()
        self._msix_reset()

    def power_off(self) -> None:
        """Power is removed now: unflushed cache contents are lost."""
        if not self.powered:
            return
        self.admin.reset()
        self.admin.selftest.power_off()
        self.core.power_loss()
        self.state.power_off(self.core)
        self.powered = False
        self._timers.clear()

    def power_on(self) -> None:
        if self.powered:
            return
        self.powered = True
        self._registers_reset()
        self.pci.reset()
        self._msix_reset()
        self.state.power_on()
        # 3.7.1: main power applied is an NVM Subsystem Reset, and so a Controller Level
        # Reset: an image committed with CA 001b/010b becomes the running firmware.
        self.admin.firmware.controller_reset()
        self.state.apply_write_cache(self.core)
        self.state.apply_error_recovery(self.core)
        self.apply_interrupt_features()
        self.admin.sanitize.power_on()

    def reset(self, kind: int) -> None:
        if kind in (RESET_FLR, RESET_HOT):
            if self.powered:
                self.function_level_reset()
        elif kind == RESET_POWER_OFF:
            self.power_off()
        elif kind == RESET_POWER_ON:
            self.power_on()
        else:
            raise ValueError(f"reset kind {kind}")

    def apply_arbitration(self) -> None:
        """CC.AMS and the Arbitration feature as the data path applies them (4.13)."""
        self.core.wrr = ((self.cc >> 11) & 7) == 1
        self.core.arbitration = self.state.features.current(0x01)

    def apply_interrupt_features(self) -> None:
        """Interrupt Coalescing (5.27.1.6) and Interrupt Vector Configuration's CD
        (5.27.1.7) as the data path applies them."""
        feats = self.state.features
        v = feats.current(0x08)
        disabled = [bool(feats.current(0x09, vec) & (1 << 16)) for vec in range(self.cfg.vectors)]
        self.core.set_coalescing(v & 0xFF, (v >> 8) & 0xFF, disabled)

    def check_temperature(self) -> None:
        """Composite temperature against its thresholds (5.27.1.3): warning bit 1 and an event."""
        feats, st = self.state.features, self.state
        over = feats.current(0x04, 0)
        under = feats.current(0x04, 1)
        hot = st.temperature_k > over or (under and st.temperature_k < under)
        was = st.critical_warning & 0x2
        st.critical_warning = (st.critical_warning & ~0x2) | (0x2 if hot else 0)
        # 5.27.1.8: the event is sent only if AEC enables this critical warning bit.
        if hot and not was and feats.current(0x0B) & 0x2:
            self.admin.event(1, 0x01, 0x02)  # SMART/health: temperature threshold

    def fatal(self) -> None:
        """Controller Fatal Status: the controller stops processing commands."""
        self.csts |= CSTS_CFS

    # -- queue processing -----------------------------------------------------
    def run_queues(self) -> bool:
        if not self.can_run():
            return False
        progress = False
        for _ in range(64):
            n = self.admin.process()
            if not self.can_run():
                break
            n += self.core.process_io(4096)
            if not n:
                break
            progress = True
        self.admin.take_io_errors()
        self.admin.check_events()
        return progress


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def _handle(dev: SimDevice, sock: socket.socket) -> None:
    op, off, length, plen, val = REQ.unpack(_recv_exact(sock, REQ.size))
    payload = _recv_exact(sock, plen) if plen else b""
    err, rval, reply = 0, 0, b""
    try:
        if op == OP_CFG_READ:
            rval = dev.pci.read(off, length) if dev.powered else (1 << (8 * length)) - 1
        elif op == OP_CFG_WRITE:
            if dev.powered:
                dev.pci.write(off, length, val)
        elif op == OP_BAR_READ:
            rval = dev.bar_read(off, length)
        elif op == OP_BAR_WRITE:
            dev.bar_write(off, length, val)
        elif op == OP_RESET:
            dev.reset(val)
        elif op == OP_CONTROL:
            reply = json.dumps(dev.control.handle(json.loads(payload))).encode()
        else:
            err = 22  # EINVAL
    except Exception as e:  # a bad request never kills the device
        err = 22
        reply = json.dumps({"error": f"{type(e).__name__}: {e}"}).encode()
    sock.sendall(REP.pack(err, len(reply), rval) + reply)


def _die_with_parent() -> None:
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def serve(fd: int) -> int:
    """Run the device on the connected socket ``fd`` until the host goes away."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the host's to handle
    sock = socket.socket(fileno=fd)
    hdr, fds, _, _ = socket.recv_fds(sock, 4, 128)
    (n,) = struct.unpack("<I", hdr)
    hello = json.loads(_recv_exact(sock, n))
    arena_fd, bar_fd, db_fd, *irq_fds = fds
    config = SimConfig.from_dict(hello["config"])
    core = _core.SimCore(bar_fd, arena_fd, hello["arena_size"], irq_fds)
    dev = SimDevice(core, config)
    os.set_blocking(db_fd, False)
    sock.sendall(b"RDY!")
    spin_ns = int(float(os.environ.get("AIONVME_SIM_SPIN_US", "50")) * 1000)
    check_admin = True
    while True:
        due = dev.run_timers()
        deadline = time.monotonic_ns() + int(due * 1e9) if due is not None else 0
        # IO runs in C without the GIL until the control plane has work.
        wake = core.run(db_fd, sock.fileno(), deadline, spin_ns, dev.can_run(), check_admin)
        if wake == WAKE_SOCKET:
            try:
                _handle(dev, sock)
            except (EOFError, ConnectionError):
                return 0
        progress = dev.run_queues()
        # An admin wake that fetched nothing must not come straight back.
        check_admin = progress or wake != WAKE_ADMIN
