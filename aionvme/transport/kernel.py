"""The kernel transport: a controller left on Linux's nvme driver.

Address ``/dev/nvmeN`` (the controller's character device).  Admin commands
go through ``NVME_IOCTL_ADMIN64_CMD`` on it (``_core.KernelAdminQueue``), I/O
commands through io_uring passthrough (``IORING_OP_URING_CMD`` with
``NVME_URING_CMD_IO``, Linux 5.19+) on each namespace's generic character
device ``/dev/ngNnM`` (``_core.KernelQpair``); a ring's completions wake the
event loop through its registered eventfd, as an MSI-X vector's eventfd does
on PCIe.  One ring serves every namespace, like an I/O queue pair.

The kernel owns the controller: registers, configuration space, MSI-X, queue
creation, the data pointer (PRP/SGL), AER and resets other than its own
``NVME_IOCTL_RESET`` / ``NVME_IOCTL_SUBSYS_RESET`` are hidden, and asking for
them raises ``CapabilityError`` naming ``kernel`` and the capability.
"""
from __future__ import annotations

import glob
import os
import re
import stat
from typing import Any

from aionvme import _core, capabilities
from aionvme.exceptions import CapabilityError, DeviceError, InterfaceError

NAME = "kernel"
ADDRESS = re.compile(r"^/dev/nvme(\d+)$")
RESET, SUBSYS_RESET, RESCAN = 0, 1, 2


def is_address(address: Any) -> bool:
    return isinstance(address, str) and ADDRESS.match(address) is not None


class KernelDevice:
    """Stands where a PCIe backend's ``_core.Device`` stands: every register or
    configuration space access names the capability the kernel hides."""

    backend = NAME
    nvec = 0

    def bar_read(self, off: int, size: int = 4) -> int:
        raise CapabilityError(NAME, "registers", "the nvme driver owns BAR0")

    def bar_write(self, off: int, size: int, value: int) -> None:
        raise CapabilityError(NAME, "registers", "the nvme driver owns BAR0")

    def cfg_read(self, off: int, size: int = 4) -> int:
        raise CapabilityError(NAME, "config_space", "use lspci/sysfs for a kernel-bound drive")

    def cfg_write(self, off: int, size: int, value: int) -> None:
        raise CapabilityError(NAME, "config_space", "use lspci/sysfs for a kernel-bound drive")

    def irq_fd(self, vector: int) -> int:
        raise CapabilityError(NAME, "msix", "the nvme driver owns the interrupts")

    def reset(self, kind: int) -> None:
        raise CapabilityError(NAME, "flr", "only NVME_IOCTL_RESET and NVME_IOCTL_SUBSYS_RESET")


class KernelBackend:
    """The controller ``/dev/nvmeN`` and the generic devices of its namespaces.

    ``admin_queue(loop, depth)`` and ``io_queue(loop, qid, depth)`` build the
    queues; ``reset()`` / ``subsystem_reset()`` are the kernel's resets.  The
    sysfs root is injectable for tests.
    """

    name = NAME
    capabilities = capabilities.of(NAME)

    def __init__(self, address: str, *, sysfs: str = "/sys", dev: str = "/dev") -> None:
        m = ADDRESS.match(address)
        if m is None:
            raise InterfaceError(f"address {address!r} is not a controller device /dev/nvmeN")
        self.address = address
        self.instance = int(m.group(1))
        self._sysfs = sysfs
        self._dev = dev
        try:
            st = os.stat(address)
        except FileNotFoundError:
            raise InterfaceError(f"{address} does not exist: is the drive bound to nvme.ko "
                                 "(aionvme list)?") from None
        if not stat.S_ISCHR(st.st_mode):
            raise InterfaceError(f"{address} is not a character device")
        try:
            self.fd = os.open(address, os.O_RDWR | os.O_CLOEXEC)
        except PermissionError as e:
            raise InterfaceError(f"{address}: {e.strerror}: NVMe passthrough needs root "
                                 "(CAP_SYS_ADMIN) or write permission on the device") from None
        self.device = KernelDevice()
        self._ns_fds: dict[int, int] = {}
        self._closed = False
        try:
            self._open_namespaces()
        except BaseException:
            self.close()
            raise

    # -- namespaces ----------------------------------------------------------
    def generic_devices(self) -> list[str]:
        """The /dev/ngXnY of this controller's namespaces (from sysfs, by name when
        sysfs cannot tell)."""
        ctrl = os.path.realpath(os.path.join(self._sysfs, "class", "nvme", f"nvme{self.instance}"))
        out = []
        for link in sorted(glob.glob(os.path.join(self._sysfs, "class", "nvme-generic", "ng*"))):
            parent = os.path.realpath(os.path.join(link, "device"))
            if parent == ctrl:
                out.append(os.path.join(self._dev, os.path.basename(link)))
        if not out:
            out = sorted(glob.glob(os.path.join(self._dev, f"ng{self.instance}n*")))
        return out

    def _open_namespaces(self) -> None:
        for path in self.generic_devices():
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                nsid = _core.kernel_nsid(fd)
            except OSError:
                os.close(fd)
                continue
            self._ns_fds[nsid] = fd

    @property
    def namespaces(self) -> dict[int, int]:
        """NSID -> descriptor of its generic char device."""
        return dict(self._ns_fds)

    # -- queues ----------------------------------------------------------------
    def admin_queue(self, loop: Any, depth: int = 64) -> Any:
        q = _core.KernelAdminQueue(self.fd, depth)
        q.loop = loop
        return q

    def io_queue(self, loop: Any, qid: int, depth: int) -> Any:
        if not self._ns_fds:
            raise DeviceError(f"{self.address} has no namespace with a generic char device "
                              "(/dev/ngXnY, Linux 5.13+): I/O passthrough needs one")
        default = min(self._ns_fds)
        q = _core.KernelQpair(self._ns_fds[default], qid, depth)
        q.fds = dict(self._ns_fds)
        q.loop = loop
        q.start()
        return q

    # -- the kernel's resets ----------------------------------------------------
    def reset(self) -> None:
        """NVME_IOCTL_RESET: the kernel resets the controller and re-creates its queues."""
        _core.kernel_reset(self.fd, RESET)

    def subsystem_reset(self) -> None:
        """NVME_IOCTL_SUBSYS_RESET (NVM subsystem reset, where CAP.NSSRS allows it)."""
        _core.kernel_reset(self.fd, SUBSYS_RESET)

    def rescan(self) -> None:
        _core.kernel_reset(self.fd, RESCAN)

    # -- Backend protocol ------------------------------------------------------
    def death(self) -> str | None:
        return None

    def power_off(self) -> None:
        raise CapabilityError(NAME, "power_cycle")

    def power_on(self) -> None:
        raise CapabilityError(NAME, "power_cycle")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in self._ns_fds.values():
            os.close(fd)
        self._ns_fds.clear()
        os.close(self.fd)


