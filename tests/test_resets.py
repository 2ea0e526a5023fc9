"""Controller reset, FLR, NVM subsystem reset, shutdown and power cycle
while queues exist: outstanding commands fail clearly, nothing hangs, and
the controller and its Qpair objects are usable afterwards."""
import asyncio

import pytest

import aionvme
from aionvme.exceptions import QueueDeletedError


@pytest.fixture
async def ctrl():
    async with aionvme.Controller("sim") as c:
        yield c


async def _io_works(ns, q):
    w, r = aionvme.Buffer(4096), aionvme.Buffer(4096)
    w[0:4] = b"ok!!"
    await ns.write(q, w, 8, 8)
    await ns.read(q, r, 8, 8)
    assert r[0:4] == b"ok!!"


async def _reset_with_outstanding(ctrl, do_reset, reason):
    ns = await aionvme.Namespace(ctrl, 1)
    q = await aionvme.Qpair(ctrl, 16)
    with ctrl.sim.delay(delay_ms=500, qid=q.qid, count=-1):
        futs = [ns.read(q, aionvme.Buffer(512), i) for i in range(4)]
        await asyncio.sleep(0.02)
        await do_reset()
    results = await asyncio.gather(*futs, return_exceptions=True)
    assert all(isinstance(r, QueueDeletedError) and reason in str(r) for r in results), results
    assert q.outstanding == 0
    await _io_works(ns, q)
    await q.delete()


async def test_controller_reset(ctrl):
    await _reset_with_outstanding(ctrl, ctrl.reset, "controller reset")
    assert ctrl[0x1C] & 1


async def test_function_level_reset(ctrl):
    await _reset_with_outstanding(ctrl, ctrl.pcie.reset, "function level reset")


async def test_subsystem_reset(ctrl):
    sub = aionvme.Subsystem(ctrl)
    await _reset_with_outstanding(ctrl, sub.reset, "NVM subsystem reset")
    assert ctrl[0x1C] & 0x10   # CSTS.NSSRO: an NVM subsystem reset occurred


async def test_power_cycle(ctrl):
    sub = aionvme.Subsystem(ctrl)
    await _reset_with_outstanding(ctrl, lambda: sub.power_cycle(0.05), "power loss")
    state = ctrl.sim.state()
    assert state["power_cycles"] == 2 and state["unsafe_shutdowns"] == 1


async def test_clean_shutdown_then_power_cycle(ctrl):
    sub = aionvme.Subsystem(ctrl)
    await sub.shutdown_notify()
    assert (ctrl[0x1C] >> 2) & 3 == 2          # CSTS.SHST: shutdown complete
    await sub.power_cycle(0)
    assert ctrl.sim.state()["unsafe_shutdowns"] == 0
    ns = await aionvme.Namespace(ctrl, 1)
    async with aionvme.Qpair(ctrl, 8) as q:
        await _io_works(ns, q)


async def test_abrupt_shutdown(ctrl):
    await aionvme.Subsystem(ctrl).shutdown_notify(abrupt=True)
    assert (ctrl[0x1C] >> 2) & 3 == 2
    await ctrl.reset()
    assert ctrl[0x1C] & 1


async def test_power_loss_then_power_on(ctrl):
    ns = await aionvme.Namespace(ctrl, 1)
    q = await aionvme.Qpair(ctrl, 8)
    ctrl.sim.power_loss()
    assert ctrl[0x1C] == 0xFFFFFFFF    # nothing answers while power is off
    await aionvme.Subsystem(ctrl).power_on()
    await _io_works(ns, q)


async def test_controller_fatal_status_then_reset(ctrl):
    ns = await aionvme.Namespace(ctrl, 1)
    q = await aionvme.Qpair(ctrl, 8)
    ctrl.sim.fatal()
    assert ctrl[0x1C] & 2              # CSTS.CFS
    with pytest.raises(aionvme.CommandTimeout):
        await ns.read(q, aionvme.Buffer(512), 0, timeout=0.2)
    await ctrl.reset()
    assert not ctrl[0x1C] & 2
    await _io_works(ns, q)


async def test_device_process_death_is_a_clear_error():
    ctrl = await aionvme.Controller("sim")
    try:
        ns = await aionvme.Namespace(ctrl, 1)
        q = await aionvme.Qpair(ctrl, 8)
        ctrl.sim.drop(qid=q.qid)
        fut = ns.read(q, aionvme.Buffer(512), 0, timeout=30)
        ctrl._transport.backend.proc.kill()
        with pytest.raises(aionvme.exceptions.DeviceError, match="device process exited"):
            await fut
        with pytest.raises(aionvme.exceptions.DeviceError, match="device"):
            ctrl[0x1C]
    finally:
        await ctrl.close()
