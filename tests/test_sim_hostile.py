"""A hostile host (issue 2): random SQEs on admin and I/O queues, raw data
pointers, random doorbell, register and config writes.  The device process
never crashes or hangs: it answers its control plane, and a reset brings
the controller back.  Each test runs on its own Controller."""
import asyncio
import random

import aionvme
from aionvme import CommandTimeout

# AER never completes on its own, so a random one would only time out.
SKIP_ADMIN = {0x0C}


def rand_cdw(rng):
    return rng.choice([0, 1, 0xFFFFFFFF, rng.getrandbits(32), rng.getrandbits(8),
                       rng.getrandbits(16) << 16])


def rand_ptr(rng, scratch):
    # never a pointer into other host buffers: scratch, or far outside the arena
    return rng.choice([0, 0xFFF, 1 << 63, 0xFFFFFFFFFFFFF000, rng.getrandbits(64) | (1 << 62),
                       scratch.iova, scratch.iova + rng.randrange(1, 4096), scratch.iova + 4096])


async def alive_and_usable(c):
    st = c.sim.state()                                  # the control plane answers
    assert st["powered"]
    assert c._transport.backend.death() is None
    await c.reset()
    assert c[0x1C] & 0x3 == 0x1                          # ready, no CFS
    ns = await aionvme.Namespace(c, 1)
    async with aionvme.Qpair(c, 8) as q:
        buf = aionvme.Buffer(4096)
        buf.fill(0x3C)
        await ns.write(q, buf, 0, 8)
        back = aionvme.Buffer(4096)
        await ns.read(q, back, 0, 8)
        assert back[:] == buf[:]


async def settle(futs):
    out = []
    for f in futs:
        try:
            out.append(await f)
        except CommandTimeout:
            out.append(None)
    return out


async def test_random_admin_commands():
    rng = random.Random(2)
    async with aionvme.Controller("sim") as c:
        scratch = aionvme.Buffer(3 * 4096, "scratch")
        for _ in range(300):
            op = rng.randrange(256)
            if op in SKIP_ADMIN:
                continue
            cpl = await settle([c.send_cmd(
                op, nsid=rand_cdw(rng), cdw10=rand_cdw(rng), cdw11=rand_cdw(rng),
                cdw12=rand_cdw(rng), cdw13=rand_cdw(rng), cdw14=rand_cdw(rng),
                cdw15=rand_cdw(rng), prp1=rand_ptr(rng, scratch), prp2=rand_ptr(rng, scratch),
                check=False, timeout=2)])
            # 00/06 Internal Error means a handler of the simulator raised: a bug.
            assert cpl[0] is None or (cpl[0].sct, cpl[0].sc) != (0, 0x06), (hex(op), cpl[0])
            if cpl[0] is None:                          # e.g. a queue it just deleted
                await c.reset()
            elif c[0x1C] & 0x2 or not c[0x1C] & 0x1:
                await c.reset()
        await alive_and_usable(c)


async def test_random_io_commands():
    rng = random.Random(3)
    async with aionvme.Controller("sim") as c:
        ns = await aionvme.Namespace(c, 1)
        scratch = aionvme.Buffer(3 * 4096, "scratch")
        async with aionvme.Qpair(c, 64) as q:
            futs = []
            for i in range(600):
                op = rng.choice([rng.randrange(256), rng.randrange(16)])
                nsid = rng.choice([1, 1, 0, 2, 0xFFFFFFFF, rng.getrandbits(32)])
                futs.append(ns.send_cmd(
                    op, q, nsid=nsid, cdw10=rand_cdw(rng), cdw11=rand_cdw(rng),
                    cdw12=rand_cdw(rng), cdw13=rand_cdw(rng), cdw14=rand_cdw(rng),
                    cdw15=rand_cdw(rng), prp1=rand_ptr(rng, scratch),
                    prp2=rand_ptr(rng, scratch), sgl=rng.random() < 0.2, check=False))
                if len(futs) == 32:
                    cpls = await settle(futs)
                    assert all(cpl is not None for cpl in cpls)   # every SQE gets its CQE
                    assert not [c for c in cpls if (c.sct, c.sc) == (0, 0x06)]
                    futs = []
            await settle(futs)
        await alive_and_usable(c)


async def test_random_doorbell_writes():
    rng = random.Random(4)
    async with aionvme.Controller("sim", dbbuf=False) as c:
        async with aionvme.Qpair(c, 16):
            for _ in range(300):
                off = 0x1000 + 4 * rng.randrange(0x400)
                if rng.random() < 0.5:
                    off = 0x1000 + 4 * rng.randrange(4)  # the admin and first I/O queue
                c[off] = rng.choice([0, 1, 15, 16, 0xFFFF, rng.getrandbits(32)])
            assert c.sim.state()["powered"]
            await asyncio.sleep(0.05)
        await alive_and_usable(c)


async def test_random_register_writes():
    rng = random.Random(5)
    async with aionvme.Controller("sim") as c:
        for _ in range(400):
            off = rng.choice([rng.randrange(0, 0x1000, 4), 0x14, 0x1C, 0x20, 0x24, 0x28,
                              0x30, 0x0C, 0x10, rng.randrange(0x2000, 0x4000, 4)])
            value = rng.choice([rng.getrandbits(32), 1, 0, 0xFFFFFFFF, 0x4E564D65,
                                (1 << 14) | 1, (2 << 14) | 1 | (6 << 16) | (4 << 20)])
            if rng.random() < 0.1:
                c.write_register(off & ~7, rng.getrandbits(64), 8)
            else:
                c[off] = value
            c.register(rng.randrange(0, 0x4000, 4))
            if rng.random() < 0.05:
                await asyncio.sleep(0.002)               # let timers (ready, shutdown) run
        await alive_and_usable(c)


async def test_random_config_space_writes():
    rng = random.Random(6)
    async with aionvme.Controller("sim") as c:
        for _ in range(300):
            size = rng.choice([1, 2, 4])
            off = rng.randrange(0, 0x100 - size + 1)
            c.pcie.write(off, size, rng.getrandbits(8 * size))
            c.pcie.register(rng.randrange(0, 0x1000 - 4), 4)
        pm = c.pcie.cap_offset(0x01)
        c.pcie.write(pm + 4, 2, 0)                      # back to D0
        await alive_and_usable(c)


async def test_the_session_controller_is_untouched(nvme0, nvme0n1, qpair, buf):
    assert nvme0[0x1C] & 0x3 == 0x1
    assert (await nvme0n1.read(qpair, buf, 0)).ok
