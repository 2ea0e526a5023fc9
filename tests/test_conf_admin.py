"""Queue management, Abort and Asynchronous Event Request (NVMe 2.0, 5.1,
5.2, 5.4-5.7).  Runs on every backend."""
import asyncio

import pytest

import aionvme
from aionvme.exceptions import QueueDeletedError
from simconf import qemu_deviation, wait_for_state

DELETE_CQ_STATUS = qemu_deviation(
    "NVMe 2.0 5.6: Delete I/O Completion Queue of a QID that is not an I/O CQ (the admin "
    "CQ, or one already deleted) is Invalid Queue Identifier; QEMU 7.2 answers "
    "Completion Queue Invalid (01h/00h), a status of Create I/O Submission Queue")

CREATE_SQ, DELETE_SQ, CREATE_CQ, DELETE_CQ = 0x01, 0x00, 0x05, 0x04
QID = 60          # far above the qids the session's Qpairs take


def create_cq(c, qbuf, qid=QID, qsize=16, iv=0, ien=1, pc=1, **kw):
    return c.send_cmd(CREATE_CQ, cdw10=qid | ((qsize - 1) << 16),
                      cdw11=pc | (ien << 1) | (iv << 16), prp1=qbuf.iova, check=False, **kw)


def create_sq(c, qbuf, qid=QID, qsize=16, cqid=QID, pc=1):
    return c.send_cmd(CREATE_SQ, cdw10=qid | ((qsize - 1) << 16),
                      cdw11=pc | (cqid << 16), prp1=qbuf.iova, check=False)


def status(cpl):
    return (cpl.sct, cpl.sc)


@pytest.fixture
def qmem():
    return aionvme.Buffer(64 * 1024, "queue memory")


async def test_create_cq_checks(nvme0, qmem):
    mqes = nvme0.cap & 0xFFFF
    assert status(await create_cq(nvme0, qmem, qid=0)) == (1, 0x01)      # Invalid QID
    assert status(await create_cq(nvme0, qmem, qid=65)) == (1, 0x01)     # beyond NCQA
    assert status(await create_cq(nvme0, qmem, qid=0xFFFF)) == (1, 0x01)
    assert status(await create_cq(nvme0, qmem, qsize=mqes + 2)) == (1, 0x02)  # above MQES
    assert status(await create_cq(nvme0, qmem, qsize=1)) == (1, 0x02)   # 1 entry: too small
    assert status(await create_cq(nvme0, qmem, iv=64)) == (1, 0x08)     # Invalid Interrupt Vector
    assert status(await create_cq(nvme0, qmem, iv=0x7FF)) == (1, 0x08)
    assert status(await create_cq(nvme0, qmem, pc=0)) == (0, 0x02)      # CAP.CQR = 1
    cpl = await nvme0.send_cmd(CREATE_CQ, cdw10=QID | (15 << 16), cdw11=1,
                               prp1=qmem.iova + 0x10, check=False)
    assert status(cpl) == (0, 0x13)                                     # PRP Offset Invalid
    sq = aionvme.Buffer(16 * 64, "sq")
    assert status(await create_sq(nvme0, sq)) == (1, 0x00)              # so no CQ QID


async def test_create_and_delete_checks(nvme0, qmem):
    assert (await create_cq(nvme0, qmem)).ok
    try:
        assert status(await create_cq(nvme0, qmem)) == (1, 0x01)         # already exists
        sq = aionvme.Buffer(16 * 64, "sq")
        assert status(await create_sq(nvme0, sq, cqid=QID + 1)) == (1, 0x00)  # CQ Invalid
        assert status(await create_sq(nvme0, sq, cqid=0)) == (1, 0x00)   # the admin CQ
        assert status(await create_sq(nvme0, sq, qid=0)) == (1, 0x01)
        assert status(await create_sq(nvme0, sq, qid=65)) == (1, 0x01)
        assert status(await create_sq(nvme0, sq, qsize=(nvme0.cap & 0xFFFF) + 2)) == (1, 0x02)
        assert status(await create_sq(nvme0, sq, pc=0)) == (0, 0x02)
        assert (await create_sq(nvme0, sq)).ok
        assert status(await create_sq(nvme0, sq)) == (1, 0x01)
        # 5.6: a CQ with an SQ still on it: Invalid Queue Deletion
        cpl = await nvme0.send_cmd(DELETE_CQ, cdw10=QID, check=False)
        assert status(cpl) == (1, 0x0C)
        assert (await nvme0.send_cmd(DELETE_SQ, cdw10=QID, check=False)).ok
        cpl = await nvme0.send_cmd(DELETE_SQ, cdw10=QID, check=False)
        assert status(cpl) == (1, 0x01)                                  # already gone
    finally:
        cpl = await nvme0.send_cmd(DELETE_CQ, cdw10=QID, check=False)
    assert cpl.ok