# -- the public API's hooks (Controller, Qpair) ---------------------------------
async def enable(nvme: Any) -> None:
    """Controller bring-up over the kernel: the controller is already live; read
    what the PCIe path reads (Identify Controller, the Commands Supported and
    Effects log, Number of Queues) through the admin ioctl."""
    backend = nvme._backend
    if nvme._aq is None:
        nvme._aq = backend.admin_queue(nvme._loop, nvme._admin_depth)
    idbuf = _core.Buffer(4096, "identify controller")
    await nvme.identify(idbuf, 0, 1)
    nvme._id_ctrl = bytes(idbuf[0:4096])
    nvme._effects = b""
    if nvme._id_ctrl[261] & 0x2:  # LPA bit 1: Commands Supported and Effects log page
        cse = _core.Buffer(4096, "commands supported and effects")
        cpl = await nvme.getlogpage(0x05, cse, 4096, check=False)
        if cpl.ok:
            nvme._effects = bytes(cse[0:4096])
    cpl = await nvme.getfeatures(0x07, check=False)
    # Number of Queues (5.27.1.5): what the controller allocated, the kernel's queues
    # included; a KernelQpair uses none of them, so this only bounds the qids handed out.
    nvme.max_io_queues = min(cpl.cdw0 & 0xFFFF, cpl.cdw0 >> 16) + 1 if cpl.ok else 1
    nvme.vectors = 0


def init_qpair(qp: Any, depth: int, prio: int, ien: bool, vector: int | None,
               reap: bool) -> None:
    """``Qpair(nvme, depth)`` over the kernel: an io_uring of ``depth`` entries."""
    nvme = qp.nvme
    if not isinstance(depth, int) or not 2 <= depth <= 4096:
        raise InterfaceError(f"depth {depth} is outside 2..4096 (io_uring entries)")
    if prio:
        raise CapabilityError(NAME, "raw_queues", "the kernel creates its queues (QPRIO)")
    if vector is not None:
        raise CapabilityError(NAME, "msix", "the nvme driver owns the interrupts")
    if not reap:
        raise CapabilityError(NAME, "ioworker", "no worker process can reap a kernel queue yet")
    qid = next(q for q in range(1, 65536) if q not in nvme._io_qpairs)
    qp.depth, qp.prio, qp.qid, qp.vector, qp.ien, qp.reap = depth, 0, qid, 0, ien, True
    qp._core = nvme._backend.io_queue(nvme._loop, qid, depth)
    qp._created = False
    nvme._io_qpairs[qid] = qp


async def reset(nvme: Any) -> None:
    """Controller reset the kernel's way (NVME_IOCTL_RESET): outstanding commands of
    aionvme's queues fail with QueueDeletedError or the kernel's EINTR."""
    from aionvme.exceptions import QueueDeletedError

    def exc(cid: int) -> Exception:
        return QueueDeletedError("the command was lost to a controller reset")
    for qp in nvme._io_qpairs.values():
        qp._core.reset_rings(exc)
    await nvme._loop.run_in_executor(None, nvme._backend.reset)


async def subsystem_reset(nvme: Any) -> None:
    """NVM subsystem reset the kernel's way (NVME_IOCTL_SUBSYS_RESET)."""
    await nvme._loop.run_in_executor(None, nvme._backend.subsystem_reset)
