"""The public API against the simulator: the seed's basic flows, awaited."""
import asyncio

import pytest

import aionvme
from aionvme.exceptions import status as S


async def test_registers(nvme0):
    assert nvme0[0x1c] & 1 == 1            # CSTS.RDY
    assert nvme0[0x08] >= 0x00010200       # VS: NVMe 1.2 or later
    assert nvme0.register(0, 8) & 0xFFFF == (nvme0.cap & 0xFFFF)


async def test_identify_controller(nvme0, buf):
    cpl = await nvme0.identify(buf)
    assert cpl.ok and cpl.sct == 0 and cpl.sc == 0
    assert buf.data(23, 4, str) == nvme0.id_data(23, 4, str) != ""
    assert buf[512] == 0x66 and buf[513] == 0x44  # SQES, CQES


async def test_write_read_back(nvme0n1, qpair):
    w, r = aionvme.Buffer(4096), aionvme.Buffer(4096)
    w[10:21] = b"hello world"
    await nvme0n1.write(qpair, w, 100, 8)
    await nvme0n1.read(qpair, r, 100, 8)
    assert r[10:21] == b"hello world"


async def test_callback_is_called(nvme0n1, qpair, buf):
    seen = []
    cpl = await nvme0n1.read(qpair, buf, 0, 1, cb=lambda cdw0, status: seen.append((cdw0, status)))
    assert seen == [(cpl.cdw0, cpl.raw_status)]


async def test_invalid_opcode_raises_with_seed_text(nvme0n1, qpair):
    with pytest.raises(S.InvalidCommandOpcode, match="00/01") as e:
        await nvme0n1.send_cmd(0xFF, qpair, nsid=1)
    assert e.value.sct == 0 and e.value.sc == 1 and e.value.dnr == 1


async def test_check_false_returns_the_completion(nvme0n1, qpair):
    cpl = await nvme0n1.send_cmd(0xFF, qpair, nsid=1, check=False)
    assert (cpl.sct, cpl.sc) == (0, 1) and not cpl.ok


async def test_gather_many(nvme0n1, qpair):
    bufs = [aionvme.Buffer(512) for _ in range(63)]
    cpls = await asyncio.gather(*(nvme0n1.read(qpair, b, i) for i, b in enumerate(bufs)))
    assert all(c.ok for c in cpls)
    assert len({c.cid for c in cpls}) == 63


async def test_each_status_has_its_own_error_class(nvme0n1, qpair, buf):
    from aionvme.exceptions import status
    with pytest.raises(status.LBAOutOfRange, match="00/80"):
        await nvme0n1.read(qpair, buf, nvme0n1.nsze)
    with pytest.raises(status.InvalidCommandOpcode):
        await nvme0n1.send_cmd(0xFF, qpair, nsid=1)
    assert issubclass(status.UnrecoveredReadError, aionvme.CommandError)
    assert (status.UnrecoveredReadError.SCT, status.UnrecoveredReadError.SC) == (2, 0x81)


async def test_hybrid_polling(nvme0, nvme0n1, buf):
    """An idle queue's first command is polled for (after the callbacks already due)
    for up to poll_us; poll_us=0 leaves every completion to the interrupt."""
    for poll_us in (1000, 20, 0):
        async with aionvme.Qpair(nvme0, 8, poll_us=poll_us) as q:
            fut = nvme0n1.read(q, buf, 0)
            assert not fut.done()           # nothing is reaped inside submit()
            assert (await fut).ok
            cpls = await asyncio.gather(*(nvme0n1.read(q, aionvme.Buffer(512), i) for i in range(7)))
            assert all(c.ok for c in cpls) and q.outstanding == 0
    with pytest.raises(aionvme.InterfaceError, match="poll_us"):
        aionvme.Qpair(nvme0, 8, poll_us=-1)


async def test_waitdone_waits_for_the_oldest_commands(nvme0, nvme0n1, qpair):
    """Seed compatibility: commands are sent when called, waitdone() collects them."""
    seen = []
    for i in range(4):
        nvme0n1.read(qpair, aionvme.Buffer(512), i, cb=lambda cdw0, st, i=i: seen.append(i))
    cpls = await qpair.waitdone(4)
    assert len(cpls) == 4 and all(c.ok for c in cpls) and sorted(seen) == [0, 1, 2, 3]
    nvme0.getfeatures(0x07)
    (cpl,) = await nvme0.waitdone()                   # Number of Queues (5.27.1.5)
    assert cpl.ok and min(cpl.cdw0 & 0xFFFF, cpl.cdw0 >> 16) + 1 == nvme0.max_io_queues


