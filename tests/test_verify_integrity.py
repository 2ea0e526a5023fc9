"""Data verification never lies: no false alarm where NVMe allows the data the
device returns, and every corruption the simulator injects is caught.

Runs on the simulator and on QEMU (``--pciaddr qemu``); the tests that inject
faults are ``sim_only``."""
import asyncio

import pytest

import aionvme
from aionvme.exceptions import InterfaceError, VerifyError

NSID = 1
sim_only = pytest.mark.sim_only("fault injection")


async def written(ns, q, lba, n, fill=0x5A):
    buf = aionvme.Buffer(n * ns.lba_size, f"written {lba}+{n}")
    buf.fill(fill)
    await ns.write(q, buf, lba, n)
    return buf


async def dsm(ns, q, *ranges):
    b = aionvme.Buffer(4096, "ranges")
    for i, (lba, n) in enumerate(ranges):
        b.set_dsm_range(i, lba, n)
    await ns.dsm(q, b, len(ranges), attribute=0x4)


# -- a Buffer shared by commands in flight -------------------------------------------
async def test_reads_sharing_one_buffer_in_flight_are_refused_not_a_false_alarm(
        nvme0n1, qpair, verify):
    """32 reads of different, correctly written LBAs into one Buffer, in flight
    together: legal NVMe, but the Buffer then holds whichever landed last.  With
    verification on the second is refused with a typed error naming the Buffer;
    it used to raise VerifyError ("expected LBA 1000 ..., found LBA 1031")."""
    for lba in range(1000, 1032, 8):
        await written(nvme0n1, qpair, lba, 8)
    shared = aionvme.Buffer(512, "shared")
    first = nvme0n1.read(qpair, shared, 1000)
    for lba in range(1001, 1032):
        with pytest.raises(InterfaceError, match="buf 'shared' is in use by 1 command"):
            nvme0n1.read(qpair, shared, lba)
    await first  # the one in flight is checked, and passes
    assert shared.data(7, 0) == 1000
    # One Buffer per command in flight: all 32 together, each checked.
    bufs = [aionvme.Buffer(512) for _ in range(32)]
    await asyncio.gather(*(nvme0n1.read(qpair, b, 1000 + i) for i, b in enumerate(bufs)))
    assert [b.data(7, 0) for b in bufs] == list(range(1000, 1032))
    # Completed: the Buffer is free for the next command.
    await nvme0n1.read(qpair, shared, 1031)


async def test_a_write_buffer_in_flight_is_not_stamped_again_nor_changed(nvme0n1, qpair,
                                                                         verify):
    buf = aionvme.Buffer(4096, "w")
    first = nvme0n1.write(qpair, buf, 1100, 8)
    with pytest.raises(InterfaceError, match="buf 'w' is in use"):
        nvme0n1.write(qpair, buf, 1200, 8)  # would re-stamp the data of the first
    with pytest.raises(InterfaceError, match="Buffer 'w' is in use by 1 verified command"):
        buf[100] = 1  # the first's CRC32C was taken at submission
    with pytest.raises(InterfaceError, match="Buffer 'w' is in use by 1 verified command"):
        buf.fill(0)
    # Not even an unverified command may DMA into it meanwhile.
    with pytest.raises(InterfaceError, match="buf 'w' is in use by a verified command"):
        nvme0n1.send_cmd(0x02, qpair, buf, NSID, cdw10=1300, cdw12=7)
    await first
    buf[100] = 1  # free again
    await nvme0n1.read(qpair, aionvme.Buffer(4096), 1100, 8)


async def test_buffers_in_flight_are_allowed_with_verification_off(nvme0n1, qpair):
    shared = aionvme.Buffer(512)
    await asyncio.gather(*(nvme0n1.read(qpair, shared, lba) for lba in range(32)))


