"""NVM command set (NVM Command Set Specification 1.0, section 3): data commands, PRP lists
and SGLs, range and namespace checks; on the simulator also the volatile
write cache over a power loss and a file-backed namespace over a power
cycle.  Runs on every backend."""
import os

import pytest

import aionvme
from aionvme.exceptions import status as S
from aionvme import Subsystem
from simconf import qemu_deviation, sim_address


def oncs(ns, bit: int, what: str) -> None:
    if not ns.nvme.id_data(521, 520) >> bit & 1:
        pytest.skip(f"ONCS bit {bit} = 0: the device has no {what}")


def pattern(size: int, seed: int) -> aionvme.Buffer:
    buf = aionvme.Buffer(size)
    buf[0:size] = bytes((i * 7 + seed) & 0xFF for i in range(size))
    return buf


@pytest.mark.parametrize("lbas", [1, 8, 9, 64, 256, 1024])   # 512 B to 512 KiB (MDTS)
@pytest.mark.parametrize("sgl", [False, True])
async def test_write_read_back(nvme0n1, qpair, lbas, sgl):
    w = pattern(lbas * 512, lbas)
    r = aionvme.Buffer(lbas * 512)
    await nvme0n1.write(qpair, w, 1000, lbas, sgl=sgl)
    await nvme0n1.read(qpair, r, 1000, lbas, sgl=not sgl)
    assert r[:] == w[:]


async def test_transfer_above_mdts(nvme0, nvme0n1, qpair):
    lbas = nvme0.mdts // 512 + 8
    cpl = await nvme0n1.read(qpair, aionvme.Buffer(lbas * 512), 0, lbas, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x02)


async def test_compare(nvme0n1, qpair):
    w = pattern(4096, 3)
    await nvme0n1.write(qpair, w, 200, 8)
    assert (await nvme0n1.compare(qpair, w, 200, 8)).ok
    w[4095] ^= 1
    cpl = await nvme0n1.compare(qpair, w, 200, 8, check=False)
    assert (cpl.sct, cpl.sc) == (2, 0x85)                   # Compare Failure
    with pytest.raises(S.CompareFailure, match="02/85"):
        await nvme0n1.compare(qpair, w, 200, 8)


async def test_flush(nvme0n1, qpair):
    assert (await nvme0n1.flush(qpair)).ok
    cpl = await nvme0n1.send_cmd(0x00, qpair, nsid=0xFFFFFFFF)  # all namespaces
    assert cpl.ok


async def test_write_zeroes(nvme0n1, qpair):
    await nvme0n1.write(qpair, pattern(4096, 1), 300, 8)
    await nvme0n1.write_zeroes(qpair, 301, 6)
    r = aionvme.Buffer(4096)
    await nvme0n1.read(qpair, r, 300, 8)
    assert r[512:3584] == bytes(3072)
    assert r[0:512] != bytes(512) and r[3584:] != bytes(512)


async def test_write_uncorrectable(nvme0n1, qpair):
    oncs(nvme0n1, 1, "Write Uncorrectable")
    r = aionvme.Buffer(4096)
    await nvme0n1.write_uncorrectable(qpair, 400, 2)
    for lba, n in ((400, 1), (401, 1), (399, 4)):
        cpl = await nvme0n1.read(qpair, r, lba, n, check=False)
        assert (cpl.sct, cpl.sc) == (2, 0x81)               # Unrecovered Read Error
    cpl = await nvme0n1.verify(qpair, 400, 1, check=False)
    assert (cpl.sct, cpl.sc) == (2, 0x81)
    assert (await nvme0n1.read(qpair, r, 402, 1)).ok
    await nvme0n1.write(qpair, r, 400, 2)                   # a write makes it readable
    assert (await nvme0n1.read(qpair, r, 400, 2)).ok


