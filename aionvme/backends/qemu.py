"""The ``qemu`` backend: QEMU's NVMe controller (hw/nvme) over qtest.

Addresses ``qemu`` / ``qemu:KEY=VALUE,...``.  Keys aionvme uses itself:
``size`` (each namespace, default 1G), ``lba_size`` (512 or 4096),
``namespaces`` (how many, default 1).  Every other key goes to QEMU's
``-device nvme`` as it is, e.g. ``qemu:mdts=5,max_ioqpairs=8``.

Guest RAM is the DMA arena's memfd (``memory-backend-file,share=on`` on
/proc/PID/fd/N), so IOVA = guest physical address = arena offset.  The vCPU
is parked on a BIOS of ``hlt`` bytes: Debian's QEMU has no qtest
accelerator, and a real BIOS would move BAR0 under our feet.  Namespace
images and the BIOS are memfds too, so nothing is left on disk; QEMU dies
with this process (PR_SET_PDEATHSIG) and is killed on close.
"""
from __future__ import annotations

import ctypes
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any, Callable

from aionvme import _core
from aionvme import capabilities as caps
from aionvme.checks import parse_size
from aionvme.exceptions import DeviceError, InterfaceError

QEMU = "qemu-system-x86_64"
DEVFN = 4 << 3  # the controller sits at 00:04.0
START_TIMEOUT = 30.0

OUR_KEYS = {"size", "lba_size", "namespaces"}


