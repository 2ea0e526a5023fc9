"""Get Features / Set Features (NVMe 2.0, 5.27, 5.28) on the simulator:
each feature, SEL 0-3 (current, default, saved, supported capabilities),
SV and Number of Queues."""
import struct

import pytest

import aionvme

# (FID, a value to set, the cdw11 selecting it for Get Features)
FEATURES = [
    (0x01, 0x03020104, 0),            # Arbitration: HPW MPW LPW AB
    (0x02, 0x00000000, 0),            # Power Management: PS 0 (the only one, NPSS 0)
    (0x04, 273 + 70, 0),              # Temperature Threshold: composite, over
    (0x05, 0x00000064, 0),            # Error Recovery: TLER
    (0x06, 0x00000000, 0),            # Volatile Write Cache: off
    (0x08, 0x00000A05, 0),            # Interrupt Coalescing: TIME 10, THR 5
    (0x09, 0x00010007, 7),            # Interrupt Vector Configuration: IV 7, CD
    (0x0B, 0x00000002, 0),            # Asynchronous Event Configuration
]
SAVEABLE = {0x01, 0x02, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0B}


@pytest.mark.parametrize("fid,value,sel11", FEATURES)
async def test_set_then_get_current_default_saved(fid, value, sel11):
    async with aionvme.Controller("sim") as c:
        default = (await c.getfeatures(fid, sel11, sel=1)).cdw0
        await c.setfeatures(fid, value)
        assert (await c.getfeatures(fid, sel11, sel=0)).cdw0 & 0xFFFF_FFFF == value
        assert (await c.getfeatures(fid, sel11, sel=1)).cdw0 == default
        assert (await c.getfeatures(fid, sel11, sel=2)).cdw0 == default   # nothing saved yet
        caps = (await c.getfeatures(fid, sel11, sel=3)).cdw0
        assert caps & 0x4                                  # changeable
        assert caps & 0x1 == int(fid in SAVEABLE)          # saveable
        # 5.27: a Controller Level Reset brings back the saved value
        await c.reset()
        assert (await c.getfeatures(fid, sel11)).cdw0 == default
        # SV: saved, so it survives a reset
        await c.setfeatures(fid, value, sv=1)
        assert (await c.getfeatures(fid, sel11, sel=2)).cdw0 == value
        await c.reset()
        assert (await c.getfeatures(fid, sel11)).cdw0 == value


async def test_reserved_select_value(nvme0):
    cpl = await nvme0.getfeatures(0x01, sel=4, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x02)


@pytest.mark.parametrize("fid", [0x00, 0x7F, 0xC5])
async def test_unsupported_feature(nvme0, fid):
    for cpl in (await nvme0.getfeatures(fid, check=False),
                await nvme0.setfeatures(fid, 1, check=False)):
        assert (cpl.sct, cpl.sc) == (0, 0x02)


@pytest.mark.parametrize("fid", [0x07, 0x0E])
async def test_not_saveable(nvme0, fid, buf):
    cpl = await nvme0.setfeatures(fid, 0, sv=1, buf=buf, check=False)
    assert (cpl.sct, cpl.sc) == (1, 0x0D)                  # Feature Identifier Not Saveable
    assert (await nvme0.getfeatures(fid, sel=3, buf=buf)).cdw0 & 0x5 == 0x4


async def test_power_state_beyond_npss(nvme0):
    cpl = await nvme0.setfeatures(0x02, 1, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x02)


async def test_temperature_threshold_selectors(nvme0):
    under = (await nvme0.getfeatures(0x04, 1 << 20)).cdw0
    over = (await nvme0.getfeatures(0x04, 0)).cdw0
    assert under & 0xFFFF < over & 0xFFFF
    assert (under >> 20) & 3 == 1                          # THSEL echoed
    for cdw11 in (2 << 20, 3 << 20, 9 << 16):              # reserved THSEL, no sensor 9
        cpl = await nvme0.getfeatures(0x04, cdw11, check=False)
        assert (cpl.sct, cpl.sc) == (0, 0x02)


async def test_interrupt_vector_beyond_the_table(nvme0):
    cpl = await nvme0.getfeatures(0x09, 64, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x02)


async def test_timestamp(nvme0, buf):
    buf[0:8] = struct.pack("<Q", 1_000_000_000)
    await nvme0.setfeatures(0x0E, buf=buf)
    buf.fill(0)
    await nvme0.getfeatures(0x0E, buf=buf)
    ms = int.from_bytes(buf[0:6], "little")
    assert ms >= 1_000_000_000
    assert (buf[6] >> 1) & 7 == 1                          # origin: set by Set Features


async def test_number_of_queues():
    async with aionvme.Controller("sim") as c:
        cpl = await c.getfeatures(0x07)
        assert cpl.cdw0 == (63 << 16) | 63                 # NCQA/NSQA, 0's based
        cpl = await c.setfeatures(0x07, (2 << 16) | 3)
        assert cpl.cdw0 & 0xFFFF >= 3 and cpl.cdw0 >> 16 >= 2
        assert (await c.getfeatures(0x07)).cdw0 == cpl.cdw0
        cpl = await c.setfeatures(0x07, 0xFFFF, check=False)  # 65536 queues: reserved
        assert (cpl.sct, cpl.sc) == (0, 0x02)
        # queues beyond the allocation are refused (5.4: Invalid Queue Identifier)
        qbuf = aionvme.Buffer(4096)
        ncqa = (cpl.cdw0 >> 16) + 1 if cpl.ok else 3
        cpl = await c.send_cmd(0x05, cdw10=(ncqa + 1) | (15 << 16), cdw11=1,
                               prp1=qbuf.iova, check=False)
        assert (cpl.sct, cpl.sc) == (1, 0x01)
        # 5.27.1.11: once an I/O queue exists: Command Sequence Error
        async with aionvme.Qpair(c, 8):
            cpl = await c.setfeatures(0x07, (3 << 16) | 3, check=False)
            assert (cpl.sct, cpl.sc) == (0, 0x0C)