# -- Deallocate: the old data or the value DLFEAT reports ----------------------------
async def test_deallocate_reads_zeroes_or_the_old_data(nvme0, nvme0n1, qpair, verify):
    """NVM 3.2.3: Dataset Management is advisory; 3.2.3.2.1: a deallocated LBA reads
    as DLFEAT says (001b: zeroes) or as the data last written."""
    buf = await written(nvme0n1, qpair, 2000, 8)
    await dsm(nvme0n1, qpair, (2002, 4))
    r = aionvme.Buffer(4096)
    await nvme0n1.read(qpair, r, 2000, 8)
    # Where the device deallocated (the simulator and QEMU with discard=unmap do), zeroes.
    got = [r[i * 512:(i + 1) * 512] for i in range(8)]
    for i in range(8):
        assert got[i] in (buf[i * 512:(i + 1) * 512], bytes(512))
    await written(nvme0n1, qpair, 2003, 1, fill=0x77)  # a write makes it exact again
    await nvme0n1.read(qpair, r, 2000, 8)
    assert r[3 * 512 + 16] == 0x77


@sim_only
async def test_deallocate_not_carried_out_keeps_the_old_data_no_false_alarm(nvme0, nvme0n1,
                                                                            qpair, verify):
    """The QEMU false alarm ("expected zeroes, found 0xe8"): the controller kept the data."""
    buf = await written(nvme0n1, qpair, 2100, 8)
    with nvme0.sim.skip(opcode=0x09) as f:
        await dsm(nvme0n1, qpair, (2100, 8))
        assert f.hits == 1
    r = aionvme.Buffer(4096)
    await nvme0n1.read(qpair, r, 2100, 8)
    assert r[:] == buf[:]


@sim_only
async def test_after_deallocate_other_data_is_a_corruption(nvme0, nvme0n1, qpair, verify):
    await written(nvme0n1, qpair, 2200, 4)
    await dsm(nvme0n1, qpair, (2200, 4))
    nvme0.sim.corrupt(NSID, 2201, offset=5, xor=0x10)  # neither zeroes nor the old data
    with pytest.raises(VerifyError, match="LBA 2201: expected LBA 2201 token .* could also "
                                          "have read as all 00h"):
        await nvme0n1.read(qpair, aionvme.Buffer(2048), 2200, 4)
    await written(nvme0n1, qpair, 2202, 1)
    with nvme0.sim.skip(opcode=0x09):
        await dsm(nvme0n1, qpair, (2202, 1))  # kept: the old data, or zeroes
    with nvme0.sim.bitflip(offset=300, xor=0x04, lba=2202):
        with pytest.raises(VerifyError, match="LBA 2202: the data differs .* could also have "
                                              "read as all 00h"):
            await nvme0n1.read(qpair, aionvme.Buffer(512), 2202, 1)


async def test_deallocate_of_unwritten_lbas_checks_nothing(nvme0n1, qpair, verify):
    await dsm(nvme0n1, qpair, (2300, 16))
    await nvme0n1.read(qpair, aionvme.Buffer(8192), 2300, 16)
    assert nvme0n1._verifier.table.get(2300) == 0


# -- never a miss: each injected corruption is caught ---------------------------------
@sim_only
async def test_bit_flip_is_caught(nvme0, nvme0n1, qpair, verify):
    await written(nvme0n1, qpair, 3000, 8)
    with nvme0.sim.bitflip(offset=3 * 512 + 77, xor=0x01, lba=3000) as f:
        with pytest.raises(VerifyError, match="LBA 3003: the data differs from what was written"):
            await nvme0n1.read(qpair, aionvme.Buffer(4096), 3000, 8)
        assert f.hits == 1
    await nvme0n1.read(qpair, aionvme.Buffer(4096), 3000, 8)  # the media is intact


@sim_only
async def test_misplaced_data_is_caught(nvme0, nvme0n1, qpair, verify):
    await written(nvme0n1, qpair, 3100, 16)
    with nvme0.sim.misplace(distance=8, lba=3100):
        with pytest.raises(VerifyError, match="LBA 3100: expected LBA 3100 token .* found "
                                              "LBA 3108") as e:
            await nvme0n1.read(qpair, aionvme.Buffer(4096), 3100, 8)
    assert e.value.found["lba"] == 3108


