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

from aionvme import _core
from aionvme import capabilities as caps
from aionvme.exceptions import DeviceError, InterfaceError

NAME = "kernel"
ADDRESS = re.compile(r"^/dev/nvme(\d+)$")
RESET, SUBSYS_RESET, RESCAN = 0, 1, 2


def is_address(address: Any) -> bool:
    return isinstance(address, str) and ADDRESS.match(address) is not None


class KernelTransport:
    """The controller ``/dev/nvmeN`` and the generic devices of its namespaces,
    behind the verbs of ``aionvme.transport.base.Transport``.  The sysfs and /dev
    roots are injectable for tests."""

    name = NAME
    # Nothing of the PCIe function is ours: commands pass through, the kernel
    # decides the rest (its resets are offered by controller_reset()).  Workers
    # run their own io_uring (worker_queue()).
    capabilities: frozenset[str] = frozenset({caps.IOWORKER})
    device = None

    def __init__(self, address: str, *, sysfs: str = "/sys", dev: str = "/dev") -> None:
        m = ADDRESS.match(address)
        if m is None:
            raise InterfaceError(f"address {address!r} is not a controller device /dev/nvmeN")
        self.address = address
        self.instance = int(m.group(1))
        self._sysfs = sysfs
        self._dev = dev
        self.loop: Any = None
        self._queues: list[Any] = []
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
        self._ns_fds: dict[int, int] = {}
        self._ns_paths: dict[int, str] = {}
        self._worker_qid = 0x8000  # labels of ioworker rings, above any Qpair's qid
        self._closed = False
        try:
            self._open_namespaces()
        except BaseException:
            self.close()
            raise

    @property
    def backend_name(self) -> str:
        return NAME

    def _missing(self, capability: str, what: str) -> None:
        caps.require(self.capabilities, capability, NAME, what)

    # -- namespaces ----------------------------------------------------------
    def generic_devices(self) -> list[str]:
        """The /dev/ngXnY of this controller's namespaces (from sysfs, by name when
        sysfs cannot tell)."""
        ctrl = os.path.realpath(os.path.join(self._sysfs, "class", "nvme", f"nvme{self.instance}"))
        out = []
        for link in sorted(glob.glob(os.path.join(self._sysfs, "class", "nvme-generic", "ng*"))):
            if os.path.realpath(os.path.join(link, "device")) == ctrl:
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
            self._ns_paths[nsid] = path

    @property
    def namespaces(self) -> dict[int, int]:
        """NSID -> descriptor of its generic char device."""
        return dict(self._ns_fds)

    # -- registers: the driver's --------------------------------------------------
    def reg_read(self, offset: int, size: int = 4) -> int:
        self._missing(caps.REGISTERS, f"register {offset:#x}")
        return 0

    def reg_write(self, offset: int, size: int, value: int) -> None:
        self._missing(caps.REGISTERS, f"register {offset:#x}")

    def cfg_read(self, offset: int, size: int) -> int:
        self._missing(caps.CONFIG_SPACE, "PCI configuration space")
        return 0

    def cfg_write(self, offset: int, size: int, value: int) -> None:
        self._missing(caps.CONFIG_SPACE, "PCI configuration space")

    def msix_mask(self, vector: int, masked: bool) -> None:
        self._missing(caps.MSIX, f"MSI-X vector {vector}")

    def msix_pending(self, vector: int) -> bool:
        self._missing(caps.MSIX, f"MSI-X vector {vector}")
        return False

    def irq_count(self, vector: int) -> int:
        self._missing(caps.MSIX, f"MSI-X vector {vector}")
        return 0

    # -- bring-up and queues --------------------------------------------------------
    async def start(self, admin_depth: int) -> None:
        """Nothing to connect: the controller device is open."""

    def prepare(self, loop: Any) -> int:
        """Nothing to set up: the controller is live.  No vectors are the host's."""
        self.loop = loop
        return 0

    def admin_queue(self, depth: int, dstrd: int = 0) -> Any:
        q = _core.KernelAdminQueue(self.fd, depth)
        q.loop = self.loop
        return q

    def set_admin_queue(self, aq: Any, depth: int) -> None:
        """The kernel's admin queue carries our commands; nothing to program."""

    def io_queue(self, qid: int, depth: int, dstrd: int = 0) -> Any:
        """An io_uring of ``depth`` entries serving every namespace of the controller."""
        if not self._ns_fds:
            raise DeviceError(f"{self.address} has no namespace with a generic char device "
                              "(/dev/ngXnY, Linux 5.13+): I/O passthrough needs one")
        q = _core.KernelQpair(self._ns_fds[min(self._ns_fds)], qid, depth)
        q.fds = dict(self._ns_fds)
        q.loop = self.loop
        return q

    async def connect_io_queue(self, queue: Any) -> None:
        """Nothing to create on the controller: the ring is the queue; its eventfd
        goes on the loop."""
        self.attach(queue, 0)

    async def disconnect_io_queue(self, queue: Any) -> None:
        """Nothing to delete on the controller (Qpair.delete detaches and closes it)."""

    def attach(self, queue: Any, vector: int) -> None:
        """The ring's eventfd goes on the loop (add_reader), as a vector's would."""
        queue.start()
        if queue not in self._queues:
            self._queues.append(queue)

    def detach(self, queue: Any, vector: int) -> None:
        queue.stop()
        if queue in self._queues:
            self._queues.remove(queue)

    def poll(self, vector: int) -> None:
        for q in list(self._queues):
            q.reap()

    def doorbell_fds(self) -> Any:
        self._missing(caps.RAW_QUEUES, "an ioworker's own doorbells")

    def worker_queue(self, nsid: int, depth: int) -> dict[str, Any]:
        """What an ioworker process needs to make its own io_uring of ``depth``
        entries for namespace ``nsid``: the generic char device to open.  ``qid``
        labels its cmdlog (the next number no queue of this process uses)."""
        path = self._ns_paths.get(nsid)
        if path is None:
            raise InterfaceError(f"namespace {nsid} of {self.address} has no generic char device "
                                 f"(/dev/ngXnY): it has {sorted(self._ns_paths)}")
        self._worker_qid += 1
        return {"path": path, "qid": self._worker_qid, "depth": depth}

    def stop_pollers(self) -> None:
        for q in self._queues:
            q.stop()
        self._queues.clear()

    # -- the kernel's resets ----------------------------------------------------
    def controller_reset(self) -> None:
        """NVME_IOCTL_RESET: the kernel resets the controller and re-creates its own
        queues; ours (the ioctl, the rings) carry on (blocking: use an executor)."""
        _core.kernel_reset(self.fd, RESET)

    def subsystem_reset(self) -> None:
        """NVME_IOCTL_SUBSYS_RESET (NVM subsystem reset; the kernel refuses with
        ENOTTY where CAP.NSSRS is 0)."""
        _core.kernel_reset(self.fd, SUBSYS_RESET)

    def rescan(self) -> None:
        """NVME_IOCTL_RESCAN: the kernel looks for namespaces again."""
        _core.kernel_reset(self.fd, RESCAN)

    # -- life ----------------------------------------------------------------------
    def death(self) -> str | None:
        return None

    def set_power_loss_hook(self, hook: Any) -> None:
        """No software power loss on a real drive: nothing calls it."""

    def power_off(self) -> None:
        self._missing(caps.POWER_CYCLE, "power off")

    def power_on(self) -> None:
        self._missing(caps.POWER_CYCLE, "power on")

    def extension(self, name: str) -> Any:
        raise InterfaceError(f"the {NAME} backend has no extension {name!r}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in self._ns_fds.values():
            os.close(fd)
        self._ns_fds.clear()
        os.close(self.fd)
