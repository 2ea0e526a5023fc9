"""Data verification inside ioworkers, shared with the parent (aionvme.verify).

A worker stamps and records its writes in the parent's table of the namespace
and checks its reads against it; the parent checks what workers wrote and the
other way round; commands of any process that overlap in time leave the LBAs
unchecked or unknown (NVMe 1.3c, 6.3), never a false alarm.  No timed
assertions: each test checks what was verified, not how fast."""
import asyncio
import struct

import pytest

import aionvme
from aionvme.exceptions import IOWorkerError, IOWorkerVerifyError, VerifyError

NSID = 1
LBA = 512  # the default simulated namespace's LBA size
BASE = 1_700_000  # regions of this file (of 2 Mi LBAs), away from the other tests'


def table(ns):
    return ns._verifier.table


def stamp(media, i):
    """(LBA, token) stamped in the i-th LBA of ``media``."""
    return struct.unpack_from("<QQ", media, i * LBA)


async def parent_write(ns, q, lba, n, fill=0x3C):
    buf = aionvme.Buffer(n * LBA)
    buf.fill(fill)
    await ns.write(q, buf, lba, n)
    return buf


async def parent_read(ns, q, lba, n):
    buf = aionvme.Buffer(n * LBA)
    await ns.read(q, buf, lba, n)
    return buf


async def test_worker_writes_are_verified_by_the_parent(nvme0, nvme0n1, qpair, verify):
    start = BASE
    w = nvme0n1.ioworker(io_size=8, lba_align=8, lba_random=False, read_percentage=0,
                         qdepth=8, io_count=8, region_start=start, region_end=start + 64)
    r = await w
    assert r.io_count_write == 8 and r.error == 0
    media = nvme0.sim.media(NSID, start, 64)
    for i in range(64):
        lba, token = stamp(media, i)
        assert lba == start + i
        assert token >> 40 == w.pid  # the worker's own token
    assert all(table(nvme0n1).get(start + i) > 2 for i in range(64))  # CRCs recorded
    await parent_read(nvme0n1, qpair, start, 64)  # no false alarm
    nvme0.sim.corrupt(NSID, start + 21, offset=300)
    with pytest.raises(VerifyError, match=f"LBA {start + 21}: the data differs") as e:
        await parent_read(nvme0n1, qpair, start, 64)
    assert e.value.expected["token"] >> 40 == w.pid


async def test_parent_writes_are_verified_by_a_worker(nvme0, nvme0n1, qpair, verify):
    start = BASE + 1000
    await parent_write(nvme0n1, qpair, start, 64)
    r = await nvme0n1.ioworker(io_size=8, lba_align=8, lba_random=False, read_percentage=100,
                               qdepth=8, io_count=80, region_start=start,
                               region_end=start + 64)
    assert r.io_count_read == 80 and r.error == 0 and r.reason == "io_count"
    nvme0.sim.corrupt(NSID, start + 42, offset=100)
    with pytest.raises(IOWorkerVerifyError, match=f"namespace 1 LBA {start + 42}: ") as e:
        await nvme0n1.ioworker(io_size=8, lba_align=8, lba_random=False, read_percentage=100,
                               qdepth=8, io_count=80, region_start=start,
                               region_end=start + 64)
    err = e.value
    assert isinstance(err, VerifyError) and isinstance(err, IOWorkerError)
    assert err.lba == start + 42 and err.command_lba == start + 40
    assert err.expected["lba"] == err.found["lba"] == start + 42
    assert err.expected["token"] == err.found["token"]  # the stamp is intact: byte 100 was hit
    assert err.expected["crc"] != err.found["crc"]
    res = err.result
    assert res.reason == "verify" and res.error == 1
    assert res.first_error["kind"] == "verify" and res.first_error["lba"] == start + 40
    assert res.first_error["mismatch"]["lba"] == start + 42


