"""Get Features / Set Features (NVMe 2.0, 5.15, 5.27): each feature, SEL 0-3
(current, default, saved, supported capabilities), SV and Number of Queues.
Runs on every backend."""
import asyncio
import struct

import pytest

import aionvme
from simconf import qemu_deviation

# (FID, a value to set, the cdw11 selecting it for Get Features)
FEATURES = [
    (0x01, 0x03020104, 0),            # Arbitration: HPW MPW LPW AB
    (0x02, 0x00000000, 0),            # Power Management: PS 0 (the only one, NPSS 0)
    (0x04, 273 + 75, 0),              # Temperature Threshold: composite, over (no default)
    (0x05, 0x00000064, 0),            # Error Recovery: TLER
    (0x06, 0x00000000, 0),            # Volatile Write Cache: off
    (0x08, 0x00000A05, 0),            # Interrupt Coalescing: TIME 10, THR 5
    (0x09, 0x00010007, 7),            # Interrupt Vector Configuration: IV 7, CD
    (0x0B, 0x00000002, 0),            # Asynchronous Event Configuration
]
SAVEABLE = {0x01, 0x02, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0B}
NSID = {0x05: 1}                      # Error Recovery is namespace specific (NVM Command Set 1.0)

KEPT_OVER_RESET = qemu_deviation(
    "NVMe 2.0 5.27 (the feature is not persistent across power cycle and reset): after a "
    "Controller Level Reset the feature has its saved value again; QEMU 7.2 keeps the "
    "current value over CC.EN 1 -> 0 -> 1")


def with_deviations(features, deviating):
    return [pytest.param(*f, marks=deviating[f[0]]) if f[0] in deviating else f
            for f in features]


@pytest.mark.parametrize("fid,value,sel11", with_deviations(FEATURES, {
    0x04: KEPT_OVER_RESET, 0x05: KEPT_OVER_RESET, 0x0B: KEPT_OVER_RESET}))
async def test_set_then_get_current_and_default(pciaddr, fid, value, sel11):
    nsid = NSID.get(fid, 0)
    # aec=0: the driver sets no Asynchronous Event Configuration of its own at
    # initialisation, so what a reset leaves is the device's doing.
    async with aionvme.Controller(pciaddr, aec=0) as c:
        caps = (await c.getfeatures(fid, sel11, sel=3, nsid=nsid)).cdw0
        current = (await c.getfeatures(fid, sel11, sel=0, nsid=nsid)).cdw0
        if not caps & 0x4:
            # 5.15 (SEL 11b, bit 2 clear): the feature is not changeable, which the
            # specification allows; Set Features then fails with Feature Not Changeable
            cpl = await c.setfeatures(fid, value, nsid=nsid, check=False)
            assert (cpl.sct, cpl.sc) == (1, 0x0E)
            assert (await c.getfeatures(fid, sel11, sel=0, nsid=nsid)).cdw0 == current
            return
        default = (await c.getfeatures(fid, sel11, sel=1, nsid=nsid)).cdw0
        saved = (await c.getfeatures(fid, sel11, sel=2, nsid=nsid)).cdw0
        await c.setfeatures(fid, value, nsid=nsid)
        assert (await c.getfeatures(fid, sel11, sel=0, nsid=nsid)).cdw0 & 0xFFFF_FFFF == value
        assert (await c.getfeatures(fid, sel11, sel=1, nsid=nsid)).cdw0 == default
        # 5.27: a Controller Level Reset brings back the saved value
        await c.reset()
        assert (await c.getfeatures(fid, sel11, nsid=nsid)).cdw0 == saved


@pytest.mark.parametrize("fid,value,sel11", FEATURES)
async def test_save_follows_the_saveable_capability(pciaddr, fid, value, sel11):
    nsid = NSID.get(fid, 0)
    async with aionvme.Controller(pciaddr, aec=0) as c:     # as above
        caps = (await c.getfeatures(fid, sel11, sel=3, nsid=nsid)).cdw0
        cpl = await c.setfeatures(fid, value, sv=1, nsid=nsid, check=False)
        if not caps & 0x1:
            # 5.27: SV for a feature that is not saveable: Feature Identifier Not Saveable
            assert (cpl.sct, cpl.sc) == (1, 0x0D)
            return
        assert cpl.ok
        assert (await c.getfeatures(fid, sel11, sel=2, nsid=nsid)).cdw0 == value
        await c.reset()                                    # saved: it survives a reset
        assert (await c.getfeatures(fid, sel11, nsid=nsid)).cdw0 == value


@pytest.mark.sim_only("which features the simulator can save")
@pytest.mark.parametrize("fid,value,sel11", FEATURES)
async def test_saveable_features_of_the_simulator(nvme0, fid, value, sel11):
    caps = (await nvme0.getfeatures(fid, sel11, sel=3)).cdw0
    assert caps & 0x1 == int(fid in SAVEABLE)


@qemu_deviation("NVMe 2.0 5.15: SEL values 100b-111b are reserved, so the "
                "field is invalid: Invalid Field in Command; QEMU 7.2 reads only SEL bits "
                "and returns the current value")
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
    npss = nvme0.id_data(263)
    cpl = await nvme0.setfeatures(0x02, npss + 1, check=False)
    if not (await nvme0.getfeatures(0x02, sel=3)).cdw0 & 0x4:
        assert (cpl.sct, cpl.sc) == (1, 0x0E)              # 5.27: Feature Not Changeable
    else:
        assert (cpl.sct, cpl.sc) == (0, 0x02)              # 5.27.1.2: above NPSS: invalid


