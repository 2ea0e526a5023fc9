"""aionvme list / setup / reset against a fake sysfs and proc built in tmp.

``Kernel`` below plays the kernel's part: a write of an address to
``drivers_probe`` binds the function to its ``driver_override`` (or to nvme
when that is empty).  The real thing runs in the test guest
(tests/test_pci_bind_guest.py)."""
from __future__ import annotations

import os

import pytest

from aionvme import cli, pci_bind
from aionvme.exceptions import InterfaceError
from aionvme.pci_bind import DeviceInUse, System


class Kernel(System):
    def write(self, path, value):
        super().write(path, value)
        if path.endswith("drivers_probe"):
            d = self.pci(value.strip())
            want = open(os.path.join(d, "driver_override")).read().strip() or "nvme"
            link = os.path.join(d, "driver")
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(os.path.join(self.sysfs, "bus", "pci", "drivers", want), link)


def make_tree(tmp_path, mounts="", swaps="", holders=(), iommu=True):
    sysfs, proc, dev = tmp_path / "sys", tmp_path / "proc", tmp_path / "dev"
    drivers = sysfs / "bus" / "pci" / "drivers"
    for drv in ("nvme", "vfio-pci"):
        (drivers / drv).mkdir(parents=True)
    (drivers.parent / "drivers_probe").write_text("")
    (sysfs / "block").mkdir(parents=True)
    (sysfs / "class" / "block").mkdir(parents=True)
    for i, addr in enumerate(("0000:00:04.0", "0000:00:05.0")):
        d = sysfs / "bus" / "pci" / "devices" / addr
        (d / "nvme" / f"nvme{i}").mkdir(parents=True)
        (d / "class").write_text("0x010802\n")
        (d / "vendor").write_text("0x1b36\n")
        (d / "device").write_text("0x0010\n")
        (d / "driver_override").write_text("(null)\n")
        (d / "nvme" / f"nvme{i}" / "model").write_text("QEMU NVMe Ctrl\n")
        (d / "nvme" / f"nvme{i}" / "serial").write_text(f"SER{i}\n")
        (d / "driver").symlink_to(drivers / "nvme")
        if iommu:
            g = sysfs / "kernel" / "iommu_groups" / str(3 + i) / "devices"
            g.mkdir(parents=True)
            (g / addr).symlink_to(d)
            (d / "iommu_group").symlink_to(g.parent)
        blk = sysfs / "block" / f"nvme{i}n1"
        (blk / "holders").mkdir(parents=True)
        (blk / "dev").write_text(f"259:{i * 4}\n")
        (blk / "device").symlink_to(d / "nvme" / f"nvme{i}")
        part = blk / f"nvme{i}n1p1"
        (part / "holders").mkdir(parents=True)
        (part / "partition").write_text("1\n")
        (part / "dev").write_text(f"259:{i * 4 + 1}\n")
        (sysfs / "class" / "block" / f"nvme{i}n1p1").symlink_to(part)
    for h, on in holders:
        dm = sysfs / "block" / h
        (dm / "dm").mkdir(parents=True)
        (dm / "dm" / "name").write_text("vg0-lv0\n")
        (dm / "holders").mkdir()
        (dm / "dev").write_text("254:0\n")
        (sysfs / "block" / on / "holders" / h).symlink_to(dm)
    (sysfs / "bus" / "pci" / "devices" / "0000:00:1f.0").mkdir()
    (sysfs / "bus" / "pci" / "devices" / "0000:00:1f.0" / "class").write_text("0x060100\n")
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text(mounts)
    (proc / "swaps").write_text("Filename Type Size Used Priority\n" + swaps)
    dev.mkdir()
    return Kernel(str(sysfs), str(proc), run=lambda cmd: 1)


ROOT = "22 1 259:1 / / rw,relatime - ext4 /dev/nvme0n1p1 rw\n"
DATA = "23 22 259:5 / /data rw,relatime - ext4 /dev/nvme1n1p1 rw\n"


def test_list_shows_every_controller_and_why_it_is_in_use(tmp_path):
    s = make_tree(tmp_path, mounts=ROOT + DATA)
    ctrls = s.controllers()
    assert [c.address for c in ctrls] == ["0000:00:04.0", "0000:00:05.0"]
    a, b = ctrls
    assert (a.vendor, a.device, a.driver, a.iommu_group) == ("0x1b36", "0x0010", "nvme", "3")
    assert (a.model, a.serial, a.namespaces) == ("QEMU NVMe Ctrl", "SER0", ["nvme0n1"])
    assert a.root and a.in_use == ["nvme0n1p1 holds the root filesystem"]
    assert not b.root and b.in_use == ["nvme1n1p1 is mounted on /data"]
    text = pci_bind.table(ctrls)
    assert "0000:00:05.0" in text and "1b36:0010" in text and "mounted on /data" in text


