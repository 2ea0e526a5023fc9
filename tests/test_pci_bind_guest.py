"""aionvme list / setup / reset on a real kernel: only inside the test guest
(AIONVME_GUEST_KERNEL names at least two controllers on nvme.ko; the test
makes a filesystem on the first one's namespace), e.g.::

    guest.py run --kernel 2 --modules vfio-pci,ext4 -- python -m pytest tests/test_pci_bind_guest.py
"""
from __future__ import annotations

import os
import subprocess

import pytest

from aionvme import cli, pci_bind
from aionvme.pci_bind import DeviceInUse, System

DEVS = [d for d in os.environ.get("AIONVME_GUEST_KERNEL", "").split(",") if d]
pytestmark = pytest.mark.skipif(len(DEVS) < 2, reason="only in the test guest with --kernel 2 "
                                "(it runs mkfs on a drive)")


def pci_of(ctrl: str) -> str:
    return os.path.basename(os.path.realpath(f"/sys/class/nvme/{os.path.basename(ctrl)}/device"))


@pytest.fixture
def mounted():
    disk = f"{DEVS[0]}n1"
    point = "/dev/shm/aionvme-mnt"
    os.makedirs(point, exist_ok=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", disk], check=True)
    subprocess.run(["mount", "-t", "ext4", disk, point], check=True)
    yield disk, point
    subprocess.run(["umount", point], check=True)


def test_setup_refuses_a_mounted_filesystem_and_round_trips_a_free_one(mounted, capsys):
    disk, point = mounted
    busy, free = pci_of(DEVS[0]), pci_of(DEVS[1])
    system = System()
    assert cli.main(["list"]) == 0
    listing = capsys.readouterr().out
    with capsys.disabled():
        print("\n" + listing)
    assert busy in listing and free in listing and f"is mounted on {point}" in listing
    with pytest.raises(DeviceInUse, match=f"{os.path.basename(disk)} is mounted on {point}"):
        pci_bind.setup(system, [busy])
    assert system.controller(busy).driver == "nvme"  # untouched
    assert cli.main(["setup", busy]) == 1
    assert "is in use" in capsys.readouterr().err
    assert cli.main(["setup", free]) == 0
    out = capsys.readouterr().out
    assert f"{free}: nvme -> vfio-pci" in out
    group = system.controller(free).iommu_group
    assert system.controller(free).driver == "vfio-pci" and os.path.exists(f"/dev/vfio/{group}")
    assert cli.main(["reset", free]) == 0
    assert f"{free}: vfio-pci -> nvme" in capsys.readouterr().out
    assert system.controller(free).driver == "nvme"
