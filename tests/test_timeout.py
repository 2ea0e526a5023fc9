"""Deadlines, cancellation and bad completions: a lost command raises
CommandTimeout, is marked in the cmdlog, and never corrupts the queue."""
import asyncio

import pytest

import aionvme
from aionvme.exceptions import status as S
from aionvme.cmdlog import TIMEOUT
from simconf import wait_for_state


async def test_dropped_command_times_out(nvme0, nvme0n1, qpair, buf):
    with nvme0.sim.drop(opcode=0x02, qid=qpair.qid) as fault:
        with pytest.raises(aionvme.CommandTimeout, match="Read on queue"):
            await nvme0n1.read(qpair, buf, 0, timeout=0.2)
        assert fault.hits == 1
    last = qpair.cmdlog(1)[0]
    assert last.flags & TIMEOUT and not last.completed
    assert "TIMED OUT" in str(last)
    # the queue goes on working
    assert (await nvme0n1.read(qpair, buf, 0)).ok


async def test_timeout_is_settable_globally(nvme0, nvme0n1, qpair, buf):
    old = aionvme.config().timeout
    aionvme.config(timeout=0.2)
    try:
        with nvme0.sim.drop(opcode=0x01, qid=qpair.qid):
            with pytest.raises(aionvme.CommandTimeout):
                await nvme0n1.write(qpair, buf, 0)
    finally:
        aionvme.config(timeout=old)
    with pytest.raises(aionvme.InterfaceError, match="timeout"):
        aionvme.config(timeout=0)


async def test_late_completion_after_timeout_is_dropped(nvme0, nvme0n1, qpair, buf):
    with nvme0.sim.delay(delay_ms=300, opcode=0x02, qid=qpair.qid):
        with pytest.raises(aionvme.CommandTimeout):
            await nvme0n1.read(qpair, buf, 0, timeout=0.1)
    # the late CQE arrives and frees the CID
    await wait_for_state(lambda: qpair.outstanding == 0, "the late completion was reaped")
    assert nvme0.bad_completions == []
    entry = qpair.cmdlog(1)[0]
    assert entry.completed and entry.flags & TIMEOUT
    assert (await nvme0n1.read(qpair, buf, 0)).ok


async def test_cancelled_await_keeps_the_queue_intact(nvme0, nvme0n1, qpair, buf):
    with nvme0.sim.delay(delay_ms=100, opcode=0x02, qid=qpair.qid):
        task = asyncio.ensure_future(nvme0n1.read(qpair, buf, 0))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert qpair.outstanding == 1   # the device still owns the command
    await wait_for_state(lambda: qpair.outstanding == 0, "the delayed completion was reaped")
    cpls = await asyncio.gather(*(nvme0n1.read(qpair, aionvme.Buffer(512), i) for i in range(32)))
    assert all(c.ok for c in cpls)


async def test_admin_command_timeout(buf):
    # A controller of its own: the dropped command keeps its CID on the admin queue
    # until a reset, and the session's nvme0 must stay as later tests expect it.
    async with aionvme.Controller("sim") as c:
        with c.sim.drop(opcode=0x06, qid=0):
            with pytest.raises(aionvme.CommandTimeout, match="Identify"):
                await c.identify(buf, timeout=0.2)
        assert (await c.identify(buf)).ok


async def test_injected_status_is_reported(nvme0, nvme0n1, qpair, buf):
    with nvme0.sim.inject_status(opcode=0x02, qid=qpair.qid, sct=2, sc=0x81):
        with pytest.raises(S.UnrecoveredReadError, match="02/81 Unrecovered Read Error"):
            await nvme0n1.read(qpair, buf, 0)


async def test_duplicate_completion_is_recorded_not_fatal(nvme0, nvme0n1, qpair, buf):
    """A second CQE for a CID no longer outstanding (4.2): reported, and ignored."""
    before = len(nvme0.bad_completions)
    with nvme0.sim.duplicate(opcode=0x02, qid=qpair.qid) as fault:
        assert (await nvme0n1.read(qpair, buf, 0)).ok
        assert fault.hits == 1
    await wait_for_state(lambda: len(nvme0.bad_completions) > before, "the duplicate CQE was seen")
    assert (await nvme0n1.read(qpair, buf, 0)).ok            # the queue goes on
    bad = nvme0.bad_completions[before:]
    assert len(bad) == 1 and bad[0].sqid == qpair.qid and bad[0].ok


async def test_completion_with_an_unknown_cid(nvme0, nvme0n1, qpair, buf):
    """A CQE naming a CID the host never used: recorded; the real command times out."""
    before = len(nvme0.bad_completions)
    with nvme0.sim.bad_cid(opcode=0x02, qid=qpair.qid):
        with pytest.raises(aionvme.CommandTimeout):
            await nvme0n1.read(qpair, buf, 0, timeout=0.2)
    bad = nvme0.bad_completions[before:]
    sent = [e for e in qpair.cmdlog(4) if e.opcode == 0x02][-1]
    assert len(bad) == 1 and bad[0].cid == sent.cid ^ 0x8000     # the fault flips bit 15
    assert (await nvme0n1.read(qpair, buf, 0)).ok