def test_setup_refuses_mounted_swap_and_holders_and_binds_a_free_one(tmp_path):
    s = make_tree(tmp_path, mounts=DATA, swaps="/dev/nvme0n1p1 partition 1024 0 -2\n")
    with pytest.raises(DeviceInUse, match=r"0000:00:05.0 is in use.*mounted on /data.*--force"):
        pci_bind.setup(s, ["00:05.0"], euid=0)
    with pytest.raises(DeviceInUse, match="nvme0n1p1 is swap"):
        pci_bind.setup(s, ["0000:00:04.0"], euid=0)
    assert s.log == []  # nothing was written
    s = make_tree(tmp_path / "2", holders=[("dm-0", "nvme0n1")])
    with pytest.raises(DeviceInUse, match=r"member of dm-0 \(device-mapper: vg0-lv0"):
        pci_bind.setup(s, ["0000:00:04.0"], euid=0)
    done = pci_bind.setup(s, ["0000:00:05.0"], euid=0)
    assert done == ["0000:00:05.0: nvme -> vfio-pci, IOMMU group 4, /dev/vfio/4"]
    assert s.controller("0000:00:05.0").driver == "vfio-pci"
    assert s.log[0].startswith("vfio-pci") and "drivers_probe" in s.log[-1]


def test_setup_without_addresses_skips_what_is_in_use(tmp_path):
    s = make_tree(tmp_path, mounts=DATA)
    done = pci_bind.setup(s, euid=0)
    assert done[0].startswith("0000:00:04.0: nvme -> vfio-pci")
    assert done[1].startswith("0000:00:05.0: skipped, in use: nvme1n1p1 is mounted on /data")


def test_force_never_gives_up_the_root_filesystem(tmp_path):
    s = make_tree(tmp_path, mounts=ROOT + DATA)
    with pytest.raises(DeviceInUse, match="root filesystem"):
        pci_bind.setup(s, ["0000:00:04.0"], force=True, euid=0)
    assert pci_bind.setup(s, ["0000:00:05.0"], force=True, euid=0)[0].endswith("/dev/vfio/4")


def test_reset_gives_them_back_to_nvme(tmp_path):
    s = make_tree(tmp_path)
    pci_bind.setup(s, euid=0)
    assert [c.driver for c in s.controllers()] == ["vfio-pci", "vfio-pci"]
    done = pci_bind.reset(s, euid=0)
    assert done == ["0000:00:04.0: vfio-pci -> nvme", "0000:00:05.0: vfio-pci -> nvme"]
    assert [c.driver for c in s.controllers()] == ["nvme", "nvme"]
    assert open(os.path.join(s.pci("0000:00:04.0"), "driver_override")).read() == "\n"


def test_errors_name_the_problem(tmp_path):
    s = make_tree(tmp_path)
    with pytest.raises(InterfaceError, match="as root"):
        pci_bind.setup(s, euid=1000)
    with pytest.raises(InterfaceError, match="as root"):
        pci_bind.reset(s, euid=1000)
    with pytest.raises(InterfaceError, match="not a PCI address"):
        pci_bind.setup(s, ["nvme0"], euid=0)
    with pytest.raises(InterfaceError, match="no such PCI function"):
        pci_bind.setup(s, ["0000:09:00.0"], euid=0)
    with pytest.raises(InterfaceError, match="not an NVMe controller"):
        pci_bind.setup(s, ["0000:00:1f.0"], euid=0)
    assert pci_bind.normalize("01:00.0") == "0000:01:00.0"
    s = make_tree(tmp_path / "2", iommu=False)
    with pytest.raises(InterfaceError, match="intel_iommu=on"):
        pci_bind.setup(s, euid=0)


def test_vfio_pci_missing_and_modprobe_failing_is_an_error(tmp_path):
    s = make_tree(tmp_path)
    os.rmdir(os.path.join(s.sysfs, "bus", "pci", "drivers", "vfio-pci"))
    with pytest.raises(InterfaceError, match="modprobe vfio-pci"):
        pci_bind.setup(s, ["0000:00:04.0"], euid=0)


def test_cli_setup_needs_root(capsys, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli.main(["setup", "0000:00:04.0"]) == 1
    assert "as root" in capsys.readouterr().err


def test_an_open_block_device_is_in_use(tmp_path):
    s = make_tree(tmp_path)
    fd = tmp_path / "proc" / "4242" / "fd"
    fd.mkdir(parents=True)
    (fd / "3").symlink_to("/dev/nvme1n1")
    (fd.parent / "comm").write_text("fio\n")
    assert s.controller("0000:00:05.0").in_use == ["/dev/nvme1n1 is open by process 4242 (fio)"]
    with pytest.raises(DeviceInUse, match="open by process 4242"):
        pci_bind.setup(s, ["0000:00:05.0"], euid=0)


def test_reset_refuses_a_vfio_group_held_by_a_process(tmp_path):
    s = make_tree(tmp_path)
    pci_bind.setup(s, euid=0)
    fd = tmp_path / "proc" / "777" / "fd"
    fd.mkdir(parents=True)
    (fd / "9").symlink_to("/dev/vfio/3")
    (fd.parent / "comm").write_text("python3\n")
    assert s.controller("0000:00:04.0").in_use == ["/dev/vfio/3 is open by process 777 (python3)"]
    with pytest.raises(DeviceInUse, match="/dev/vfio/3 is open by process 777"):
        pci_bind.reset(s, ["0000:00:04.0"], euid=0)
    done = pci_bind.reset(s, euid=0)
    assert done == ["0000:00:04.0: skipped, in use: /dev/vfio/3 is open by process 777 (python3)",
                    "0000:00:05.0: vfio-pci -> nvme"]
