"""Sanitize (NVMe 2.0, 5.24, 8.21) and Device Self-test (5.8) on the
simulator, with their log pages (5.16.1.25, 5.16.1.7).  Short durations come
from a TOML configuration so the file stays fast."""
import pytest

import aionvme
from simconf import sim_address, wait_for_state


@pytest.fixture
def quick(tmp_path):
    return sim_address(tmp_path, sanitize_ms=300, dst_short_ms=300, dst_extended_ms=600)


async def sanitize_log(c):
    buf = aionvme.Buffer(512)
    await c.getlogpage(0x81, buf, 512)
    return buf.data(1, 0), buf.data(3, 2), buf.data(7, 4)   # SPROG, SSTAT, SCDW10


async def dst_log(c):
    buf = aionvme.Buffer(564)
    await c.getlogpage(0x06, buf, 564)
    return buf[0], buf[1], [buf[4 + 28 * i:4 + 28 * (i + 1)] for i in range(20)]


async def test_sanitize_progress_blocks_io_and_ends_with_an_event(quick):
    async with aionvme.Controller(quick) as c:
        seen = []
        c.register_aer_cb(lambda cdw0, st: seen.append(cdw0))
        ns = await aionvme.Namespace(c, 1)
        q = await aionvme.Qpair(c, 8)
        data = aionvme.Buffer(512)
        data.fill(0x77)
        await ns.write(q, data, 3)
        sprog, sstat, _ = await sanitize_log(c)
        assert sstat & 0x7 == 0 and sprog == 0xFFFF           # never sanitized
        assert c.id_data(331, 328) & 0x2                      # SANICAP: block erase
        await c.sanitize(2)                                   # SANACT 010b: block erase
        sprog, sstat, scdw10 = await sanitize_log(c)
        assert sstat & 0x7 == 2 and sprog < 0xFFFF and scdw10 == 2   # in progress
        # 8.21: I/O and most admin commands fail with Sanitize In Progress
        cpl = await ns.read(q, data, 3, check=False)
        assert (cpl.sct, cpl.sc) == (0, 0x1D)
        for cpl in (await c.format(0, check=False), await c.sanitize(2, check=False),
                    await c.dst(1, check=False), await c.fw_commit(2, 1, check=False)):
            assert (cpl.sct, cpl.sc) == (0, 0x1D)
        assert (await c.identify(aionvme.Buffer(4096))).ok    # allowed
        await wait_for_state(lambda: seen, "the sanitize completion event", tries=1000)
        # I/O command set specific event, sanitize operation completed, log 81h
        assert seen[0] & 0xFFFFFF == 0x810106
        sprog, sstat, _ = await sanitize_log(c)
        assert sstat & 0x7 == 1 and sprog == 0xFFFF           # completed
        await ns.read(q, data, 3)
        assert data[0:512] == bytes(512)                      # the data is gone
        await q.delete()


async def test_sanitize_invalid_action(nvme0):
    for sanact in (0, 5, 7):
        cpl = await nvme0.sanitize(sanact, check=False)
        assert (cpl.sct, cpl.sc) == (0, 0x02)


async def test_short_self_test_progress_and_result(quick):
    async with aionvme.Controller(quick) as c:
        assert c.id_data(257, 256) & 0x10                     # OACS: self-test
        await c.dst(1, nsid=0xFFFFFFFF)
        current, done, _ = await dst_log(c)
        assert current == 1 and done < 100                    # short test, % complete
        cpl = await c.dst(2, check=False)
        assert (cpl.sct, cpl.sc) == (1, 0x1D)                 # Self-test In Progress
        async def finished():
            return (await dst_log(c))[0] == 0
        await wait_for_state(finished, "the self-test finished", tries=1000)
        _, _, results = await dst_log(c)
        assert results[0][0] == 0x10                          # short, completed without error
        assert results[1][0] & 0xF == 0xF                     # entry not used


async def test_extended_self_test_abort(quick):
    async with aionvme.Controller(quick) as c:
        await c.dst(2, nsid=1)
        assert (await dst_log(c))[0] == 2
        await c.dst(0xF)                                      # abort
        current, _, results = await dst_log(c)
        assert current == 0
        assert results[0][0] == 0x21                          # extended, aborted by command
        assert results[0][2] & 1 and results[0][12:16] == (1).to_bytes(4, "little")  # NSID 1


async def test_short_self_test_is_aborted_by_a_reset(quick):
    async with aionvme.Controller(quick) as c:
        await c.dst(1)
        await c.reset()
        _, _, results = await dst_log(c)
        assert results[0][0] == 0x12                          # short, aborted by a reset


async def test_self_test_aborted_by_format(quick):
    async with aionvme.Controller(quick) as c:
        await c.dst(2, nsid=1)
        await c.format(0, 0, 1)
        _, _, results = await dst_log(c)
        assert results[0][0] == 0x24                          # aborted by Format NVM


@pytest.mark.parametrize("stc,nsid,status", [(3, 0, (0, 0x02)), (0xE, 0, (0, 0x02)),
                                             (1, 2, (0, 0x0B))])
async def test_self_test_errors(nvme0, stc, nsid, status):
    cpl = await nvme0.dst(stc, nsid=nsid, check=False)
    assert (cpl.sct, cpl.sc) == status