async def test_a_worker_verifies_another_workers_writes(nvme0, nvme0n1, verify):
    start = BASE + 2000
    await nvme0n1.ioworker(io_size=4, lba_align=4, lba_random=False, read_percentage=0,
                           qdepth=4, io_count=16, region_start=start, region_end=start + 64)
    r = await nvme0n1.ioworker(io_size=4, lba_align=4, read_percentage=100, qdepth=4,
                               io_count=200, region_start=start, region_end=start + 64)
    assert r.error == 0
    # A stale copy: LBA start+5 gets the data of start+6 (an LBA it was not written with).
    nvme0.sim.corrupt(NSID, start + 5, offset=0, xor=0x03)  # the stamped LBA number 5 -> 6
    with pytest.raises(IOWorkerVerifyError, match=f"expected LBA {start + 5} token .* found "
                                                 f"LBA {start + 6} "):
        await nvme0n1.ioworker(io_size=4, lba_align=4, lba_random=False, read_percentage=100,
                               qdepth=4, io_count=16, region_start=start, region_end=start + 64)


async def test_corruption_injected_during_a_run_is_detected(nvme0, nvme0n1, qpair, verify):
    start = BASE + 3000
    await parent_write(nvme0n1, qpair, start, 64)
    with pytest.raises(IOWorkerVerifyError, match=f"namespace 1 LBA {start + 13}: the data "
                                                 f"differs") as e:
        async with nvme0n1.ioworker(io_size=8, lba_align=8, read_percentage=100, qdepth=16,
                                    time=60, region_start=start, region_end=start + 64) as w:
            async for s in w.stats(interval=0.05):
                if s.io_count > 1000:  # running, and every read so far verified
                    assert s.errors == 0
                    nvme0.sim.corrupt(NSID, start + 13, offset=100)
                    break
    assert e.value.result.reason == "verify"
    assert e.value.result.mseconds < 60_000  # it stopped at the mismatch, not at its time limit


async def test_disjoint_workers_no_false_alarm(nvme0, nvme0n1, qpair, verify):
    start = BASE + 4000
    workers = [nvme0n1.ioworker(io_size=8, lba_align=8, read_percentage=50, qdepth=16,
                                io_count=20_000, region_start=start + k * 256,
                                region_end=start + (k + 1) * 256) for k in range(2)]
    results = await asyncio.gather(*workers)
    for r in results:
        assert r.error == 0 and r.io_count_write > 0 and r.io_count_read > 0
    await parent_read(nvme0n1, qpair, start, 512)  # what they wrote verifies
    t = table(nvme0n1)
    written = [lba for lba in range(start, start + 512) if t.get(lba) > 2]
    # Random 8-LBA writes over 32 slots at QD16: every slot is written, but two writes to
    # one slot in flight together leave it unknown (the in-flight rule), so not all are known.
    assert len(written) >= 128
    for lba in (written[0], written[-1]):
        nvme0.sim.corrupt(NSID, lba, offset=511)
        with pytest.raises(VerifyError, match=f"LBA {lba}: "):
            await parent_read(nvme0n1, qpair, start, 512)
        nvme0.sim.corrupt(NSID, lba, offset=511)  # back as it was


async def test_overlapping_workers_and_parent_no_false_alarm(nvme0, nvme0n1, qpair, verify):
    """Two workers and the parent read and write the same 48 LBAs at once, in
    unaligned, partly overlapping commands: the results of overlapping
    commands are unpredictable (NVMe 1.3c, 6.3), so no alarm may be raised."""
    start = BASE + 5000
    await parent_write(nvme0n1, qpair, start, 48)
    workers = [nvme0n1.ioworker(io_size=size, lba_align=1, read_percentage=50, qdepth=16,
                                io_count=30_000, region_start=start, region_end=start + 48)
               for size in (3, 5)]

    async def parent_io():
        buf = aionvme.Buffer(4 * LBA)
        n = 0
        while not all(w.result for w in workers):
            lba = start + (n * 7) % 45
            if n % 2:
                await nvme0n1.write(qpair, buf, lba, 4)
            else:
                await nvme0n1.read(qpair, buf, lba, 4)
            n += 1
        return n

    for w in workers:
        await w.start()
    n = await parent_io()
    results = [await w.wait() for w in workers]
    assert n > 0
    for r in results:
        assert r.error == 0 and r.io_count == 30_000
    # Afterwards every LBA is checked again: unknown ones are not, known ones pass.
    await parent_read(nvme0n1, qpair, start, 48)
    r = await nvme0n1.ioworker(io_size=1, lba_random=False, read_percentage=100, qdepth=8,
                               io_count=48, region_start=start, region_end=start + 48)
    assert r.error == 0
    t = table(nvme0n1)
    known = [lba for lba in range(start, start + 48) if t.get(lba) > 2]
    assert known  # most writes did not overlap another one
    nvme0.sim.corrupt(NSID, known[0], offset=64)
    with pytest.raises(IOWorkerVerifyError, match=f"LBA {known[0]}: "):
        await nvme0n1.ioworker(io_size=1, lba_random=False, read_percentage=100, qdepth=8,
                               io_count=48, region_start=start, region_end=start + 48)