async def test_temperature_threshold_selectors(nvme0):
    # 5.27.1.3: an under and an over temperature threshold for the composite
    under = (await nvme0.getfeatures(0x04, 1 << 20)).cdw0
    over = (await nvme0.getfeatures(0x04, 0)).cdw0
    assert under & 0xFFFF < over & 0xFFFF
    for cdw11 in (2 << 20, 3 << 20):                       # THSEL 10b, 11b: reserved
        cpl = await nvme0.getfeatures(0x04, cdw11, check=False)
        assert (cpl.sct, cpl.sc) == (0, 0x02)


@qemu_deviation("NVMe 2.0 5.27.1.3: TMPSEL 1001b-1110b are reserved: Invalid Field in "
                "Command; QEMU 7.2 returns a threshold of 0 for them")
async def test_temperature_threshold_reserved_sensor(nvme0):
    cpl = await nvme0.getfeatures(0x04, 9 << 16, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x02)


@pytest.mark.sim_only("the simulator echoes TMPSEL/THSEL in Dword 0")
async def test_temperature_threshold_echoes_the_selectors(nvme0):
    under = (await nvme0.getfeatures(0x04, 1 << 20)).cdw0
    assert (under >> 20) & 3 == 1


@qemu_deviation("NVMe 2.0 5.27.1.7: IV names an interrupt vector the controller has, "
                "else Invalid Field in Command; QEMU 7.2 checks IV against max_ioqpairs + 1, "
                "not its MSI-X table, and accepts vector 64 of a 64-entry table")
async def test_interrupt_vector_beyond_the_table(nvme0):
    cpl = await nvme0.getfeatures(0x09, nvme0.pcie.msix_vectors, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x02)


async def test_timestamp(nvme0, buf):
    buf[0:8] = struct.pack("<Q", 1_000_000_000)
    await nvme0.setfeatures(0x0E, buf=buf)
    buf.fill(0)
    await nvme0.getfeatures(0x0E, buf=buf)
    ms = int.from_bytes(buf[0:6], "little")
    assert ms >= 1_000_000_000
    assert (buf[6] >> 1) & 7 == 1                          # origin: set by Set Features


async def test_number_of_queues(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        cpl = await c.getfeatures(0x07)
        assert cpl.cdw0 >> 32 == 0                             # NCQA/NSQA, 16 bits each
        alloc = await c.setfeatures(0x07, (2 << 16) | 3)
        assert alloc.cdw0 & 0xFFFF >= 3 and alloc.cdw0 >> 16 >= 2
        assert (await c.getfeatures(0x07)).cdw0 == alloc.cdw0
        cpl = await c.setfeatures(0x07, 0xFFFF, check=False)  # 65536 queues: reserved
        assert (cpl.sct, cpl.sc) == (0, 0x02)
        # queues beyond the allocation are refused (5.4: Invalid Queue Identifier)
        qbuf = aionvme.Buffer(4096)
        ncqa = (alloc.cdw0 >> 16) + 1
        cpl = await c.send_cmd(0x05, cdw10=(ncqa + 1) | (15 << 16), cdw11=1,
                               prp1=qbuf.iova, check=False)
        assert (cpl.sct, cpl.sc) == (1, 0x01)
        # 5.27.1.5: once an I/O queue exists: Command Sequence Error
        async with aionvme.Qpair(c, 8):
            cpl = await c.setfeatures(0x07, (3 << 16) | 3, check=False)
            assert (cpl.sct, cpl.sc) == (0, 0x0C)


@pytest.mark.sim_only("counts interrupts inside the simulator")
async def test_interrupt_coalescing_holds_the_vector_until_the_threshold(nvme0, nvme0n1):
    """5.27.1.6: THR 3 (four entries, 0's based) and TIME 255 (25.5 ms): four
    completions spread over a few ms raise one interrupt; with Coalescing Disable
    (5.27.1.7) on the vector each raises its own."""
    async def spread_reads(q):
        futs = []
        for i in range(4):                       # apart: the device completes each alone
            futs.append(nvme0n1.read(q, aionvme.Buffer(512), i))
            await asyncio.sleep(0.002)
        assert all(c.ok for c in await asyncio.gather(*futs))

    async with aionvme.Qpair(nvme0, 16, poll_us=0) as q:
        irqs = lambda: nvme0.sim.state()["irq_counts"][q.vector]   # noqa: E731
        await nvme0.setfeatures(0x08, cdw11=(255 << 8) | 3)
        try:
            before = irqs()
            await spread_reads(q)
            assert irqs() - before == 1
            assert (await nvme0n1.read(q, aionvme.Buffer(512), 0)).ok   # alone: after TIME
            await nvme0.setfeatures(0x09, cdw11=q.vector | (1 << 16))   # CD for this vector
            before = irqs()
            await spread_reads(q)
            assert irqs() - before > 1                      # nothing held
        finally:
            await nvme0.setfeatures(0x08, cdw11=0)
            await nvme0.setfeatures(0x09, cdw11=q.vector)
