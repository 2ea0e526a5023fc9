"""Each fault the simulator injects is detected by the host (issue 2):
an injected status, a delayed and a dropped completion, corrupted media,
Controller Fatal Status."""
import asyncio

import pytest

import aionvme
from aionvme.exceptions import status as S
from simconf import wait_for_state


async def test_injected_status_on_admin_and_io(nvme0, nvme0n1, qpair, buf):
    with nvme0.sim.inject_status(opcode=0x06, qid=0, sct=0, sc=0x06) as fault:
        cpl = await nvme0.identify(buf, check=False)
        assert (cpl.sct, cpl.sc, cpl.dnr) == (0, 0x06, 1)
        assert fault.hits == 1 and not fault.active          # count=1: used up
    assert (await nvme0.identify(buf)).ok
    with nvme0.sim.inject_status(opcode=0x01, qid=qpair.qid, lba=50, sct=2, sc=0x80,
                                 dnr=False, count=2):
        assert (await nvme0n1.write(qpair, buf, 0)).ok        # outside the LBA window
        cpl = await nvme0n1.write(qpair, buf, 50, check=False)
        assert (cpl.sct, cpl.sc, cpl.dnr) == (2, 0x80, 0)     # Write Fault, retryable
        with pytest.raises(S.WriteFault, match="02/80"):
            await nvme0n1.write(qpair, buf, 50)
    assert (await nvme0n1.write(qpair, buf, 50)).ok


async def test_delayed_completion_arrives_late(nvme0, nvme0n1, qpair, buf):
    with nvme0.sim.delay(delay_ms=200, opcode=0x02, qid=qpair.qid) as fault:
        fut = asyncio.ensure_future(nvme0n1.read(qpair, buf, 0))
        await wait_for_state(lambda: nvme0.sim.state()["delayed"] == 1,
                             "the completion is held back")
        assert not fut.done()
        assert (await fut).ok
        assert fault.hits == 1


async def test_dropped_completion_times_out(nvme0, nvme0n1, qpair, buf):
    with nvme0.sim.drop(opcode=0x00, qid=qpair.qid):
        with pytest.raises(aionvme.CommandTimeout):
            await nvme0n1.flush(qpair, timeout=0.3)
    assert (await nvme0n1.flush(qpair)).ok


async def test_corrupted_lba_is_seen_by_compare_and_verify(nvme0, nvme0n1, qpair, verify):
    data = aionvme.Buffer(512)
    data[0:5] = b"clean"
    await nvme0n1.write(qpair, data, 77)
    before = nvme0.sim.media(1, 77)
    assert (await nvme0n1.compare(qpair, aionvme.Buffer(512), 77, check=False)).sc == 0x85
    data[0:512] = before                                      # what the device holds
    assert (await nvme0n1.compare(qpair, data, 77)).ok
    nvme0.sim.corrupt(1, 77, offset=2, xor=0x20)
    after = nvme0.sim.media(1, 77)
    assert after[2] == before[2] ^ 0x20 and after[3:] == before[3:]
    cpl = await nvme0n1.compare(qpair, data, 77, check=False)
    assert (cpl.sct, cpl.sc) == (2, 0x85)
    with pytest.raises(aionvme.VerifyError, match="77"):       # the host's data verification
        await nvme0n1.read(qpair, aionvme.Buffer(512), 77)
    await nvme0n1.write(qpair, data, 77)


async def test_fatal_status_is_detected_and_reset_clears_it():
    async with aionvme.Controller("sim") as c:
        ns = await aionvme.Namespace(c, 1)
        q = await aionvme.Qpair(c, 8)
        c.sim.fatal()
        assert c[0x1C] & 0x2                                  # CSTS.CFS
        # the controller stops processing commands: they never complete
        with pytest.raises(aionvme.CommandTimeout):
            await ns.read(q, aionvme.Buffer(512), 0, timeout=0.3)
        await c.reset()
        assert c[0x1C] & 0x3 == 0x1
        assert (await ns.read(q, aionvme.Buffer(512), 0)).ok
        await q.delete()
