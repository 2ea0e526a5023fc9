"""Simulator features that must do the work they advertise (issue 12, part 3):
Sanitize Overwrite's pattern and passes, DULBE, the Error Information log for
I/O errors, firmware activation at power on, failing device self-tests, and
no Namespace Attribute Notices without the Changed Namespace List log."""
import asyncio
import struct

import pytest

import aionvme
from aionvme.exceptions import status as S
from simconf import sim_address, wait_for_state

pytestmark = pytest.mark.sim_only("the simulator's own features and fault injection")


@pytest.fixture
def small(tmp_path):
    # a small namespace: an overwrite writes every byte of it
    return sim_address(tmp_path, sanitize_ms=50, dst_short_ms=50, dst_extended_ms=100,
                       namespaces=[{"size": 4 << 20}])


async def sanitize_done(c):
    buf = aionvme.Buffer(512)
    await c.getlogpage(0x81, buf, 512)
    return buf.data(3, 2) & 0x7 not in (0, 2), buf.data(3, 2)


async def run_sanitize(c, cdw10, pattern):
    await c.sanitize(cdw10=cdw10, pattern=pattern)
    async def finished():
        return (await sanitize_done(c))[0]
    await wait_for_state(finished, "the sanitize completed", tries=2000)
    return (await sanitize_done(c))[1]


@pytest.mark.parametrize("owpass,oipbp,expect", [
    (1, False, 0x11223344),
    (2, False, 0x11223344),
    (2, True, 0xEEDDCCBB),     # inverted between passes: the second pass writes ~pattern
    (3, True, 0x11223344),
    (0, True, 0xEEDDCCBB),     # OWPASS 0h: 16 passes, an even count
])
async def test_sanitize_overwrite_writes_the_pattern(small, owpass, oipbp, expect):
    async with aionvme.Controller(small) as c:
        ns = await aionvme.Namespace(c, 1)
        q = await aionvme.Qpair(c, 8)
        data = aionvme.Buffer(4096)
        data.fill(0x77)
        await ns.write(q, data, 100, 8)
        # SANACT 011b overwrite, OWPASS (7:4), OIPBP (8), NDAS (9): keep what was written
        cdw10 = 3 | (owpass << 4) | (int(oipbp) << 8) | (1 << 9)
        sstat = await run_sanitize(c, cdw10, 0x11223344)
        assert sstat & 0x7 == 4                                  # completed, no deallocation
        assert (sstat >> 3) & 0x1F == (owpass or 16)             # overwrite passes completed
        word = struct.pack("<I", expect)
        for lba in (0, 100, ns.nsze - 1):
            await ns.read(q, data, lba, 1)
            assert data[0:512] == word * 128, lba
        await q.delete()


async def test_sanitize_overwrite_with_deallocation_reads_zeroes(small):
    async with aionvme.Controller(small) as c:
        ns = await aionvme.Namespace(c, 1)
        q = await aionvme.Qpair(c, 8)
        data = aionvme.Buffer(512)
        data.fill(0x77)
        await ns.write(q, data, 5)
        sstat = await run_sanitize(c, 3 | (1 << 4), 0x11223344)   # NDAS 0: deallocate after
        assert sstat & 0x7 == 1
        await ns.read(q, data, 5)
        assert data[0:512] == bytes(512)                          # DLFEAT: deallocated reads 0
        await q.delete()