@pytest.mark.sim_only("firmware download and commit")
async def test_downfw_from_a_file(tmp_path):
    # A controller of its own: CA 001b leaves an activation pending at the next reset,
    # which would change the firmware revision later tests of the session see.
    async with aionvme.Controller("sim") as nvme0:
        image = tmp_path / "fw.bin"
        image.write_bytes(b"DOWNFW01" + bytes(10000))  # revision in its first 8 bytes
        cpl = await nvme0.downfw(str(image), slot=2, action=1)
        assert cpl.ok
        log = aionvme.Buffer(512)
        await nvme0.getlogpage(0x03, log, 512)
        assert log.data(23, 16, str) == "DOWNFW01"     # FRS2
        assert (log[0] >> 4) & 7 == 2                  # AFI: slot 2 active at the next reset
        with pytest.raises(aionvme.InterfaceError, match="empty"):
            empty = tmp_path / "empty.bin"
            empty.write_bytes(b"")
            await nvme0.downfw(str(empty))


async def test_send_cmd_defaults_to_nsid_0_as_the_seed(nvme0n1, qpair, buf):
    """Namespace.send_cmd's nsid is the seed's 0, not the namespace's: a Read
    without an NSID is refused (NVM Command Set 3.2.6 needs a valid namespace)."""
    from aionvme.exceptions import status
    with pytest.raises(status.InvalidNamespaceOrFormat):
        await nvme0n1.send_cmd(0x02, qpair, buf, cdw12=0)
    cpl = await nvme0n1.send_cmd(0x02, qpair, buf, nsid=nvme0n1.nsid, cdw12=0)
    assert cpl.ok


@pytest.mark.parametrize("flags, fua", [(1 << 14, 1), (1 << 30, 1), (0, 0), (1 << 15, 0)])
async def test_io_flags_in_both_forms(nvme0n1, qpair, buf, flags, fua):
    """16-bit io_flags (the seed's) and SPDK's cdw12 positions land in cdw12 31:16."""
    await nvme0n1.write(qpair, buf, 0, 1, io_flags=flags)
    sqe = qpair.cmdlog(1)[-1]
    assert (sqe.cdw(12) >> 30) & 1 == fua
    assert sqe.cdw(12) >> 16 == (flags >> 16 if flags > 0xFFFF else flags)


async def test_io_flags_mixing_both_forms_is_refused(nvme0n1, qpair, buf):
    with pytest.raises(aionvme.InterfaceError, match="io_flags 0x40004000"):
        nvme0n1.write(qpair, buf, 0, 1, io_flags=(1 << 30) | (1 << 14))


async def test_asynchronous_events_are_enabled_at_initialisation(nvme0):
    """Every critical warning (and the notices OAES offers) is enabled, as SPDK does."""
    cpl = await nvme0.getfeatures(0x0B)
    oaes = nvme0.id_data(95, 92)
    assert cpl.cdw0 == nvme0.aec == 0x1F | (oaes & 0x300)


@pytest.mark.sim_only("the simulator's temperature knob")
async def test_seed_style_waitdone_loop_takes_an_aer():
    """pynvme's `while not done: nvme0.waitdone()` loop: waitdone yields, and the
    AER's completion counts, so the loop ends when the event arrives."""
    async with aionvme.Controller("sim") as c:
        done = []
        c.register_aer_cb(lambda cdw0, status: done.append(cdw0))
        await c.setfeatures(0x04, 273 + 60)         # over-temperature threshold
        c.sim.temperature(273 + 70)
        rounds = 0
        while not done:
            await c.waitdone()
            rounds += 1
        assert rounds == 1 and done[0] & 7 == 1     # one SMART / Health event
        with pytest.raises(TimeoutError, match="0 of 1 commands completed"):
            await c.waitdone(timeout=0.2)           # nothing else completes
        c.getfeatures(0x07)                          # sent, not awaited
        (cpl,) = await c.waitdone()
        assert cpl.ok and cpl.cdw0 & 0xFFFF