@DELETE_CQ_STATUS
async def test_delete_a_deleted_cq(nvme0, qmem):
    assert (await create_cq(nvme0, qmem)).ok
    assert (await nvme0.send_cmd(DELETE_CQ, cdw10=QID, check=False)).ok
    assert status(await nvme0.send_cmd(DELETE_CQ, cdw10=QID, check=False)) == (1, 0x01)


@pytest.mark.parametrize("opcode", [DELETE_SQ, pytest.param(DELETE_CQ, marks=DELETE_CQ_STATUS)])
async def test_the_admin_queues_cannot_be_deleted(nvme0, opcode):
    assert status(await nvme0.send_cmd(opcode, cdw10=0, check=False)) == (1, 0x01)


async def test_a_created_queue_pair_runs_commands(nvme0, nvme0n1, qpair, buf):
    cpl = await nvme0n1.read(qpair, buf, 0)
    assert cpl.sqid == qpair.qid and cpl.ok


async def test_abort_of_an_unknown_command_is_not_aborted(nvme0):
    cpl = await nvme0.abort(0x1234, 0)
    assert cpl.cdw0 & 1 == 1                     # 5.1: bit 0 set, not aborted


@pytest.mark.sim_only("Abort is best effort (5.1): QEMU 7.2 never aborts a command")
async def test_abort_an_outstanding_aer():
    async with aionvme.Controller("sim", aer=False) as c:
        fut = c.aer(check=False)
        await asyncio.sleep(0)
        cid = c.cmdlog(1)[0].cid
        await wait_for_state(lambda: c.sim.state()["aer_pending"] == 1, "the AER is outstanding")
        cpl = await c.abort(cid, 0)
        assert cpl.cdw0 & 1 == 0                 # aborted
        aer = await fut
        assert status(aer) == (0, 0x07)          # Command Abort Requested
        assert c.sim.state()["aer_pending"] == 0


async def test_aer_limit_exceeded(pciaddr):
    async with aionvme.Controller(pciaddr, aer=False) as c:
        aerl = c.id_data(259) + 1                # 0's based
        futs = [c.aer(check=False) for _ in range(aerl)]
        cpl = await c.aer(check=False)
        assert status(cpl) == (1, 0x05)          # Asynchronous Event Request Limit Exceeded
        # a reset ends the outstanding requests (3.7.2); their futures fail
        await c.reset()
        results = await asyncio.gather(*futs, return_exceptions=True)
        assert all(isinstance(r, QueueDeletedError) for r in results), results


@pytest.mark.sim_only("the simulator's temperature knob")
async def test_aer_on_temperature_threshold():
    async with aionvme.Controller("sim", aec=0) as c:
        seen = []
        c.register_aer_cb(lambda cdw0, st: seen.append((cdw0, st >> 1)))
        await c.setfeatures(0x04, 273 + 60)      # over-temperature threshold 60 C
        c.sim.temperature(273 + 70)
        # AEC is 0 (aec=0): the warning is set, but no event is sent (5.27.1.8)
        smart = aionvme.Buffer(512)
        await c.getlogpage(0x02, smart, 512, rae=True)
        assert smart[0] & 0x2
        assert seen == []
        c.sim.temperature(273 + 40)
        await c.setfeatures(0x0B, 0x2)           # AEC: temperature critical warning
        c.sim.temperature(273 + 70)
        await wait_for_state(lambda: seen, "an asynchronous event")
        cdw0, st = seen[0]
        assert st == 0
        assert cdw0 & 7 == 1                     # SMART / Health status
        assert (cdw0 >> 8) & 0xFF == 0x01        # temperature threshold
        assert (cdw0 >> 16) & 0xFF == 0x02       # SMART log page
        await c.getlogpage(0x02, smart, 512)
        assert smart.data(2, 1) == 273 + 70 and smart[0] & 0x2
        # below the threshold again: the warning clears
        c.sim.temperature(273 + 40)
        await c.getlogpage(0x02, smart, 512)
        assert smart[0] & 0x2 == 0