async def test_dulbe_fails_reads_of_unwritten_and_deallocated_lbas(small):
    async with aionvme.Controller(small) as c:
        ns = await aionvme.Namespace(c, 1)
        assert ns.id_data(24) & 0x4                               # NSFEAT.DAE
        q = await aionvme.Qpair(c, 8)
        data = aionvme.Buffer(4096)
        data.fill(0x5A)
        await ns.write(q, data, 8, 8)
        # DULBE clear (the default): an unwritten LBA reads as zeroes
        assert (await ns.read(q, data, 100, 1)).ok
        await c.setfeatures(0x05, 1 << 16, nsid=1)                # Error Recovery: DULBE
        assert (await c.getfeatures(0x05, nsid=1)).cdw0 & (1 << 16)
        await ns.read(q, data, 8, 8)                              # written: reads
        for lba, n in ((100, 1), (15, 2), (0, 8)):                # unwritten, partly, partly
            cpl = await ns.read(q, data, lba, n, check=False)
            assert (cpl.sct, cpl.sc) == (2, 0x87), lba
        cpl = await ns.verify(q, 100, check=False)
        assert (cpl.sct, cpl.sc) == (2, 0x87)
        with pytest.raises(S.DeallocatedOrUnwrittenLogicalBlock):
            await ns.compare(q, data, 200, 1)
        # deallocated by Dataset Management: an error again; written by Write Zeroes: not
        dsm = aionvme.Buffer(4096)
        dsm.set_dsm_range(0, 8, 2)
        await ns.dsm(q, dsm, 1)
        cpl = await ns.read(q, data, 9, 1, check=False)
        assert (cpl.sct, cpl.sc) == (2, 0x87)
        await ns.write_zeroes(q, 300, 4)
        assert (await ns.read(q, data, 300, 4)).ok
        await ns.write_zeroes(q, 300, 4, io_flags=1 << 9)         # DEAC: deallocate
        cpl = await ns.read(q, data, 300, 1, check=False)
        assert (cpl.sct, cpl.sc) == (2, 0x87)
        # a Controller Level Reset brings back the saved value: DULBE clear
        await q.delete()
        await c.reset()
        q = await aionvme.Qpair(c, 8)
        assert (await ns.read(q, data, 100, 1)).ok
        await q.delete()


async def test_error_recovery_is_namespace_specific(small):
    async with aionvme.Controller(small) as c:
        for cpl in (await c.getfeatures(0x05, nsid=0, check=False),
                    await c.setfeatures(0x05, 1 << 16, nsid=2, check=False)):
            assert (cpl.sct, cpl.sc) == (0, 0x0B)                 # Invalid Namespace or Format
        await c.setfeatures(0x05, 1 << 16, nsid=0xFFFFFFFF)       # every namespace
        assert (await c.getfeatures(0x05, nsid=1)).cdw0 == 1 << 16


async def error_log(c, entries=4):
    buf = aionvme.Buffer(64 * entries)
    await c.getlogpage(0x01, buf, 64 * entries)
    out = []
    for i in range(entries):
        count, sqid, cid, sf, loc, lba, nsid = struct.unpack_from("<QHHHHQI", buf[:], 64 * i)
        out.append({"count": count, "sqid": sqid, "cid": cid, "status": sf >> 1, "loc": loc,
                    "lba": lba, "nsid": nsid})
    return out


async def smart_errors(c):
    buf = aionvme.Buffer(512)
    await c.getlogpage(0x02, buf, 512)
    return int.from_bytes(buf[176:192], "little")


async def test_io_errors_reach_the_error_information_log(small):
    async with aionvme.Controller(small) as c:
        ns = await aionvme.Namespace(c, 1)
        q = await aionvme.Qpair(c, 8)
        data = aionvme.Buffer(4096)
        before = await smart_errors(c)
        await ns.write(q, data, 40, 8)
        await ns.write_uncorrectable(q, 43, 2)
        cpl = await ns.read(q, data, 40, 8, check=False)          # LBA 43 fails first
        assert (cpl.sct, cpl.sc) == (2, 0x81)
        cpl2 = await ns.read(q, data, ns.nsze, 1, check=False)    # LBA Out of Range
        assert (cpl2.sct, cpl2.sc) == (0, 0x80)
        log = await error_log(c)
        newest, older = log[0], log[1]
        assert newest["count"] == older["count"] + 1 and newest["count"] >= 2
        assert (newest["sqid"], newest["cid"], newest["nsid"]) == (q.qid, cpl2.cid, 1)
        assert newest["status"] & 0x7FF == 0x080 and newest["lba"] == ns.nsze
        assert (older["sqid"], older["cid"], older["nsid"], older["lba"]) == (q.qid, cpl.cid, 1, 43)
        assert older["status"] & 0x7FF == (2 << 8) | 0x81
        assert older["status"] >> 14 == 1                          # DNR, as posted
        assert older["loc"] == 0xFFFF                              # no parameter named
        # SMART / Health: Number of Error Information Log Entries
        assert await smart_errors(c) == before + 2
        await q.delete()


async def test_many_io_errors_are_all_counted(small):
    async with aionvme.Controller(small) as c:
        ns = await aionvme.Namespace(c, 1)
        q = await aionvme.Qpair(c, 128)
        data = aionvme.Buffer(512)
        before = await smart_errors(c)
        await asyncio.gather(*(ns.read(q, data, ns.nsze + i, check=False) for i in range(100)))
        assert await smart_errors(c) == before + 100
        log = await error_log(c, 64)
        counts = [e["count"] for e in log]
        assert counts == list(range(counts[0], counts[0] - 64, -1))  # newest first, no gaps
        assert log[0]["lba"] == ns.nsze + 99
        await q.delete()


