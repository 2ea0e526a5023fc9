"""Data verification across an abrupt power loss: what the volatile write cache
may lose is accepted as old or new (each exactly), everything else must be
exact; the simulator's power loss model and the verifier's agree."""
import asyncio

import pytest

import aionvme
from aionvme import Subsystem
from aionvme.exceptions import VerifyError
from simconf import sim_address

NSID = 1
pytestmark = pytest.mark.sim_only("a power loss without shutdown")


def pattern(n, fill):
    b = aionvme.Buffer(n * 512, f"fill {fill:#x}")
    b.fill(fill)
    return b


async def test_unflushed_writes_may_be_old_or_new_all_others_exact(verify):
    async with aionvme.Controller("sim") as c:
        ns = await aionvme.Namespace(c, 1)
        q = await aionvme.Qpair(c, 8)
        try:
            await ns.write(q, pattern(8, 0x11), 0, 8)
            await ns.write(q, pattern(8, 0x12), 200, 8)
            await ns.write(q, pattern(1, 0x54), 400, 1)
            await ns.flush(q)                              # 0..7 and 200..207 durable
            await ns.write(q, pattern(1, 0x55), 400, 1)    # cached, and flushed behind
            await ns.send_cmd(0x00, q, nsid=NSID)          # the verifier's back: kept
            await ns.write(q, pattern(4, 0x22), 0, 4)      # cached: may be lost
            await ns.write(q, pattern(8, 0x33), 100, 8, io_flags=0x4000)  # FUA: durable
            await ns.write(q, pattern(2, 0x44), 300, 2)    # cached, LBA never written before
            await ns.write(q, pattern(1, 0x66), 500, 1)    # cached twice: an intermediate
            await ns.write(q, pattern(1, 0x67), 500, 1)    # write could survive
            c.sim.power_loss()
            await Subsystem(c).power_on()
            t = ns._verifier.table
            assert t.get(500) == 0                         # unknown
            r = aionvme.Buffer(8 * 512)
            await ns.read(q, r, 0, 8)                      # the simulator lost 0..3: old
            assert r[16:512] == b"\x11" * 496
            await ns.read(q, r, 100, 8)
            await ns.read(q, r, 200, 8)
            await ns.read(q, r, 300, 2)                    # old: never written, unknown
            await ns.read(q, r, 400, 1)                    # new: flushed by the raw Flush
            assert r[100] == 0x55
            # Each of the two states is checked exactly.
            c.sim.corrupt(NSID, 2, offset=99)
            with pytest.raises(VerifyError, match="LBA 2: "):
                await ns.read(q, r, 0, 4)
            c.sim.corrupt(NSID, 400, offset=99)
            with pytest.raises(VerifyError, match="LBA 400: "):
                await ns.read(q, r, 400, 1)
            # The durable LBAs are exact.
            for lba in (5, 103, 204):
                c.sim.corrupt(NSID, lba, offset=7)
                with pytest.raises(VerifyError, match=f"LBA {lba}: "):
                    await ns.read(q, r, lba, 1)
            # The next write makes an "old or new" LBA exact again.
            await ns.write(q, pattern(1, 0x77), 2, 1)
            await ns.read(q, r, 2, 1)
            with c.sim.bitflip(offset=99):
                with pytest.raises(VerifyError, match="LBA 2: the data differs"):
                    await ns.read(q, r, 2, 1)
        finally:
            await q.delete()


async def test_flushed_writes_are_exact_after_power_loss(verify):
    async with aionvme.Controller("sim") as c:
        ns = await aionvme.Namespace(c, 1)
        q = await aionvme.Qpair(c, 8)
        try:
            await ns.write(q, pattern(8, 0x11), 0, 8)
            await ns.flush(q)
            c.sim.power_loss()
            await Subsystem(c).power_on()
            assert ns._verifier.table.power_loss() == 0   # nothing was at risk
            with c.sim.skip(opcode=0x01):                  # a write lost after a Flush
                await ns.write(q, pattern(1, 0x22), 3, 1)  # ... is a lost write (stale)
            await ns.flush(q)
            c.sim.power_loss()
            await Subsystem(c).power_on()
            with pytest.raises(VerifyError, match="LBA 3: expected LBA 3 token"):
                await ns.read(q, aionvme.Buffer(4096), 0, 8)
        finally:
            await q.delete()


async def test_without_a_volatile_write_cache_every_completed_write_survives(tmp_path,
                                                                              verify):
    async with aionvme.Controller(sim_address(tmp_path, vwc=False)) as c:
        assert not c.id_data(525) & 1
        ns = await aionvme.Namespace(c, 1)
        q = await aionvme.Qpair(c, 8)
        try:
            await ns.write(q, pattern(8, 0x11), 0, 8)      # no Flush
            c.sim.power_loss()
            await Subsystem(c).power_on()
            r = aionvme.Buffer(4096)
            await ns.read(q, r, 0, 8)
            assert r[16] == 0x11
            c.sim.corrupt(NSID, 6, offset=42)
            with pytest.raises(VerifyError, match="LBA 6: the data differs"):
                await ns.read(q, r, 0, 8)
        finally:
            await q.delete()


async def test_dirty_power_cycle_with_an_ioworker(verify):
    """pynvme's dirty_power_cycle_test idea: random writes, power cut mid-run
    without a Flush, then every LBA of the region read back and verified."""
    region = 1 << 16
    async with aionvme.Controller("sim") as c:
        ns = await aionvme.Namespace(c, 1)
        q = await aionvme.Qpair(c, 64)
        try:
            # A known state first: the region written and flushed.
            await ns.ioworker(io_size=64, lba_random=False, qdepth=16, read_percentage=0,
                              region_end=region, io_count=region // 64)
            await ns.flush(q)
            # Throttled, so that few LBAs are written twice between Flushes (those
            # become unknown: an intermediate write could have survived).
            w = ns.ioworker(io_size=8, lba_align=8, lba_random=True, qdepth=32,
                            read_percentage=30, region_end=region, time=30, iops=2000,
                            check=False)
            async with w:
                # Mid-run: once the worker has done 1000 commands (as slowly as the
                # machine runs them), with writes in the cache.
                while not w._stats.started or w._stats.snapshot()["done"] < 1000:
                    await asyncio.sleep(0.01)
                cached = c.sim.state()["counters"]["cached_writes"]
                c.sim.power_loss()
            assert w.result.io_count_write > 200
            assert cached > 0  # the power went while the cache held writes: they are undone
            await Subsystem(c).power_on()
            t = ns._verifier.table
            # Every LBA of the region: the worker reads it all, each checked.
            r = await ns.ioworker(io_size=64, lba_random=False, qdepth=16, read_percentage=100,
                                  region_end=region, io_count=region // 64)
            assert r.error == 0 and r.io_count_read == region // 64
            # The verifier accepted old data where the simulator undid cached writes:
            # checked LBAs (neither unknown nor "old or new") are still most of them.
            known = sum(1 for lba in range(0, region, 97) if t.get(lba))
            assert known > (region // 97) * 0.9
        finally:
            await q.delete()
