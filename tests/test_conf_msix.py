"""Interrupts a test can check (pynvme 1.0's Qpair): msix_clear(), msix_isset(),
msix_mask(), msix_unmask() and the Pending Bit, on every backend with MSI-X."""
import pytest

import aionvme
from simconf import wait_for_state


async def test_a_completion_fires_the_queues_vector(nvme0, nvme0n1):
    async with aionvme.Qpair(nvme0, 8, poll_us=0) as q:       # interrupts only
        q.msix_clear()
        assert not q.msix_isset()
        assert (await nvme0n1.read(q, aionvme.Buffer(512), 0)).ok
        assert q.msix_isset()
        q.msix_clear()
        assert not q.msix_isset()


async def test_a_masked_vector_stays_quiet_with_its_pending_bit_and_fires_on_unmask(nvme0, nvme0n1):
    """PCI 3.0 6.8.3.4: a masked vector's message is held and its Pending Bit set;
    unmasking sends it."""
    async with aionvme.Qpair(nvme0, 8, poll_us=0) as q:
        q.msix_mask()
        try:
            q.msix_clear()
            fut = nvme0n1.read(q, aionvme.Buffer(512), 0)
            await wait_for_state(q.msix_pending, "the Pending Bit of the masked vector")
            assert not q.msix_isset() and not fut.done()     # quiet: nothing reaped it
        finally:
            q.msix_unmask()
        assert (await fut).ok
        assert q.msix_isset()
        await wait_for_state(lambda: not q.msix_pending(), "the Pending Bit cleared after delivery")


@pytest.mark.sim_only("counts the commands the simulator executed")
async def test_coalescing_holds_the_vector_back(nvme0, nvme0n1):
    """5.27.1.6: THR 3 (four entries, 0's based), TIME 255 (25.5 ms): three
    completions do not fire the vector at once; the aggregation time does."""
    async with aionvme.Qpair(nvme0, 8, poll_us=0) as q:
        await nvme0.setfeatures(0x08, cdw11=(255 << 8) | 3)
        try:
            reads = lambda: nvme0.sim.state()["counters"]["host_reads"]   # noqa: E731
            before = reads()
            q.msix_clear()
            futs = [nvme0n1.read(q, aionvme.Buffer(512), i) for i in range(3)]
            for _ in range(10_000):                  # the device has run all three
                if reads() - before == 3:
                    break
            assert reads() - before == 3
            assert not q.msix_isset()                # held: below THR, within TIME
            for f in futs:
                assert (await f).ok                  # TIME passed: the vector fired
            assert q.msix_isset()
        finally:
            await nvme0.setfeatures(0x08, cdw11=0)


async def test_msix_of_a_polled_queue_is_refused(nvme0):
    async with aionvme.Qpair(nvme0, 8, ien=False, reap=False) as q:
        with pytest.raises(aionvme.InterfaceError, match="interrupts disabled"):
            q.msix_isset()