async def test_worker_write_zeroes_and_deallocate_update_the_table(nvme0, nvme0n1, qpair,
                                                                   verify):
    start = BASE + 6000
    await parent_write(nvme0n1, qpair, start, 64)
    assert nvme0n1._verifier.dlfeat == 1  # the simulator's DLFEAT is 001b
    for op, region in ((0x08, (start, start + 32)), (0x09, (start + 32, start + 64))):
        r = await nvme0n1.ioworker(io_size=8, lba_align=8, lba_random=False, qdepth=4,
                                   io_count=4, op_percentage={op: 100},
                                   region_start=region[0], region_end=region[1])
        assert r.error == 0 and r.io_count == 4
    t = table(nvme0n1)
    assert [t.get(start + i) for i in range(32)] == [1] * 32  # ANV_VERIFY_ZEROES
    # Deallocate is advisory (NVM 3.2.3): the old CRC32C stays, zeroes are accepted too.
    assert all(t.get(start + i) > 2 for i in range(32, 64))
    await parent_read(nvme0n1, qpair, start, 64)
    nvme0.sim.corrupt(NSID, start + 40, offset=3, xor=0x80)
    nvme0.sim.corrupt(NSID, start + 8, offset=3, xor=0x80)
    with pytest.raises(IOWorkerVerifyError, match=f"LBA {start + 8}: expected zeroes, "
                                                 f"found 0x80 at byte 3"):
        await nvme0n1.ioworker(io_size=8, lba_align=8, lba_random=False, read_percentage=100,
                               qdepth=1, io_count=8, region_start=start, region_end=start + 64)
    with pytest.raises(IOWorkerVerifyError, match=f"LBA {start + 40}: expected LBA {start + 40} "
                                                 f"token .* could also have read as all 00h"):
        await nvme0n1.ioworker(io_size=8, lba_align=8, lba_random=False, read_percentage=100,
                               qdepth=4, io_count=8, region_start=start + 32,
                               region_end=start + 64)


async def test_verify_off_checks_nothing(nvme0, nvme0n1, qpair):
    assert not aionvme.config().verify
    start = BASE + 7000
    r = await nvme0n1.ioworker(io_size=8, lba_align=8, lba_random=False, read_percentage=0,
                               qdepth=8, io_count=8, region_start=start, region_end=start + 64,
                               pattern=0x11223344, stamp=False)
    assert r.error == 0
    media = nvme0.sim.media(NSID, start, 64)
    assert media == bytes.fromhex("44332211") * (64 * LBA // 4)  # nothing stamped
    assert nvme0n1._verifier is None
    nvme0.sim.corrupt(NSID, start + 9)
    r = await nvme0n1.ioworker(io_size=8, lba_align=8, lba_random=False, read_percentage=100,
                               qdepth=8, io_count=8, region_start=start, region_end=start + 64)
    assert r.error == 0 and r.first_error is None


async def test_a_worker_without_verify_makes_the_parent_forget_its_table(nvme0n1, qpair):
    """Writes nobody recorded would make the table stale: it is dropped."""
    start = BASE + 8000
    aionvme.config(verify=True)
    try:
        await parent_write(nvme0n1, qpair, start, 8)
        assert nvme0n1._verifier is not None
        aionvme.config(verify=False)
        await nvme0n1.ioworker(io_size=8, read_percentage=0, qdepth=1, io_count=1,
                               region_start=start, region_end=start + 8)
        assert nvme0n1._verifier is None
        aionvme.config(verify=True)
        await parent_read(nvme0n1, qpair, start, 8)  # no stale check
    finally:
        aionvme.config(verify=False)