@dataclasses.dataclass
class QemuConfig:
    size: int = 1 << 30
    lba_size: int = 512
    namespaces: int = 1
    device_opts: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def vectors(self) -> int:
        return min(64, int(self.device_opts.get("msix_qsize", "64")))

    @classmethod
    def from_address(cls, address: str) -> "QemuConfig":
        cfg = cls()
        opts = address.split(":", 1)[1] if ":" in address else ""
        for item in filter(None, opts.split(",")):
            key, sep, value = item.partition("=")
            if not sep or not re.fullmatch(r"[a-z_][a-z0-9_.-]*", key) or "," in value:
                raise InterfaceError(f"qemu option {item!r} is not KEY=VALUE")
            if key == "size":
                cfg.size = parse_size(value, "size")
            elif key == "lba_size":
                cfg.lba_size = int(value)
            elif key == "namespaces":
                cfg.namespaces = int(value)
            else:
                cfg.device_opts[key] = value
        if cfg.lba_size not in (512, 4096):
            raise InterfaceError(f"lba_size {cfg.lba_size} must be 512 or 4096")
        if not 1 <= cfg.namespaces <= 16:
            raise InterfaceError(f"namespaces {cfg.namespaces} is outside 1..16")
        if cfg.size < 1 << 20 or cfg.size % cfg.lba_size:
            raise InterfaceError(f"size {cfg.size} must be at least 1 MiB and whole LBAs")
        cfg.device_opts.setdefault("msix_qsize", "64")
        cfg.device_opts.setdefault("serial", "AIONVME-QEMU-0001")
        if not 1 <= int(cfg.device_opts["msix_qsize"]) <= 64:
            raise InterfaceError("msix_qsize must be within 1..64")
        return cfg


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def available() -> str | None:
    """Why QEMU cannot run here, or None when it can."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} is not installed (Debian package qemu-system-x86)"
    return None


class QemuProcess:
    """A QEMU process with one NVMe controller, and the Device attached to it."""

    name = "qemu"
    # A power cycle restarts QEMU; no NSSR register write is modelled by aionvme here:
    # CAP.NSSRS says whether QEMU's controller has one.
    capabilities = caps.PCIE | {caps.NSSR, caps.POWER_CYCLE}

    def __init__(self, config: QemuConfig) -> None:
        why = available()
        if why:
            raise InterfaceError(f"the qemu backend cannot start: {why}")
        self.config = config
        self._arena = _core.arena()
        self._fds: list[int] = []
        self._images = [self._memfd(f"aionvme-ns{i + 1}", config.size)
                        for i in range(config.namespaces)]
        self._bios = self._memfd("aionvme-hlt-bios", 0)
        os.write(self._bios, b"\xf4" * 65536)  # hlt: the vCPU parks at the reset vector
        self.proc: subprocess.Popen | None = None
        self._powered = False
        self.on_power_loss: Callable[[], None] | None = None  # unused: no surprise power loss
        irq_fds = [os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK) for _ in range(config.vectors)]
        sock = self._start()
        self.device = _core.Device.open_qemu(sock.detach(), DEVFN, irq_fds)

    def _memfd(self, name: str, size: int) -> int:
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
        if size:
            os.ftruncate(fd, size)
        self._fds.append(fd)
        return fd

    def _path(self, fd: int) -> str:
        return f"/proc/{os.getpid()}/fd/{fd}"

    def _cmdline(self, sock_path: str) -> list[str]:
        cfg, ram = self.config, self._arena.size
        cmd = [QEMU, "-machine", "q35,memory-backend=mem", "-m", f"{ram >> 20}M",
               "-object", f"memory-backend-file,id=mem,size={ram},mem-path={self._path(self._arena.fd)},share=on",
               "-qtest", f"unix:{sock_path}", "-qtest-log", "/dev/null",
               "-display", "none", "-nodefaults", "-bios", self._path(self._bios)]
        opts = ",".join(f"{k}={v}" for k, v in cfg.device_opts.items())
        cmd += ["-device", f"nvme,id=nvme0,addr=04.0,{opts}"]
        for i, fd in enumerate(self._images, 1):
            # discard=unmap: without it QEMU's block layer drops every discard, so
            # Dataset Management deallocates nothing while the namespace reports
            # DLFEAT 001b (legal, NVM 3.2.3 is advisory, but not what a test expects).
            cmd += ["-drive", f"if=none,id=d{i},file={self._path(fd)},format=raw,cache=writeback,"
                              "discard=unmap",
                    "-device", f"nvme-ns,drive=d{i},bus=nvme0,nsid={i},"
                               f"logical_block_size={cfg.lba_size},physical_block_size={cfg.lba_size}"]
        return cmd

    def _start(self) -> socket.socket:
        tmp = tempfile.mkdtemp(prefix="aionvme-qemu-")
        sock_path = os.path.join(tmp, "qtest.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            srv.bind(sock_path)
            srv.listen(1)
            self.proc = subprocess.Popen(self._cmdline(sock_path), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         preexec_fn=_die_with_parent)
            srv.settimeout(0.2)
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                try:
                    conn, _ = srv.accept()
                    break
                except socket.timeout:
                    if self.proc.poll() is not None:
                        err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                        raise DeviceError(f"QEMU exited with code {self.proc.returncode}: {err.strip()}")
                    if time.monotonic() > deadline:
                        self._kill()
                        raise DeviceError(f"QEMU did not connect to qtest within {START_TIMEOUT:.0f} s")
            conn.setblocking(True)
            self._powered = True
            return conn
        finally:
            srv.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()
            if self.proc.stderr:
                self.proc.stderr.close()

    # -- the backend protocol (aionvme.backends.Backend) ---------------------------------
    def death(self) -> str | None:
        if self._powered and self.proc is not None and self.proc.poll() is not None:
            return f"the qemu device process exited with code {self.proc.returncode}"
        return None

    def power_off(self) -> None:
        """Power is removed: QEMU stops at once (what it had written stays in the images)."""
        self._powered = False
        self._kill()

    def power_on(self) -> None:
        if self._powered:
            return
        self.device.reconnect(self._start().detach())

    def extension(self, name: str) -> Any:
        raise InterfaceError(f"the qemu backend has no extension {name!r}")

    def close(self) -> None:
        self._powered = False
        self.device.close()
        self._kill()
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
