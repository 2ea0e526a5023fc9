"""The kernel transport against a real Linux nvme driver: the passthrough subset.

Runs with ``--pciaddr /dev/nvmeN`` (a drive on nvme.ko, as root), e.g. in the
test guest: ``guest.py run --kernel 1 -- python -m pytest tests/test_kernel_passthru.py
--pciaddr /dev/nvme0``.  On any other address every test here is skipped.
"""
from __future__ import annotations

import asyncio
import errno
import mmap
import os
import re

import pytest

import aionvme
from aionvme.exceptions import (CapabilityError, CommandError, IOWorkerVerifyError,
                                KernelCommandError, VerifyError)
from aionvme.exceptions import status

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(autouse=True)
def kernel_only(pciaddr):
    if not pciaddr.startswith("/dev/nvme"):
        pytest.skip("needs --pciaddr /dev/nvmeN (a drive on the Linux nvme driver)")


def corrupt(nvme0, ns, lba):
    """Write ``lba`` behind the verifier's back, through the kernel's block device."""
    ctrl = os.path.basename(nvme0.addr)
    disks = sorted(d for d in os.listdir(f"/sys/class/nvme/{ctrl}") if re.fullmatch(r"nvme\d+n1", d))
    fd = os.open(f"/dev/{disks[0]}", os.O_RDWR | os.O_DIRECT)
    try:
        page = mmap.mmap(-1, 4096)
        page[:] = b"\x5a" * 4096
        os.pwritev(fd, [memoryview(page)[:ns.lba_size]], lba * ns.lba_size)
    finally:
        os.close(fd)


def pattern(buf, seed):
    for off in range(0, len(buf), 512):
        buf[off:off + 8] = ((seed << 32) | off).to_bytes(8, "little")


async def test_identify_controller_and_namespace(nvme0, nvme0n1):
    assert nvme0.id_data(71, 24, str).strip()  # MN
    assert nvme0.id_data(23, 4, str).strip()   # SN
    assert nvme0n1.nsze > 0 and nvme0n1.lba_size in (512, 4096)
    buf = aionvme.Buffer(4096)
    await nvme0.identify(buf, 0, 2)  # CNS 02h: active namespace ID list
    assert buf.data(3, 0) == nvme0n1.nsid


async def test_get_and_set_features(nvme0):
    cpl = await nvme0.getfeatures(0x04)  # Temperature Threshold (5.27.1.3)
    old = cpl.cdw0 & 0xFFFF
    await nvme0.setfeatures(0x04, cdw11=old - 1)
    assert (await nvme0.getfeatures(0x04)).cdw0 & 0xFFFF == old - 1
    await nvme0.setfeatures(0x04, cdw11=old)
    with pytest.raises(CommandError):
        await nvme0.getfeatures(0xEE)  # no such feature


async def test_get_log_page(nvme0):
    smart = aionvme.Buffer(512)
    await nvme0.getlogpage(0x02, smart, 512)  # SMART / Health Information (5.16.1.3)
    assert smart.data(2, 1) > 0  # composite temperature in kelvin
    err = aionvme.Buffer(4096)
    await nvme0.getlogpage(0x01, err, 64)


async def test_write_read_compare_flush(nvme0n1, qpair):
    w, r = aionvme.Buffer(8 * nvme0n1.lba_size), aionvme.Buffer(8 * nvme0n1.lba_size)
    pattern(w, 0xA5)
    await nvme0n1.write(qpair, w, 64, 8)
    await nvme0n1.flush(qpair)
    await nvme0n1.read(qpair, r, 64, 8)
    assert r[:] == w[:]
    await nvme0n1.compare(qpair, w, 64, 8)
    w[100] ^= 0xFF
    with pytest.raises(status.CompareFailure):
        await nvme0n1.compare(qpair, w, 64, 8)


async def test_write_zeroes_and_many_in_flight(nvme0n1, qpair):
    size = nvme0n1.lba_size
    bufs = [aionvme.Buffer(size) for _ in range(32)]
    for i, b in enumerate(bufs):
        b[0:4] = (i + 1).to_bytes(4, "little")
    await asyncio.gather(*(nvme0n1.write(qpair, b, 1000 + i, 1)
                                         for i, b in enumerate(bufs)))
    await nvme0n1.write_zeroes(qpair, 1000, 16)
    r = aionvme.Buffer(32 * size)
    await nvme0n1.read(qpair, r, 1000, 32)
    assert r[0:16 * size] == bytes(16 * size)
    assert r[16 * size:16 * size + 4] == (17).to_bytes(4, "little")


async def test_device_status_comes_back(nvme0n1, qpair):
    r = aionvme.Buffer(4096)
    with pytest.raises(status.LBAOutOfRange):
        await nvme0n1.read(qpair, r, nvme0n1.nsze, 1)
    cpl = await nvme0n1.send_cmd(0xC1, qpair, nsid=1, check=False)  # vendor specific: unknown here
    assert (cpl.sct, cpl.sc) == (0, 1)
    log = qpair.cmdlog(2)
    assert log[-1].opcode == 0xC1 and log[-1].status & 0x7FF == 1 and log[-1].completed