async def _deallocate(nvme0n1, qpair):
    old = pattern(8192, 5)
    await nvme0n1.write(qpair, old, 500, 16)
    ranges = aionvme.Buffer(4096)
    ranges.set_dsm_range(0, 500, 4)
    ranges.set_dsm_range(1, 510, 2)
    await nvme0n1.dsm(qpair, ranges, 2)
    r = aionvme.Buffer(8192)
    await nvme0n1.read(qpair, r, 500, 16)
    return old, r, ranges


async def test_dsm_deallocate(nvme0n1, qpair):
    oncs(nvme0n1, 2, "Dataset Management")
    old, r, ranges = await _deallocate(nvme0n1, qpair)
    assert nvme0n1.id_data(33) & 0x7 == 1                   # DLFEAT: deallocated reads 00h
    # NVM 3.2.3.2.1: deallocation is advisory: each LBA of a range reads either
    # its data or, deallocated, zeroes; LBAs outside the ranges keep their data
    for lba in range(16):
        got, was = r[512 * lba:512 * lba + 512], old[512 * lba:512 * lba + 512]
        if lba in (0, 1, 2, 3, 10, 11):
            assert got in (was, bytes(512)), lba
        else:
            assert got == was, lba


@qemu_deviation("NVM Command Set 1.0 3.2.3: a Dataset Management range past the end of the "
                "namespace is LBA Out of Range; QEMU 7.2 skips the range and succeeds")
async def test_dsm_range_out_of_range(nvme0n1, qpair):
    oncs(nvme0n1, 2, "Dataset Management")
    ranges = aionvme.Buffer(4096)
    ranges.set_dsm_range(0, nvme0n1.nsze - 1, 2)
    cpl = await nvme0n1.dsm(qpair, ranges, 1, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x80)


@pytest.mark.sim_only("the simulator deallocates every range it is given")
async def test_dsm_deallocate_reads_zeroes(nvme0n1, qpair):
    _, r, _ = await _deallocate(nvme0n1, qpair)
    assert r[0:2048] == bytes(2048) and r[5120:6144] == bytes(1024)


async def test_verify(nvme0n1, qpair):
    assert (await nvme0n1.verify(qpair, 0, 64)).ok


async def test_lba_out_of_range(nvme0n1, qpair, buf):
    n = nvme0n1.nsze
    for lba, count in ((n, 1), (n - 1, 2), (2**63, 1), (2**64 - 1, 1)):
        cpl = await nvme0n1.read(qpair, buf, lba, count, check=False)
        assert (cpl.sct, cpl.sc) == (0, 0x80), lba
    ops = {3: nvme0n1.write_zeroes, 7: nvme0n1.verify, 1: nvme0n1.write_uncorrectable}
    for bit, op in ops.items():
        if not nvme0n1.nvme.id_data(521, 520) >> bit & 1:
            continue                                        # not supported (ONCS)
        cpl = await op(qpair, n - 1, 2, check=False)
        assert (cpl.sct, cpl.sc) == (0, 0x80)
    assert (await nvme0n1.read(qpair, buf, n - 1, 1)).ok


@pytest.mark.parametrize("which", [
    "zero", "above NN", "FFFFFFFEh",
    pytest.param("broadcast", marks=pytest.mark.sim_only(
        "the status of a broadcast NSID for Read: QEMU 7.2 answers Invalid Field"))])
async def test_invalid_namespace(nvme0n1, qpair, buf, which):
    # 3.2.1.2: an invalid NSID is Invalid Namespace or Format
    nn = nvme0n1.nvme.id_data(519, 516)
    nsid = {"zero": 0, "above NN": nn + 1, "FFFFFFFEh": 0xFFFFFFFE,
            "broadcast": 0xFFFFFFFF}[which]
    cpl = await nvme0n1.send_cmd(0x02, qpair, buf, nsid=nsid, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x0B)


