"""Guest side: the vfio backend on QEMU's controller behind the guest's VT-d IOMMU.

Run in the test guest (tests/guest/suite.py, suite "vfio") with pytest and
``--pciaddr`` set to the vfio-bound controller (AIONVME_GUEST_VFIO):

- a PRP to an IOVA outside the arena is stopped by the IOMMU: the guest
  kernel logs a DMAR fault naming the device and that address, nothing of
  the arena changes, and the controller keeps working (QEMU 7.2 still
  completes the command with success, so the fault log is the evidence);
- the vectors are VFIO's MSI-X (the guest's /proc/interrupts lists them);
- an ioworker with verify on the vfio device (the worker maps BAR0 itself);
- function level reset and a power cycle through user callbacks (PCI remove
  and rescan stand in for a lab power switch).
"""
from __future__ import annotations

import asyncio
import os
import re
import subprocess

import pytest

import aionvme
from aionvme import _core
from aionvme.exceptions import InterfaceError


def dmesg() -> list[str]:
    return subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout.splitlines()


def short(bdf: str) -> str:
    return bdf.split(":", 1)[1]  # 0000:00:04.0 -> 00:04.0, as DMAR prints it


@pytest.mark.parametrize("where", ["above the arena", "in the reserved first MiB"])
async def test_bad_dma_is_stopped_by_the_iommu(nvme0, pciaddr, where):
    arena = _core.arena()
    iova = arena.size + (64 << 20) if where == "above the arena" else 0x2000
    canary = aionvme.Buffer(4096, "canary")
    canary[0:4096] = bytes([0xA5]) * 4096
    before = len(dmesg())
    # Identify Controller (cdw10 CNS 1): the device DMA-writes 4 KiB to PRP1
    cpl = await nvme0.send_cmd(0x06, cdw10=1, prp1=iova, check=False)
    faults = []
    for _ in range(50):
        faults = [ln for ln in dmesg()[before:] if "DMAR" in ln and f"{iova:x}" in ln]
        if faults:
            break
        await asyncio.sleep(0.1)
    assert faults, f"no DMAR fault for IOVA {iova:#x} in dmesg (completion {cpl})"
    assert f"[{short(pciaddr)}]" in faults[0], faults[0]
    assert re.search(r"DMA Write", faults[0]), faults[0]
    assert bytes(canary[0:4096]) == bytes([0xA5]) * 4096
    good = aionvme.Buffer(4096)
    await nvme0.identify(good, 0, 1)  # the controller still works
    assert b"QEMU NVMe" in bytes(good[24:64])


async def test_vectors_are_vfio_msix(nvme0, pciaddr):
    dev = nvme0._live_device()
    assert dev.backend == "vfio" and dev.irq_kind == "msix"
    assert nvme0.vectors >= 2
    interrupts = open("/proc/interrupts").read()
    assert re.search(rf"vfio-msix\[0\]\({re.escape(pciaddr)}\)", interrupts), interrupts


async def test_io_on_several_vectors(nvme0, nvme0n1):
    qps = [await aionvme.Qpair(nvme0, 8) for _ in range(3)]
    buf = aionvme.Buffer(4096)
    for i, q in enumerate(qps):
        buf[0] = i
        await nvme0n1.write(q, buf, 100 + i, 1)
    for i, q in enumerate(qps):
        r = aionvme.Buffer(4096)
        await nvme0n1.read(q, r, 100 + i, 1)
        assert r[0] == i
    for q in qps:
        await q.delete()


async def test_ioworker_with_verify(nvme0, nvme0n1, verify):
    w = await nvme0n1.ioworker(io_size=8, lba_align=8, lba_random=False, read_percentage=0,
                               qdepth=8, io_count=256, region_start=0, region_end=2048)
    assert w.io_count_write == 256 and w.error == 0
    r = await nvme0n1.ioworker(io_size=8, lba_align=8, lba_random=True, read_percentage=100,
                               qdepth=16, io_count=512, region_start=0, region_end=2048)
    assert r.io_count_read == 512 and r.error == 0


@pytest.mark.parametrize("how", ["Initiate FLR in config space", "VFIO_DEVICE_RESET"])
async def test_function_level_reset(nvme0, nvme0n1, pcie, how):
    q = await aionvme.Qpair(nvme0, 8)
    buf = aionvme.Buffer(4096)
    buf[0] = 0x5A
    await nvme0n1.write(q, buf, 7, 1)
    if how == "VFIO_DEVICE_RESET":
        nvme0._live_device().reset(1)   # ANV_RESET_FLR
        assert nvme0[0x14] & 1 == 0  # CC.EN cleared by the reset
        await nvme0._reinit("function level reset")
    else:
        await pcie.reset()       # vfio-pci turns the config write into a reset of the function
    r = aionvme.Buffer(4096)
    await nvme0n1.read(q, r, 7, 1)  # the queue was created again
    assert r[0] == 0x5A


async def test_power_cycle_needs_callbacks(nvme0):
    with pytest.raises(InterfaceError, match="poweroff=cb, poweron=cb"):
        await aionvme.Subsystem(nvme0).power_cycle(0)


async def test_power_cycle_through_callbacks(nvme0, nvme0n1, pciaddr):
    calls = []

    def poweroff():
        calls.append("off")
        with open(f"/sys/bus/pci/devices/{pciaddr}/remove", "w") as f:
            f.write("1")
        assert not os.path.exists(f"/sys/bus/pci/devices/{pciaddr}")

    def poweron():
        calls.append("on")  # the backend rescans the bus and binds vfio-pci again

    sub = aionvme.Subsystem(nvme0, poweroff=poweroff, poweron=poweron)
    q = await aionvme.Qpair(nvme0, 8)
    buf = aionvme.Buffer(4096)
    buf[0] = 0x77
    await nvme0n1.write(q, buf, 9, 1)
    await nvme0n1.flush(q)
    await sub.power_cycle(0)
    assert calls == ["off", "on"]
    r = aionvme.Buffer(4096)
    await nvme0n1.read(q, r, 9, 1)
    assert r[0] == 0x77


async def test_two_controllers_at_once(nvme0, nvme0n1, pciaddr):
    """Each vfio controller has its own container; the arena is mapped in both."""
    others = [a for a in os.environ.get("AIONVME_GUEST_VFIO", "").split(",") if a and a != pciaddr]
    assert others, "the vfio suite boots the guest with two vfio controllers (--vfio 2)"
    async with aionvme.Controller(others[0]) as nvme1:
        ns1 = await aionvme.Namespace(nvme1, 1)
        q0, q1 = await aionvme.Qpair(nvme0, 8), await aionvme.Qpair(nvme1, 8)
        b = aionvme.Buffer(4096)
        b[0] = 0x10
        await nvme0n1.write(q0, b, 3, 1)
        b[0] = 0x11
        await ns1.write(q1, b, 3, 1)
        r0, r1 = aionvme.Buffer(4096), aionvme.Buffer(4096)
        await asyncio.gather(nvme0n1.read(q0, r0, 3, 1), ns1.read(q1, r1, 3, 1))
        assert (r0[0], r1[0]) == (0x10, 0x11)
        await q1.delete()
        ns1.close()
    await q0.delete()