async def test_what_the_kernel_refuses_itself_has_its_errno(nvme0, nvme0n1, qpair):
    """Beyond MDTS the kernel maps no such request (no NVMe status exists): the
    command fails with KernelCommandError and the cmdlog says KERNEL ERROR."""
    lbas = 2 * nvme0.mdts // nvme0n1.lba_size
    if lbas > 0x10000:
        pytest.skip(f"MDTS {nvme0.mdts} leaves no room above it for one command")
    with pytest.raises(KernelCommandError) as e:
        await nvme0n1.read(qpair, aionvme.Buffer(lbas * nvme0n1.lba_size), 0, lbas)
    assert e.value.errno > 0
    last = qpair.cmdlog(1)[0]
    assert last.err == e.value.errno and "KERNEL ERROR" in str(last)
    await nvme0n1.read(qpair, aionvme.Buffer(4096), 0, 8)  # the queue goes on


async def test_an_nsid_not_the_devices_is_refused_by_the_kernel(nvme0n1, qpair):
    """Each namespace has its own generic device, and the kernel checks the NSID
    against it (no NVMe status: the controller never sees the command)."""
    for nsid in (0, 7, 0xFFFFFFFF):
        with pytest.raises(KernelCommandError) as e:
            await nvme0n1.send_cmd(0x00, qpair, nsid=nsid)  # Flush
        assert e.value.errno == errno.EINVAL
    await nvme0n1.flush(qpair)


async def test_data_integrity_is_verified(nvme0, nvme0n1, qpair, verify):
    size = nvme0n1.lba_size
    w = aionvme.Buffer(4 * size)
    await nvme0n1.write(qpair, w, 2000, 4)
    await nvme0n1.read(qpair, aionvme.Buffer(4 * size), 2000, 4)
    corrupt(nvme0, nvme0n1, 2002)
    with pytest.raises(VerifyError, match="LBA 2002") as e:
        await nvme0n1.read(qpair, aionvme.Buffer(4 * size), 2000, 4)
    assert e.value.lba == 2002


async def test_what_the_kernel_hides_is_a_capability_error(nvme0, nvme0n1, qpair):
    assert nvme0.backend == "kernel" and nvme0.capabilities == {"ioworker"}
    with pytest.raises(CapabilityError, match="the kernel backend has no registers"):
        nvme0[0x1C]
    with pytest.raises(CapabilityError, match="no config space"):
        nvme0.pcie[0]
    with pytest.raises(CapabilityError, match="no raw queues"):
        await nvme0.send_cmd(0x05, cdw10=5)  # Create I/O CQ behind the driver's back
    with pytest.raises(CapabilityError, match="no aer"):
        await nvme0.aer()
    with pytest.raises(CapabilityError, match="no prp"):
        await nvme0n1.read(qpair, aionvme.Buffer(4096), 0, 1, sgl=True)
    with pytest.raises(CapabilityError, match="no msix"):
        aionvme.Qpair(nvme0, 16, vector=1)
    with pytest.raises(CapabilityError, match="no raw queues"):
        aionvme.Qpair(nvme0, 16, prio=2)
    with pytest.raises(CapabilityError, match="no raw queues"):
        await nvme0n1.ioworker(io_size=8, io_count=8, qprio=1)
    with pytest.raises(CapabilityError, match="no nssr"):
        await aionvme.Subsystem(nvme0).reset()
    with pytest.raises(CapabilityError, match="no power cycle"):
        await aionvme.Subsystem(nvme0).power_cycle(0)


async def test_ioworker_on_io_uring_with_verify(nvme0, nvme0n1, qpair, verify):
    """Writes then reads through the worker's own io_uring, every read checked
    against what was written; then a read of ours sees the worker's data."""
    w = await nvme0n1.ioworker(io_size=8, lba_align=8, lba_random=False, qdepth=16,
                               read_percentage=0, io_count=512, region_end=4096)
    assert w.io_count_write == 512 and w.error == 0
    r = await nvme0n1.ioworker(io_size=8, lba_align=8, lba_random=True, qdepth=16,
                               read_percentage=100, io_count=1024, region_end=4096)
    assert r.io_count_read == 1024 and r.error == 0
    await nvme0n1.read(qpair, aionvme.Buffer(4096), 8, 8)  # verified against the worker's writes
    mixed = nvme0n1.ioworker(io_size=8, lba_align=8, qdepth=8, read_percentage=50, io_count=1024,
                             region_end=4096)
    async with mixed:
        pass
    assert mixed.result.io_count_read and mixed.result.io_count_write
    log = mixed.cmdlog(4)
    assert len(log) == 4 and all(e.completed and e.status == 0 for e in log)
    # LBA 72 changed behind the verifier's back: the worker's read finds it.
    corrupt(nvme0, nvme0n1, 72)
    with pytest.raises(IOWorkerVerifyError, match="LBA 72") as e:
        await nvme0n1.ioworker(io_size=8, lba_align=8, lba_random=False, lba_start=72,
                               qdepth=1, read_percentage=100, io_count=1, region_end=4096)
    assert e.value.lba == 72


async def test_kernel_reset_keeps_the_queues_usable(nvme0, nvme0n1, qpair):
    await nvme0.reset()  # NVME_IOCTL_RESET
    r = aionvme.Buffer(4096)
    await nvme0n1.read(qpair, r, 0, 1)
    await nvme0.getfeatures(0x07)
