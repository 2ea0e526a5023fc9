"""Safe binding of NVMe controllers to vfio-pci and back (``aionvme list``,
``aionvme setup``, ``aionvme reset``), like SPDK's ``setup.sh``.

``setup`` refuses, naming the reason, a controller any of whose namespaces
(or their partitions, or what is stacked on them) holds a mounted filesystem,
swap, an LVM/MD/dm member (holders in sysfs) or an open block device; the root
filesystem is never given up, ``force`` or not.  Everything is read from
``sysfs`` and ``proc`` roots given to ``System``, so tests run against a fake
tree; ``System.write`` is the one place that changes the machine.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import re
import subprocess
from typing import Callable, Iterable

from aionvme.exceptions import InterfaceError

NVME_CLASS = "0x010802"  # mass storage, non-volatile memory, NVM Express
PCI_ADDR = re.compile(r"^(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$")
NS_BLOCK = re.compile(r"^nvme\d+n\d+$")
IOMMU_HOWTO = ("no IOMMU is on: enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware "
               "setup and boot Linux with intel_iommu=on (or amd_iommu=on) iommu=pt")


class DeviceInUse(InterfaceError):
    """``setup`` refused a controller: ``reasons`` say what uses its namespaces."""

    def __init__(self, address: str, reasons: list[str]) -> None:
        super().__init__(f"{address} is in use, not bound to vfio-pci: " + "; ".join(reasons))
        self.address = address
        self.reasons = reasons


def normalize(address: str) -> str:
    """``01:00.0`` -> ``0000:01:00.0``; anything else is an InterfaceError."""
    m = PCI_ADDR.match(address.strip()) if isinstance(address, str) else None
    if m is None:
        raise InterfaceError(f"address {address!r} is not a PCI address such as 0000:01:00.0")
    dom, bus, dev, fn = m.groups()
    return f"{(dom or '0000').lower()}:{bus.lower()}:{dev.lower()}.{fn}"


@dataclasses.dataclass
class Nvme:
    """One NVMe controller as ``aionvme list`` shows it."""
    address: str
    vendor: str
    device: str
    driver: str | None
    iommu_group: str | None
    model: str = ""
    serial: str = ""
    namespaces: list[str] = dataclasses.field(default_factory=list)
    in_use: list[str] = dataclasses.field(default_factory=list)
    root: bool = False  # the root filesystem lives on it


class System:
    """The machine as sysfs and proc show it; ``write`` changes it."""

    def __init__(self, sysfs: str = "/sys", proc: str = "/proc",
                 run: Callable[[list[str]], int] | None = None) -> None:
        self.sysfs, self.proc = sysfs, proc
        self.run = run or (lambda cmd: subprocess.run(cmd, capture_output=True).returncode)
        self.log: list[str] = []

    # -- reading ---------------------------------------------------------------
    def _read(self, *parts: str) -> str:
        try:
            with open(os.path.join(*parts)) as f:
                return f.read().strip()
        except OSError:
            return ""

    def _link(self, *parts: str) -> str | None:
        p = os.path.join(*parts)
        return os.path.basename(os.path.realpath(p)) if os.path.islink(p) else None

    def pci(self, address: str) -> str:
        return os.path.join(self.sysfs, "bus", "pci", "devices", address)

    def addresses(self) -> list[str]:
        base = os.path.join(self.sysfs, "bus", "pci", "devices")
        return sorted(a for a in os.listdir(base) if self._read(base, a, "class") == NVME_CLASS) \
            if os.path.isdir(base) else []

    def iommu_on(self) -> bool:
        return bool(glob.glob(os.path.join(self.sysfs, "kernel", "iommu_groups", "*")))

    def controllers(self) -> list[Nvme]:
        return [self.controller(a) for a in self.addresses()]

    def controller(self, address: str) -> Nvme:
        address = normalize(address)
        d = self.pci(address)
        if not os.path.isdir(d):
            raise InterfaceError(f"address {address}: no such PCI function")
        if self._read(d, "class") != NVME_CLASS:
            raise InterfaceError(f"address {address} is not an NVMe controller "
                                 f"(class {self._read(d, 'class')}, not {NVME_CLASS})")
        n = Nvme(address, self._read(d, "vendor"), self._read(d, "device"), self._link(d, "driver"),
                 self._link(d, "iommu_group"))
        ctrls = sorted(os.listdir(os.path.join(d, "nvme"))) if os.path.isdir(os.path.join(d, "nvme")) else []
        if ctrls:
            n.model = self._read(d, "nvme", ctrls[0], "model")
            n.serial = self._read(d, "nvme", ctrls[0], "serial")
        n.namespaces = self._namespaces(ctrls)
        self._usage(n)
        if n.driver == "vfio-pci" and n.iommu_group is not None:
            # A user-space driver holds the group: unbinding would wait for it to let go.
            group = f"/dev/vfio/{n.iommu_group}"
            for pid, path in self._openers([group]):
                n.in_use.append(f"{path} is open by process {pid} "
                                f"({self._read(self.proc, pid, 'comm')})")
        return n

    def _namespaces(self, ctrls: list[str]) -> list[str]:
        """Block devices of these controllers: a disk's parent is the controller, or
        (native multipath) the subsystem that holds it."""
        out = []
        base = os.path.join(self.sysfs, "block")
        for b in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            if not NS_BLOCK.match(b):
                continue
            parent = os.path.realpath(os.path.join(base, b, "device"))
            if os.path.basename(parent) in ctrls or any(
                    os.path.exists(os.path.join(parent, c)) for c in ctrls):
                out.append(b)
        return out

    def _stack(self, block: str) -> list[str]:
        """The block device, its partitions and everything held above them (dm, md)."""
        seen: list[str] = []
        todo = [block]
        while todo:
            b = todo.pop()
            if b in seen:
                continue
            seen.append(b)
            bdir = os.path.join(self.sysfs, "block", b) if os.path.isdir(
                os.path.join(self.sysfs, "block", b)) else os.path.join(self.sysfs, "class", "block", b)
            for part in glob.glob(os.path.join(bdir, b + "*")):
                if os.path.isfile(os.path.join(part, "partition")):
                    todo.append(os.path.basename(part))
            holders = os.path.join(bdir, "holders")
            if os.path.isdir(holders):
                todo.extend(os.listdir(holders))
        return seen

    def _devnum(self, block: str) -> str:
        for p in (os.path.join(self.sysfs, "class", "block", block, "dev"),
                  os.path.join(self.sysfs, "block", block, "dev")):
            v = self._read(p)
            if v:
                return v
        return ""

    def _holder_name(self, b: str) -> str:
        name = self._read(self.sysfs, "class", "block", b, "dm", "name") or \
            self._read(self.sysfs, "block", b, "dm", "name")
        if b.startswith("dm-"):
            return f"{b} (device-mapper{': ' + name if name else ''}, e.g. LVM)"
        if b.startswith("md"):
            return f"{b} (MD RAID)"
        return b

    def _usage(self, n: Nvme) -> None:
        mounts = []  # (major:minor, source, mount point)
        for line in self._read(self.proc, "self", "mountinfo").splitlines():
            f = line.split()
            if len(f) > 9 and "-" in f:
                sep = f.index("-")
                mounts.append((f[2], f[sep + 2], f[4]))
        swaps = [ln.split()[0] for ln in self._read(self.proc, "swaps").splitlines()[1:] if ln.split()]
        for ns in n.namespaces:
            stack = self._stack(ns)
            for b in stack:
                # /proc names devices by their /dev path whatever the roots here are
                num, path = self._devnum(b), "/dev/" + b
                for mnum, src, point in mounts:
                    if (num and mnum == num) or src == path:
                        if point == "/":
                            n.root = True
                            n.in_use.append(f"{b} holds the root filesystem")
                        else:
                            n.in_use.append(f"{b} is mounted on {point}")
                if path in swaps:
                    n.in_use.append(f"{b} is swap")
                if b != ns and not re.match(re.escape(ns) + r"p\d+$", b):
                    n.in_use.append(f"{ns} is a member of {self._holder_name(b)}")
            for pid, fd in self._openers(["/dev/" + b for b in stack]):
                comm = self._read(self.proc, pid, "comm")
                n.in_use.append(f"{fd} is open by process {pid} ({comm})")
        n.in_use = list(dict.fromkeys(n.in_use))  # each reason once, in order

    def _openers(self, paths: list[str]) -> Iterable[tuple[str, str]]:
        me = str(os.getpid())
        want = set(paths)
        for fddir in glob.glob(os.path.join(self.proc, "[0-9]*", "fd")):
            pid = os.path.basename(os.path.dirname(fddir))
            if pid == me:
                continue
            try:
                fds = os.listdir(fddir)
            except OSError:
                continue
            for fd in fds:
                try:
                    target = os.readlink(os.path.join(fddir, fd))
                except OSError:
                    continue
                if target in want:
                    yield pid, target
                    break

    # -- changing ----------------------------------------------------------------
    def write(self, path: str, value: str) -> None:
        """Write one sysfs attribute (the only place that changes the machine)."""
        self.log.append(f"{value.strip() or '(empty)'} > {path[len(self.sysfs):] or path}")
        with open(path, "w") as f:
            f.write(value)

    def driver_loaded(self, name: str) -> bool:
        return os.path.isdir(os.path.join(self.sysfs, "bus", "pci", "drivers", name))

    def load(self, module: str, driver: str) -> None:
        if self.driver_loaded(driver):
            return
        rc = self.run(["modprobe", module])
        self.log.append(f"modprobe {module}: exit {rc}")
        if not self.driver_loaded(driver):
            raise InterfaceError(f"the {driver} driver is not loaded and 'modprobe {module}' "
                                 f"did not load it (exit {rc})")

    def bind(self, address: str, driver: str) -> None:
        """driver_override + unbind + drivers_probe; check where it landed."""
        d = self.pci(address)
        self.write(os.path.join(d, "driver_override"), driver + "\n" if driver else "\n")
        if self._link(d, "driver") is not None:
            self.write(os.path.join(d, "driver", "unbind"), address)
        self.write(os.path.join(self.sysfs, "bus", "pci", "drivers_probe"), address)


def require_root(euid: int | None = None) -> None:
    if (os.geteuid() if euid is None else euid) != 0:
        raise InterfaceError("binding drivers writes sysfs: run 'aionvme setup/reset' as root "
                             "(sudo)")


def setup(system: System, addresses: list[str] | None = None, *, force: bool = False,
          euid: int | None = None) -> list[str]:
    """Bind these controllers (default: every NVMe controller not in use) to vfio-pci.
    Return what was done, line by line.  A controller in use raises DeviceInUse
    (with ``force``: only for the root filesystem) before anything changes."""
    require_root(euid)
    if not system.iommu_on():
        raise InterfaceError(IOMMU_HOWTO)
    explicit = addresses is not None
    ctrls = [system.controller(a) for a in addresses] if explicit else system.controllers()
    todo, out = [], []
    for c in sorted(ctrls, key=lambda c: c.address):
        if c.driver == "vfio-pci":
            out.append(f"{c.address}: already on vfio-pci (IOMMU group {c.iommu_group})")
            continue
        if c.iommu_group is None:
            raise InterfaceError(f"{c.address} has no IOMMU group: {IOMMU_HOWTO}")
        if c.in_use and (c.root or not force):
            if explicit:
                raise DeviceInUse(c.address, c.in_use + ([] if c.root or force else
                                                         ["(--force binds it anyway)"]))
            out.append(f"{c.address}: skipped, in use: " + "; ".join(c.in_use))
            continue
        todo.append(c)
    if todo:
        system.load("vfio-pci", "vfio-pci")
    for c in todo:
        system.bind(c.address, "vfio-pci")
        now = system.controller(c.address).driver
        if now != "vfio-pci":
            raise InterfaceError(f"{c.address}: bound to {now or 'no driver'}, not vfio-pci")
        group = os.path.join(system.sysfs, "kernel", "iommu_groups", c.iommu_group, "devices")
        others = sorted(set(os.listdir(group)) - {c.address}) if os.path.isdir(group) else []
        out.append(f"{c.address}: {c.driver or 'no driver'} -> vfio-pci, IOMMU group "
                   f"{c.iommu_group}, /dev/vfio/{c.iommu_group}"
                   + (f" (the group also holds {', '.join(others)})" if others else ""))
    return sorted(out)


def reset(system: System, addresses: list[str] | None = None, *,
          euid: int | None = None) -> list[str]:
    """Give these controllers (default: every one on vfio-pci) back to nvme."""
    require_root(euid)
    ctrls = [system.controller(a) for a in addresses] if addresses is not None else [
        c for c in system.controllers() if c.driver == "vfio-pci"]
    out = []
    busy = [c for c in ctrls if c.driver == "vfio-pci" and c.in_use]
    if busy and addresses is not None:
        raise DeviceInUse(busy[0].address, busy[0].in_use)
    if ctrls:
        system.load("nvme", "nvme")
    for c in ctrls:
        if c.driver == "nvme":
            out.append(f"{c.address}: already on nvme")
            continue
        if c in busy:
            out.append(f"{c.address}: skipped, in use: " + "; ".join(c.in_use))
            continue
        system.bind(c.address, "")
        now = system.controller(c.address)
        if now.driver != "nvme":
            raise InterfaceError(f"{c.address}: bound to {now.driver or 'no driver'}, not nvme")
        out.append(f"{c.address}: {c.driver or 'no driver'} -> nvme")
    return out


def table(ctrls: list[Nvme]) -> str:
    rows = [("ADDRESS", "VID:DID", "DRIVER", "IOMMU", "MODEL", "SERIAL", "IN USE")]
    for c in ctrls:
        rows.append((c.address, f"{c.vendor[2:]}:{c.device[2:]}", c.driver or "-",
                     c.iommu_group or "-", c.model or "-", c.serial or "-",
                     "; ".join(c.in_use) if c.in_use else "no"))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r[:6], widths)) + "  " + r[6]
                     for r in rows)
