"""A device that stops answering (issue 12): a controller that serves no queue
any more is recognised as stuck and recovered by a controller reset; a device
process that does not answer a request is dead to the host, and a late reply
never answers a later request.  Admin transfers are bounded by MDTS."""
import asyncio
import os
import signal

import pytest

import aionvme
from aionvme.exceptions import CommandTimeout, DeviceError

MDTS_BYTES = 4096 << 7        # the simulator's default MDTS (7)


async def _io_works(ns, q):
    buf = aionvme.Buffer(4096)
    buf.fill(0x77)
    await ns.write(q, buf, 0, 8, timeout=2)
    back = aionvme.Buffer(4096)
    await ns.read(q, back, 0, 8, timeout=2)
    assert back[:] == buf[:]


async def test_hung_controller_is_reported_stuck_and_reset_recovers_it():
    async with aionvme.Controller("sim") as c:
        ns = await aionvme.Namespace(c, 1)
        q = await aionvme.Qpair(c, 8)
        # A dropped command with nothing else going on: the probe completes, so the
        # device is alive and only that command was lost.
        with c.sim.drop(opcode=0x02, qid=q.qid):
            with pytest.raises(CommandTimeout):
                await ns.read(q, aionvme.Buffer(4096), 0, timeout=0.2)
        await asyncio.sleep(1.0)                                  # the probe has answered
        await _io_works(ns, q)
        c.sim.hang(opcode=0x02, qid=q.qid)
        with pytest.raises(CommandTimeout):
            await ns.read(q, aionvme.Buffer(4096), 0, timeout=0.3)
        # A write sent after the hang waits with it; the probe finds the device stuck.
        with pytest.raises(DeviceError, match="stuck"):
            await ns.write(q, aionvme.Buffer(4096), 0, timeout=30)
        with pytest.raises(DeviceError, match="stuck"):           # refused at once now
            c.getfeatures(0x07)
        assert c.sim.state()["powered"]                           # the process lives
        await c.reset()
        await _io_works(ns, q)
        assert (await c.getfeatures(0x07)).ok


async def test_a_request_that_times_out_makes_the_device_dead(monkeypatch):
    """The device process stops answering (SIGSTOP): the request times out; when
    it answers again, its late reply must not be taken as the answer to the
    next request (it would read as CSTS where VS was asked)."""
    monkeypatch.setenv("AIONVME_SIM_REPLY_TIMEOUT_MS", "300")
    c = await aionvme.Controller("sim")
    try:
        pid = c._transport.backend.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(DeviceError, match="did not answer"):
                c[0x1C]
        finally:
            os.kill(pid, signal.SIGCONT)
        await asyncio.sleep(0.1)                                  # the late reply is sent
        with pytest.raises(DeviceError, match="gone"):
            c[0x08]
        # Dead to the host: the socket is closed (the process then sees EOF and exits).
        assert c._transport.backend.death() is not None
    finally:
        await c.close()


async def test_get_log_page_beyond_mdts_is_invalid_field():
    async with aionvme.Controller("sim") as c:
        buf = aionvme.Buffer(MDTS_BYTES + 4096)
        cpl = await c.getlogpage(0x02, buf, MDTS_BYTES + 4, check=False, timeout=2)
        assert (cpl.sct, cpl.sc) == (0, 0x02)
        # The largest NUMD: 16 GiB asked, refused without building it.
        cpl = await c.send_cmd(0x02, buf, nsid=0xFFFFFFFF, cdw10=0xFFFF0002, cdw11=0xFFFF,
                               check=False, timeout=2)
        assert (cpl.sct, cpl.sc) == (0, 0x02)
        # NUMD larger than the log within MDTS: the log, then (undefined) zeroes.
        buf.fill(0xEE)
        assert (await c.getlogpage(0x02, buf, 8192, timeout=2)).ok
        assert buf[3] == 100                                     # available spare
        assert buf[512:8192] == bytes(8192 - 512)


async def test_firmware_download_beyond_mdts_is_invalid_field():
    async with aionvme.Controller("sim") as c:
        buf = aionvme.Buffer(MDTS_BYTES + 4096)
        cpl = await c.fw_download(buf, 0, MDTS_BYTES + 4096, check=False, timeout=2)
        assert (cpl.sct, cpl.sc) == (0, 0x02)
        cpl = await c.fw_download(buf, 0, MDTS_BYTES, check=False, timeout=2)
        assert cpl.ok