@sim_only
async def test_stale_data_of_a_lost_write_is_caught(nvme0, nvme0n1, qpair, verify):
    old = await written(nvme0n1, qpair, 3200, 4, fill=0x11)
    with nvme0.sim.skip(opcode=0x01, lba=3200, lba_count=4) as f:
        new = await written(nvme0n1, qpair, 3200, 4, fill=0x22)  # completes, never lands
        assert f.hits == 1
    with pytest.raises(VerifyError, match="LBA 3200: expected LBA 3200 token") as e:
        await nvme0n1.read(qpair, aionvme.Buffer(2048), 3200, 4)
    assert e.value.found["token"] == old.data(15, 8) != new.data(15, 8)
    assert e.value.expected["token"] == new.data(15, 8)
    assert "4 LBAs read" in str(e.value)


@sim_only
async def test_torn_write_is_caught(nvme0, nvme0n1, qpair, verify):
    await written(nvme0n1, qpair, 3300, 8, fill=0x11)
    with nvme0.sim.torn(keep=3, lba=3300):
        await written(nvme0n1, qpair, 3300, 8, fill=0x22)
    r = aionvme.Buffer(4096)
    with pytest.raises(VerifyError, match="LBA 3303: expected LBA 3303 token") as e:
        await nvme0n1.read(qpair, r, 3300, 8)
    assert "(5 of the 8 LBAs read from LBA 3300 failed the check)" in str(e.value)
    await nvme0n1.read(qpair, r, 3300, 3)  # the part that landed is exact


@sim_only
async def test_unexpected_zeroes_are_caught(nvme0, nvme0n1, qpair, verify):
    await written(nvme0n1, qpair, 3400, 2)
    with nvme0.sim.zeroes(lba=3400):
        with pytest.raises(VerifyError, match="LBA 3400: expected LBA 3400 token .* found LBA 0 "
                                              "token 0x0000000000000000"):
            await nvme0n1.read(qpair, aionvme.Buffer(1024), 3400, 2)


@sim_only
async def test_write_zeroes_not_carried_out_is_caught(nvme0, nvme0n1, qpair, verify):
    """Write Zeroes is not advisory (NVM 3.2.10): the old data is a corruption."""
    await written(nvme0n1, qpair, 3500, 2)
    with nvme0.sim.skip(opcode=0x08):
        await nvme0n1.write_zeroes(qpair, 3500, 2)
    with pytest.raises(VerifyError, match="LBA 3500: expected zeroes, found 0xac at byte 0"):
        await nvme0n1.read(qpair, aionvme.Buffer(1024), 3500, 2)


@sim_only
async def test_read_succeeding_on_a_write_uncorrectable_lba_is_caught(nvme0, nvme0n1, qpair,
                                                                      verify):
    await written(nvme0n1, qpair, 3600, 2)
    with nvme0.sim.skip(opcode=0x04):
        await nvme0n1.write_uncorrectable(qpair, 3601, 1)
    with pytest.raises(VerifyError, match="LBA 3601: the LBA was made uncorrectable .* but the "
                                          "read succeeded"):
        await nvme0n1.read(qpair, aionvme.Buffer(1024), 3600, 2)
    await nvme0n1.read(qpair, aionvme.Buffer(512), 3600, 1)


@sim_only
async def test_data_fault_arguments_are_checked(nvme0):
    with pytest.raises(InterfaceError, match="distance must not be 0"):
        nvme0.sim.misplace(distance=0)
    with pytest.raises(InterfaceError, match="keep -1 must be >= 0"):
        nvme0.sim.torn(keep=-1)
    with pytest.raises(InterfaceError, match="xor 0x100"):
        nvme0.sim.bitflip(xor=0x100)


async def test_the_backends_carry_out_a_deallocate(nvme0n1, qpair, verify):
    """Not required (NVM 3.2.3 is advisory), but both backends do deallocate: the
    qemu backend starts its drives with discard=unmap, without which QEMU drops
    every discard while reporting DLFEAT 001b."""
    assert nvme0n1.id_data(33) & 7 == 1
    await written(nvme0n1, qpair, 4096, 16, fill=0xE8)
    await dsm(nvme0n1, qpair, (4096, 8))
    r = aionvme.Buffer(16 * 512)
    await nvme0n1.read(qpair, r, 4096, 16)
    assert r[:8 * 512] == bytes(8 * 512)
    assert r[8 * 512 + 16] == 0xE8