async def test_aer_for_an_invalid_doorbell_write(pciaddr):
    # MMIO doorbells: with shadow doorbells (5.11) the device reads the tail elsewhere
    async with aionvme.Controller(pciaddr, dbbuf=False) as c:
        seen = []
        c.register_aer_cb(lambda cdw0, st: seen.append(cdw0))
        async with aionvme.Qpair(c, 8) as q:
            c[0x1000 + 2 * q.qid * 4] = 100       # SQ tail beyond the queue (depth 8)
            await wait_for_state(lambda: seen, "an asynchronous event")
            # Error status, Invalid Doorbell Write Value, Error Information log
            assert seen[0] & 0xFFFFFF == 0x010100 | 0
        await c.reset()


async def test_aer_for_a_doorbell_of_no_queue(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        seen = []
        c.register_aer_cb(lambda cdw0, st: seen.append(cdw0))
        c[0x1000 + (2 * 50 + 1) * 4] = 1         # CQ 50 head: no such queue
        await wait_for_state(lambda: seen, "an asynchronous event")
        # Error status, Write to Invalid Doorbell Register, Error Information log
        assert seen[0] & 0xFFFFFF == 0x010000


@pytest.mark.sim_only("weighted round robin (QEMU 7.2 has CAP.AMS 00b) and stopping fetches by bus mastering")
@pytest.mark.parametrize("arbitration, last", [("rr", b"U"), ("wrr", b"L")])
async def test_arbitration_orders_full_queues(pciaddr, arbitration, last):
    """4.13: both SQs full when fetching starts.  Round robin takes one command from
    each in turn, so the urgent SQ (the higher qid) writes LBA 0 last; weighted round
    robin serves the urgent priority class first, so the low one writes it last."""
    async with aionvme.Controller(pciaddr, arbitration=arbitration) as c:
        ns = await aionvme.Namespace(c, 1)
        low = await aionvme.Qpair(c, 16, prio=3)          # QPRIO 11b: low
        urgent = await aionvme.Qpair(c, 16, prio=0)       # QPRIO 00b: urgent
        assert low.qid < urgent.qid
        cmd = c.pcie.register(0x04, 2)
        c.pcie.write(0x04, 2, cmd & ~0x4)                 # bus master off: nothing is fetched
        bl, bu = aionvme.Buffer(512), aionvme.Buffer(512)
        bl[0:1], bu[0:1] = b"L", b"U"
        writes = c.sim.state()["counters"]["host_writes"]
        futs = [ns.write(low, bl, 0) for _ in range(8)] + [ns.write(urgent, bu, 0) for _ in range(8)]
        # two requests to the device: the second is served after its loop has looked at
        # the queues once more since the doorbells rang, and it fetched nothing
        c.sim.state()
        assert c.sim.state()["counters"]["host_writes"] == writes
        assert not any(f.done() for f in futs)
        c.pcie.write(0x04, 2, cmd)                        # on: arbitration picks the order
        assert all(cpl.ok for cpl in await asyncio.gather(*futs))
        r = aionvme.Buffer(512)
        await ns.read(low, r, 0)
        assert r[0:1] == last


async def test_wrr_needs_cap_ams(pciaddr):
    cap_ams = None
    async with aionvme.Controller(pciaddr) as c:
        cap_ams = (c.cap >> 17) & 1
    if cap_ams:
        async with aionvme.Controller(pciaddr, arbitration="wrr") as c:
            assert (c[0x14] >> 11) & 7 == 1               # CC.AMS
    else:
        with pytest.raises(aionvme.InterfaceError, match="weighted round robin"):
            await aionvme.Controller(pciaddr, arbitration="wrr")
    with pytest.raises(aionvme.InterfaceError, match="arbitration"):
        aionvme.Controller(pciaddr, arbitration="fifo")
