"""Doorbell Buffer Config (NVMe 2.0, 5.11): shadow doorbells and EventIdx."""
import asyncio
import struct

import pytest

import aionvme
from simconf import wait_for_state


async def _mixed_io(ns, q, n=300):
    w = aionvme.Buffer(4096)
    for i in range(n):
        w[0:8] = i.to_bytes(8, "little")
        await ns.write(q, w, i * 8, 8)
    r = aionvme.Buffer(4096)
    cpls = await asyncio.gather(*(ns.read(q, aionvme.Buffer(4096), i * 8, 8) for i in range(q.depth - 1)))
    assert all(c.ok for c in cpls)
    await ns.read(q, r, (n - 1) * 8, 8)
    assert r[0:8] == (n - 1).to_bytes(8, "little")


async def test_shadow_doorbells_carry_io(nvme0, nvme0n1):
    assert nvme0.doorbell_buffers          # the simulator offers OACS bit 8
    assert nvme0.id_data(257, 256) & (1 << 8)
    async with aionvme.Qpair(nvme0, 32) as q:
        await _mixed_io(nvme0n1, q)
        dbs, eis = nvme0._dbbuf
        sq_off = 8 * q.qid
        tail = struct.unpack_from("<I", dbs[sq_off:sq_off + 4])[0]
        assert tail == q._core.sq_tail
        # the device goes idle and asks for rings: its EventIdx reaches the tail
        await wait_for_state(lambda: struct.unpack_from("<I", eis[sq_off:sq_off + 4])[0] == tail,
                             "the SQ EventIdx caught up with the shadow tail")


async def test_mmio_doorbells_only(pciaddr):
    async with aionvme.Controller(pciaddr, dbbuf=False) as c:
        assert not c.doorbell_buffers
        ns = await aionvme.Namespace(c, 1)
        async with aionvme.Qpair(c, 16) as q:
            await _mixed_io(ns, q, 50)


@pytest.mark.parametrize("prp1, prp2", [(0x2000123, 0x2001000), (0x2000000, 0x2001008)])
async def test_misaligned_pages_are_invalid(nvme0, prp1, prp2):
    """5.11: both buffers are memory page aligned."""
    cpl = await nvme0.send_cmd(0x7C, prp1=prp1, prp2=prp2, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x02)


async def test_reset_forgets_and_renews_the_buffers(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        ns = await aionvme.Namespace(c, 1)
        async with aionvme.Qpair(c, 16) as q:
            await c.reset()
            assert c.doorbell_buffers
            await _mixed_io(ns, q, 50)