async def test_inactive_namespace(nvme0n1, qpair, buf):
    # 3.2.1.2: an inactive NSID (valid, no namespace attached) in an I/O
    # command is Invalid Field in Command
    nn = nvme0n1.nvme.id_data(519, 516)
    if nn < 2:
        pytest.skip(f"NN {nn}: every valid NSID is active")
    cpl = await nvme0n1.send_cmd(0x02, qpair, buf, nsid=nn, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x02)


@pytest.mark.parametrize("opcode", [0x03, 0x06, 0x0D, 0x7F, 0x80, 0xFF])
async def test_unsupported_io_opcode(nvme0n1, qpair, opcode):
    cpl = await nvme0n1.send_cmd(opcode, qpair, nsid=1, check=False)
    assert (cpl.sct, cpl.sc, cpl.dnr) == (0, 0x01, 1)


@pytest.mark.sim_only("a power loss without shutdown")
async def test_unflushed_writes_are_lost_on_power_loss():
    async with aionvme.Controller("sim") as c:
        assert c.id_data(525) & 1                           # VWC present
        assert (await c.getfeatures(0x06)).cdw0 & 1         # and enabled
        ns = await aionvme.Namespace(c, 1)
        q = await aionvme.Qpair(c, 8)
        old, new, fua = pattern(512, 1), pattern(512, 2), pattern(512, 3)
        await ns.write(q, old, 10)
        await ns.flush(q)
        await ns.write(q, new, 10)                          # cached
        await ns.write(q, new, 20)                          # cached, LBA never written
        await ns.write(q, fua, 30, io_flags=0x4000)         # FUA: written through
        c.sim.power_loss()
        await Subsystem(c).power_on()
        r = aionvme.Buffer(512)
        await ns.read(q, r, 10)
        assert r[:] == old[:]
        await ns.read(q, r, 20)
        assert r[:] == bytes(512)
        await ns.read(q, r, 30)
        assert r[:] == fua[:]
        await q.delete()


@pytest.mark.sim_only("a power loss without shutdown")
async def test_flushed_and_uncached_writes_survive_power_loss():
    async with aionvme.Controller("sim") as c:
        ns = await aionvme.Namespace(c, 1)
        q = await aionvme.Qpair(c, 8)
        a, b = pattern(4096, 9), pattern(4096, 10)
        await ns.write(q, a, 0, 8)
        await ns.flush(q)
        await c.setfeatures(0x06, 0)                        # cache off: writes go to media
        await ns.write(q, b, 8, 8)
        c.sim.power_loss()
        await Subsystem(c).power_on()
        r = aionvme.Buffer(8192)
        await ns.read(q, r, 0, 16)
        assert r[0:4096] == a[:] and r[4096:] == b[:]
        await q.delete()


@pytest.mark.sim_only("a file-backed simulator namespace")
async def test_file_backed_namespace_keeps_data(tmp_path):
    img = tmp_path / "ns1.img"
    addr = sim_address(tmp_path, namespaces=[{"size": "16M", "file": str(img)}])
    data = pattern(4096, 11)
    async with aionvme.Controller(addr) as c:
        ns = await aionvme.Namespace(c, 1)
        assert ns.nsze * ns.lba_size == 16 << 20
        async with aionvme.Qpair(c, 8) as q:
            await ns.write(q, data, 100, 8)
            await ns.flush(q)
            await ns.write(q, pattern(512, 12), 200)        # unflushed: lost
            await Subsystem(c).power_cycle(0)
            r = aionvme.Buffer(4096)
            await ns.read(q, r, 100, 8)
            assert r[:] == data[:]
            await ns.read(q, r, 200, 1)
            assert r[0:512] == bytes(512)
    assert os.path.getsize(img) == 16 << 20
    async with aionvme.Controller(addr) as c:               # a new device process
        ns = await aionvme.Namespace(c, 1)
        async with aionvme.Qpair(c, 8) as q:
            r = aionvme.Buffer(4096)
            await ns.read(q, r, 100, 8)
            assert r[:] == data[:]
