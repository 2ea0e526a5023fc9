"""Bad arguments raise typed errors that name the argument and its limit, and
a transfer never lets the device write outside the test's Buffer."""
import asyncio

import pytest

import aionvme
from aionvme.exceptions import BufferFreedError, QueueFullError


async def test_buffer_smaller_than_the_transfer(nvme0n1, qpair):
    small = aionvme.Buffer(512)
    with pytest.raises(aionvme.InterfaceError, match="buf of 512 bytes is smaller than the transfer of 4096"):
        nvme0n1.read(qpair, small, 0, 8)
    # nothing was submitted: the queue is still usable
    assert (await nvme0n1.read(qpair, small, 0, 1)).ok


@pytest.mark.parametrize("count", [0, 0x10001])
async def test_lba_count_limit(nvme0n1, qpair, buf, count):
    with pytest.raises(aionvme.InterfaceError, match="lba_count"):
        nvme0n1.read(qpair, buf, 0, count)


async def test_qpair_depth_limits(nvme0):
    mqes = (nvme0.cap & 0xFFFF) + 1
    for depth in (0, 1, mqes + 1):
        with pytest.raises(aionvme.InterfaceError, match=f"depth {depth} is outside 2..{mqes}"):
            aionvme.Qpair(nvme0, depth)


async def test_freed_buffer_is_refused(nvme0n1, qpair):
    b = aionvme.Buffer(4096)
    b.free()
    with pytest.raises(BufferFreedError):
        nvme0n1.write(qpair, b, 0, 1)


async def test_buffer_in_flight_cannot_be_freed(nvme0, nvme0n1, qpair):
    b = aionvme.Buffer(4096)
    with nvme0.sim.delay(delay_ms=50, opcode=0x02, qid=qpair.qid):
        fut = nvme0n1.read(qpair, b, 0, 8)
        with pytest.raises(aionvme.InterfaceError, match="outstanding"):
            b.free()
        await fut
    b.free()


async def test_queue_full_in_strict_mode(nvme0, nvme0n1):
    async with aionvme.Qpair(nvme0, 4, strict=True) as q:
        with nvme0.sim.delay(delay_ms=30, qid=q.qid, count=-1):
            futs = [nvme0n1.read(q, aionvme.Buffer(512), i) for i in range(3)]
            with pytest.raises(QueueFullError, match="3 commands outstanding"):
                nvme0n1.read(q, aionvme.Buffer(512), 3)
            for f in futs:
                await f


async def test_more_commands_than_the_queue_holds_wait_their_turn(nvme0, nvme0n1):
    """64 writes gathered on a 64-entry queue (63 slots): the 64th waits in the
    software queue and is submitted, in order, when a slot frees."""
    async with aionvme.Qpair(nvme0, 64) as q:
        bufs = [aionvme.Buffer(512) for _ in range(70)]
        for i, b in enumerate(bufs):
            b[0:8] = i.to_bytes(8, "little")
        with nvme0.sim.delay(delay_ms=20, qid=q.qid, count=-1):
            futs = [nvme0n1.write(q, b, 100 + i) for i, b in enumerate(bufs)]
            assert q.outstanding == 63 and q._core.queued == 7
            cpls = await asyncio.gather(*futs)
        assert all(c.ok for c in cpls) and q._core.queued == 0
        log = q.cmdlog(70)
        lbas = [e.cdw(10) for e in log if e.opcode == 0x01]
        assert lbas[-70:] == [100 + i for i in range(70)]      # submitted in order
        back = aionvme.Buffer(512)
        await nvme0n1.read(q, back, 169)
        assert back[0:8] == (69).to_bytes(8, "little")


async def test_waiting_commands_fail_with_the_queue(nvme0, nvme0n1):
    q = await aionvme.Qpair(nvme0, 2)
    with nvme0.sim.drop(qid=q.qid, count=-1):
        first = nvme0n1.read(q, aionvme.Buffer(512), 0, timeout=30)
        waiting = nvme0n1.read(q, aionvme.Buffer(512), 1)
        assert q._core.queued == 1
        await q.delete()
    with pytest.raises(aionvme.exceptions.QueueDeletedError):
        await waiting
    with pytest.raises(aionvme.exceptions.QueueDeletedError):
        await first