async def firmware_revision(c):
    buf = aionvme.Buffer(4096)
    await c.identify(buf)
    return buf[64:72].decode().strip()


@pytest.mark.parametrize("action", [1, 2])
async def test_power_cycle_activates_the_committed_firmware(small, action):
    async with aionvme.Controller(small) as c:
        img = aionvme.Buffer(4096, "firmware")
        img[0:8] = b"FWPWR005"
        await c.fw_download(img, 0)
        if action == 2:
            await c.fw_commit(2, 0)                               # into slot 2, not activated
        await c.fw_commit(2, action)                              # 001b / 010b: at next CLR
        assert await firmware_revision(c) == "1.0"
        await aionvme.Subsystem(c).power_cycle(0)
        assert await firmware_revision(c) == "FWPWR005"
        buf = aionvme.Buffer(512)
        await c.getlogpage(0x03, buf, 512)
        assert buf[0] == 2                                        # AFI: slot 2, none next


async def dst_results(c):
    buf = aionvme.Buffer(564)
    await c.getlogpage(0x06, buf, 564)
    return buf[0], [buf[4 + 28 * i:4 + 28 * (i + 1)] for i in range(20)]


async def run_dst(c, stc, nsid=0xFFFFFFFF):
    await c.dst(stc, nsid=nsid)
    async def finished():
        return (await dst_results(c))[0] == 0
    await wait_for_state(finished, "the self-test finished", tries=2000)
    return (await dst_results(c))[1][0]


async def test_self_test_failure_is_reported(small):
    async with aionvme.Controller(small) as c:
        c.sim.selftest_fail(segment=7, nsid=1, lba=0x1234, sct=2, sc=0x81)
        entry = await run_dst(c, 2, nsid=1)
        assert entry[0] == 0x27                 # extended test, failed segment (7h)
        assert entry[1] == 7                    # Segment Number
        assert entry[2] == 0xF                  # NSID, FLBA, SCT, SC valid
        assert struct.unpack_from("<I", entry, 12)[0] == 1
        assert struct.unpack_from("<Q", entry, 16)[0] == 0x1234
        assert (entry[24] & 7, entry[25]) == (2, 0x81)
        # one failure was armed: the next test passes
        entry = await run_dst(c, 1)
        assert entry[0] == 0x10 and entry[2] == 0
        c.sim.selftest_fail(fatal=True)
        assert (await run_dst(c, 1))[0] == 0x15  # fatal or unknown test error
        c.sim.selftest_fail()
        entry = await run_dst(c, 1)
        assert entry[0] == 0x16 and entry[1] == 0  # a segment failed, which is unknown


async def test_self_test_failure_arguments_are_checked(small):
    async with aionvme.Controller(small) as c:
        for kw in ({"segment": 256}, {"count": 0}, {"sct": 8}, {"sc": 256}, {"lba": -1}):
            with pytest.raises(aionvme.InterfaceError, match=next(iter(kw))):
                c.sim.selftest_fail(**kw)


async def test_no_namespace_attribute_notices_without_log_04h(small):
    async with aionvme.Controller(small) as c:
        buf = aionvme.Buffer(4096)
        cpl = await c.getlogpage(0x04, buf, 4096, check=False)
        assert (cpl.sct, cpl.sc) == (1, 0x09)                     # Invalid Log Page
        assert not c.id_data(95, 92) & (1 << 8)                   # OAES bit 8


async def test_a_cached_write_lost_to_power_loss_leaves_the_lba_unwritten(small):
    async with aionvme.Controller(small) as c:
        ns = await aionvme.Namespace(c, 1)
        q = await aionvme.Qpair(c, 8)
        data = aionvme.Buffer(512)
        data.fill(0x42)
        await ns.write(q, data, 600)
        await ns.flush(q)                                         # LBA 600 is on the media
        await ns.write(q, data, 601)                              # LBA 601 only in the cache
        c.sim.power_loss()
        await aionvme.Subsystem(c).power_on()
        ns = await aionvme.Namespace(c, 1)
        q = await aionvme.Qpair(c, 8)
        await c.setfeatures(0x05, 1 << 16, nsid=1)                # DULBE
        assert (await ns.read(q, data, 600)).ok and data[0] == 0x42
        cpl = await ns.read(q, data, 601, check=False)
        assert (cpl.sct, cpl.sc) == (2, 0x87)
        await q.delete()
