"""The vfio backend's host-side checks, on a fake sysfs (no device needed).

The backend itself is proven in the test guest (tests/guest/check_vfio.py and
the conformance suites with --pciaddr on a vfio-bound controller).
"""
from __future__ import annotations

import os
import pathlib

import pytest

import aionvme
from aionvme.backends import vfio
from aionvme.backends import open_backend
from aionvme.exceptions import InterfaceError


@pytest.mark.parametrize("given, canonical", [
    ("0000:01:00.0", "0000:01:00.0"), ("01:00.0", "0000:01:00.0"), (b"01:00.0", "0000:01:00.0"),
    ("AB:1f.7", "0000:ab:1f.7"), ("0001:02:03.4", "0001:02:03.4"), (" 01:00.0\n", "0000:01:00.0"),
])
def test_addresses(given, canonical):
    assert vfio.parse_address(given) == canonical


@pytest.mark.parametrize("bad", ["1:00.0", "01:20.0", "01:00.8", "0000:01:00", "sim", "", b"\xff", 1])
def test_not_addresses(bad):
    assert vfio.parse_address(bad) is None


def test_a_bad_address_names_the_backends():
    with pytest.raises(InterfaceError, match="or a PCI address such as '0000:01:00.0'"):
        open_backend("0000:0z:00.0")


def fake_sysfs(tmp_path: pathlib.Path, devices: dict[str, str | None], group: int = 7) -> pathlib.Path:
    """devices: address -> driver (None: no driver), all in IOMMU group ``group``."""
    root = tmp_path / "devices"
    gdir = tmp_path / "iommu_groups" / str(group) / "devices"
    gdir.mkdir(parents=True)
    for addr, drv in devices.items():
        d = root / addr
        d.mkdir(parents=True)
        os.symlink(tmp_path / "iommu_groups" / str(group), d / "iommu_group")
        os.symlink(d, gdir / addr)
        if drv is not None:
            (tmp_path / "drivers" / drv).mkdir(parents=True, exist_ok=True)
            os.symlink(tmp_path / "drivers" / drv, d / "driver")
    return root


def test_refuses_a_function_on_another_driver(tmp_path, monkeypatch):
    monkeypatch.setattr(vfio, "SYSFS", str(fake_sysfs(tmp_path, {"0000:01:00.0": "nvme"})))
    with pytest.raises(InterfaceError, match=r"bound to nvme, not vfio-pci \(bind it with `aionvme setup"):
        vfio.check_device("0000:01:00.0")


def test_refuses_a_missing_function(tmp_path, monkeypatch):
    monkeypatch.setattr(vfio, "SYSFS", str(fake_sysfs(tmp_path, {})))
    with pytest.raises(InterfaceError, match="no PCI function there"):
        vfio.VfioDevice("02:00.0")


def test_refuses_a_group_shared_with_other_drivers(tmp_path, monkeypatch):
    sysfs = fake_sysfs(tmp_path, {"0000:01:00.0": "vfio-pci", "0000:01:00.1": "snd_hda_intel",
                                  "0000:01:00.2": None, "0000:01:00.3": "pci-stub",
                                  "0000:01:00.4": "xhci_hcd"})
    monkeypatch.setattr(vfio, "SYSFS", str(sysfs))
    with pytest.raises(InterfaceError) as e:
        vfio.check_device("0000:01:00.0")
    msg = str(e.value)
    assert "IOMMU group 7 also holds devices bound to other drivers" in msg
    assert "0000:01:00.1 (snd_hda_intel), 0000:01:00.4 (xhci_hcd)" in msg
    assert "01:00.2" not in msg and "01:00.3" not in msg  # no driver / pci-stub are fine


def test_needs_an_iommu_group(tmp_path, monkeypatch):
    root = tmp_path / "devices"
    (root / "0000:01:00.0").mkdir(parents=True)
    (tmp_path / "drivers" / "vfio-pci").mkdir(parents=True)
    os.symlink(tmp_path / "drivers" / "vfio-pci", root / "0000:01:00.0" / "driver")
    monkeypatch.setattr(vfio, "SYSFS", str(root))
    with pytest.raises(InterfaceError, match="no IOMMU group: turn the IOMMU on"):
        vfio.check_device("0000:01:00.0")


def test_vectors_setting(monkeypatch):
    monkeypatch.setenv("AIONVME_VFIO_VECTORS", "65")
    with pytest.raises(InterfaceError, match="AIONVME_VFIO_VECTORS='65': an int in 1..64"):
        vfio._vectors()
    monkeypatch.setenv("AIONVME_VFIO_VECTORS", "8")
    assert vfio._vectors() == 8


def test_power_needs_callbacks_and_they_must_be_callable():
    dev = vfio.VfioDevice.__new__(vfio.VfioDevice)  # no device: only the power rules
    dev.address, dev.poweroff, dev.poweron, dev._powered = "0000:01:00.0", None, None, True
    with pytest.raises(InterfaceError, match=r"Subsystem\(nvme0, poweroff=cb, poweron=cb\)"):
        dev.power_off()
    with pytest.raises(InterfaceError, match="poweron must be callable, not int"):
        dev.set_power_callbacks(print, 3)  # type: ignore[arg-type]


async def test_callbacks_are_refused_where_the_device_powers_itself(nvme0):
    if nvme0._live_transport().backend_name == "vfio":
        pytest.skip("the device under test is a vfio device")
    with pytest.raises(InterfaceError, match="callbacks are for real drives"):
        aionvme.Subsystem(nvme0, poweroff=print, poweron=print)