async def test_device_writes_stay_inside_the_buffer(nvme0, nvme0n1, qpair):
    """A read asking for more data than the PRPs describe lands in the
    reserved sink, never in a neighbouring Buffer."""
    a = aionvme.Buffer(4096, "a")
    neighbour = aionvme.Buffer(4 * 4096, "neighbour")
    neighbour.fill(0xEE)
    pattern = aionvme.Buffer(8 * 4096)
    pattern.fill(0x11)
    await nvme0n1.write(qpair, pattern, 0, 64)
    # 64 LBAs (32 KiB) requested, PRPs built for one 4 KiB buffer: PRP2 is 0,
    # which no backend maps, so the device reports a Data Transfer Error.
    cpl = await nvme0n1.send_cmd(0x02, qpair, a, nsid=1, cdw10=0, cdw12=63, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x04)
    assert neighbour[:] == b"\xee" * len(neighbour)
    # 5 pages requested from a 3-page buffer: the PRP list has no stale entries
    three = aionvme.Buffer(3 * 4096, "three")
    await nvme0n1.read(qpair, aionvme.Buffer(8 * 4096), 0, 64)  # this CID's list filled to 7 entries
    cpl = await nvme0n1.send_cmd(0x02, qpair, three, nsid=1, cdw10=0, cdw12=39, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x04)
    assert neighbour[:] == b"\xee" * len(neighbour)


async def test_unknown_address():
    with pytest.raises(aionvme.InterfaceError, match="no backend"):
        await aionvme.Controller("nosuch:0")


async def test_bad_opcode_value(nvme0):
    with pytest.raises(aionvme.InterfaceError, match="opcode"):
        nvme0.send_cmd(0x100)


@pytest.mark.parametrize("call, name", [
    (lambda ns, q, b, c: ns.read(q, b, 0, 1.5), "lba_count"),
    (lambda ns, q, b, c: ns.read(q, "buffer", 0), "buf"),
    (lambda ns, q, b, c: ns.read(None, b, 0), "qpair"),
    (lambda ns, q, b, c: c.send_cmd(1.5), "opcode"),
    (lambda ns, q, b, c: c.send_cmd(0x06, cdw10=-1), "cdw10"),
    (lambda ns, q, b, c: c.send_cmd(0x06, cdw11=1 << 32), "cdw11"),
    (lambda ns, q, b, c: ns.send_cmd(0x02, q, nsid=-5), "nsid"),
    (lambda ns, q, b, c: ns.dsm(q, None, 1), "buf"),
    (lambda ns, q, b, c: ns.flush("q"), "qpair"),
])
async def test_wrong_types_and_ranges_name_the_argument(nvme0, nvme0n1, qpair, buf, call, name):
    """Never a TypeError from deep inside, nor a float silently truncated into an opcode."""
    with pytest.raises(aionvme.InterfaceError, match=name):
        call(nvme0n1, qpair, buf, nvme0)
    assert (await nvme0n1.read(qpair, buf, 0)).ok


async def test_seed_exception_names():
    """Scripts written for pynvme catch NvmeEnumerateError and QpairCreationError."""
    from aionvme.exceptions import NvmeEnumerateError
    with pytest.raises(NvmeEnumerateError, match="names no backend"):
        await aionvme.Controller("nosuch:device")


@pytest.mark.sim_only("fault injection")
async def test_a_refused_queue_creation_is_a_qpair_creation_error(nvme0):
    from aionvme.exceptions import QpairCreationError, status
    with nvme0.sim.inject_status(opcode=0x05, qid=0, sct=1, sc=0x02):   # Invalid Queue Size
        with pytest.raises(status.InvalidQueueSize) as e:
            await aionvme.Qpair(nvme0, 16)
    assert isinstance(e.value, QpairCreationError) and e.value.sc == 0x02
    async with aionvme.Qpair(nvme0, 16) as q:            # the qid was given back
        assert q.qid >= 1
