"""The ``vfio`` backend: a PCIe NVMe controller bound to vfio-pci, driven from user space.

Address: a PCI address, ``0000:01:00.0`` or the seed's short ``01:00.0``
(str or bytes).  The controller must be bound to vfio-pci (``aionvme setup``
does it), and every other device of its IOMMU group must be bound to
vfio-pci or to no driver: the backend refuses the device otherwise, naming
them.  The DMA arena is mapped into the device's IOMMU at IOVA = arena offset
(the native side, ext/src/dev/vfio.c, has the details), so a PRP outside the
arena is stopped by the IOMMU and never reaches host memory.

The arena is pinned while the device is open (VFIO type1 pins what it maps):
``AIONVME_ARENA_MB`` (default 1024) sizes it.  ``AIONVME_VFIO_VECTORS``
(default and at most 64) bounds the interrupt vectors wired.

Power has no software path on real hardware: ``Subsystem(nvme0, poweroff=cb,
poweron=cb)`` gives the backend two callables (a lab power switch, pynvme
1.7's design); without them a power cycle raises InterfaceError.  After the
``poweron`` callable returns, the backend waits for the device to be back in
sysfs (rescanning the bus), binds it to vfio-pci and opens it again.
"""
from __future__ import annotations

import os
import re
import time
from typing import Any, Callable

from aionvme import _core
from aionvme import capabilities as caps
from aionvme.exceptions import DeviceError, InterfaceError

SYSFS = "/sys/bus/pci/devices"
DEFAULT_VECTORS = 64
POWER_ON_TIMEOUT = 30.0
# Drivers VFIO itself accepts beside vfio-pci in a viable group (drivers/vfio, vfio_driver_allowed).
_ALLOWED = {"vfio-pci", "pci-stub"}
_BDF = re.compile(r"^(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-1][0-9a-fA-F])\.([0-7])$")


def parse_address(address: str | bytes) -> str | None:
    """The canonical ``dddd:bb:dd.f`` of a PCI address (``01:00.0`` means domain 0),
    or None when ``address`` is not one."""
    if isinstance(address, bytes):
        try:
            address = address.decode()
        except UnicodeDecodeError:
            return None
    if not isinstance(address, str):
        return None
    m = _BDF.match(address.strip())
    if m is None:
        return None
    domain, bus, dev, fn = m.groups()
    return f"{domain or '0000'}:{bus}:{dev}.{fn}".lower()


def _driver(bdf: str) -> str | None:
    link = os.path.join(SYSFS, bdf, "driver")
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


def _group(bdf: str) -> int:
    link = os.path.join(SYSFS, bdf, "iommu_group")
    if not os.path.islink(link):
        raise InterfaceError(
            f"{bdf} has no IOMMU group: turn the IOMMU on (intel_iommu=on or amd_iommu=on on the "
            f"kernel command line, VT-d/AMD-Vi in the firmware)")
    return int(os.path.basename(os.readlink(link)))


def check_device(bdf: str) -> int:
    """The IOMMU group of ``bdf`` after checking it can be opened; InterfaceError says why not."""
    if not os.path.isdir(os.path.join(SYSFS, bdf)):
        raise InterfaceError(f"address {bdf!r}: no PCI function there ({SYSFS}/{bdf} is missing)")
    drv = _driver(bdf)
    if drv != "vfio-pci":
        raise InterfaceError(
            f"address {bdf!r}: the function is bound to {drv or 'no driver'}, not vfio-pci "
            f"(bind it with `aionvme setup {bdf}`)")
    group = _group(bdf)
    others = []
    gdir = os.path.join(SYSFS, bdf, "iommu_group", "devices")
    for other in sorted(os.listdir(gdir)):
        d = _driver(other)
        if other != bdf and d is not None and d not in _ALLOWED:
            others.append(f"{other} ({d})")
    if others:
        raise InterfaceError(
            f"address {bdf!r}: IOMMU group {group} also holds devices bound to other drivers: "
            f"{', '.join(others)}; bind them to vfio-pci or unbind them first")
    if not os.path.exists(f"/dev/vfio/{group}"):
        raise InterfaceError(f"address {bdf!r}: /dev/vfio/{group} is missing (is vfio-pci loaded?)")
    if not os.access(f"/dev/vfio/{group}", os.R_OK | os.W_OK):
        raise InterfaceError(f"address {bdf!r}: no permission on /dev/vfio/{group} (run as root)")
    return group


def _vectors() -> int:
    raw = os.environ.get("AIONVME_VFIO_VECTORS", str(DEFAULT_VECTORS))
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if not 1 <= n <= 64:
        raise InterfaceError(f"AIONVME_VFIO_VECTORS={raw!r}: an int in 1..64 expected")
    return n


class VfioDevice:
    """A controller on vfio-pci and the Device attached to it (the backend protocol
    of aionvme.backends.Backend)."""

    name = "vfio"
    # NSSR where CAP.NSSRS says so (a register write); power cycle only once
    # Subsystem(nvme0, poweroff=, poweron=) gave the callables.
    capabilities = caps.PCIE | {caps.NSSR}

    def __init__(self, address: str | bytes) -> None:
        bdf = parse_address(address)
        if bdf is None:
            raise InterfaceError(f"address {address!r} is not a PCI address such as '0000:01:00.0'")
        self.address = bdf
        self.poweroff: Callable[[], Any] | None = None
        self.poweron: Callable[[], Any] | None = None
        self._powered = False
        self.on_power_loss: Callable[[], None] | None = None  # no surprise power loss by software
        self.device = self._open()
        self._powered = True

    def _open(self) -> Any:
        group = check_device(self.address)
        self.group = group
        irq_fds = [os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK) for _ in range(_vectors())]
        return _core.Device.open_vfio(self.address, group, irq_fds)

    @property
    def irq_kind(self) -> str:
        """"msix", or "msi" for a device without MSI-X (vectors wired through MSI)."""
        return str(self.device.irq_kind)

    def set_power_callbacks(self, poweroff: Callable[[], Any] | None,
                            poweron: Callable[[], Any] | None) -> None:
        """What removes and restores the drive's power (Subsystem(nvme0, poweroff=, poweron=))."""
        for name, cb in (("poweroff", poweroff), ("poweron", poweron)):
            if cb is not None and not callable(cb):
                raise InterfaceError(f"{name} must be callable, not {type(cb).__name__}")
        self.poweroff, self.poweron = poweroff, poweron
        have = type(self).capabilities
        self.capabilities = have | {caps.POWER_CYCLE} if poweroff and poweron else have

    # -- the backend protocol (aionvme.backends) ---------------------------------
    def death(self) -> str | None:
        if self._powered and not os.path.isdir(os.path.join(SYSFS, self.address)):
            return f"the PCI function {self.address} is gone (surprise removal?)"
        return None

    def _need_callbacks(self) -> None:
        if self.poweroff is None or self.poweron is None:
            raise InterfaceError(
                f"{self.address} is a real drive: a power cycle needs the callables that switch its "
                f"power, Subsystem(nvme0, poweroff=cb, poweron=cb)")

    def power_off(self) -> None:
        """Call the ``poweroff`` callable; the device's fds are released first."""
        self._need_callbacks()
        self._powered = False
        self.device.vfio_release()  # the eventfds stay: the pollers keep them
        assert self.poweroff is not None
        self.poweroff()

    def power_on(self) -> None:
        """Call the ``poweron`` callable, wait for the function to come back, open it again."""
        if self._powered:
            return
        self._need_callbacks()
        assert self.poweron is not None
        self.poweron()
        deadline = time.monotonic() + POWER_ON_TIMEOUT
        path = os.path.join(SYSFS, self.address)
        while not os.path.isdir(path):
            if time.monotonic() > deadline:
                raise DeviceError(f"{self.address} did not come back within {POWER_ON_TIMEOUT:.0f} s "
                                  f"of power on")
            try:
                with open("/sys/bus/pci/rescan", "w") as f:
                    f.write("1")
            except OSError:
                pass
            time.sleep(0.2)
        if _driver(self.address) is None:
            with open(os.path.join(path, "driver_override"), "w") as f:
                f.write("vfio-pci")
            with open("/sys/bus/pci/drivers_probe", "w") as f:
                f.write(self.address)
        self.device.vfio_reopen(self.address, check_device(self.address))
        self._powered = True

    def extension(self, name: str) -> Any:
        raise InterfaceError(f"the vfio backend has no extension {name!r}")

    def close(self) -> None:
        self._powered = False
        self.device.close()
