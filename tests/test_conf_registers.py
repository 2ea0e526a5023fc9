"""Controller registers against NVMe 2.0, 3.1.3: CAP, VS, INTMS/INTMC, CC,
CSTS, AQA/ASQ/ACQ, NSSR, doorbells; enable, disable, shutdown (3.6) and NVM
Subsystem Reset (3.7.1).  Runs on every backend (--pciaddr)."""
import asyncio

import pytest

import aionvme
from aionvme import Subsystem
from simconf import qemu_deviation, sim_address, wait_for_state

CAP, VS, INTMS, INTMC, CC, CSTS, NSSR, AQA, ASQ, ACQ = (
    0x00, 0x08, 0x0C, 0x10, 0x14, 0x1C, 0x20, 0x24, 0x28, 0x30)
DOORBELLS = 0x1000
NSSR_MAGIC = 0x4E564D65


def shst(ctrl):
    return (ctrl[CSTS] >> 2) & 3


async def test_cap_fields(nvme0):
    cap = nvme0.register(CAP, 8)
    assert cap & 0xFFFF >= 1                    # MQES (0's based): at least 2 entries
    assert (cap >> 24) & 0xFF > 0               # TO: a worst-case ready time in 500 ms units
    assert (cap >> 37) & 0xFF & 1 == 1          # CSS bit 0: the NVM command set
    mpsmin, mpsmax = (cap >> 48) & 0xF, (cap >> 52) & 0xF
    assert mpsmin == 0 and mpsmax >= mpsmin     # 4 KiB pages are supported
    # 3.1.3.1: CAP is read only
    nvme0.write_register(CAP, 0, 8)
    assert nvme0.register(CAP, 8) == cap


@pytest.mark.sim_only("the simulator's CAP values")
async def test_cap_fields_of_the_simulator(nvme0):
    cap = nvme0.register(CAP, 8)
    assert cap & 0xFFFF == 1023                 # MQES: the SimConfig default
    assert (cap >> 16) & 1 == 1                 # CQR: queues must be contiguous
    assert (cap >> 32) & 0xF == 0               # DSTRD: 4-byte doorbell stride
    assert (cap >> 36) & 1 == 1                 # NSSRS


@pytest.mark.sim_only("a SimConfig setting")
async def test_cap_mqes_follows_the_configuration(tmp_path):
    async with aionvme.Controller(sim_address(tmp_path, mqes=255)) as c:
        assert c[CAP] & 0xFFFF == 255


async def test_version_is_read_only_and_matches_identify(nvme0):
    vs = nvme0[VS]
    assert vs >> 16 >= 1 and vs & 0xFF00_0000 == 0           # MJR, reserved bits
    assert nvme0.id_data(83, 80) == vs                       # 5.17.2.1: VER = VS
    nvme0[VS] = vs ^ 0x00000100                              # 3.1.3.2: VS is read only
    assert nvme0[VS] == vs


@pytest.mark.sim_only("the simulator's version")
async def test_version_of_the_simulator_is_2_0(nvme0):
    assert nvme0[VS] == 0x00020000              # MJR 2, MNR 0, TER 0


async def test_intms_intmc_set_and_clear_one_mask(nvme0):
    # 3.1.3.3/3.1.3.4: writing 1 to INTMS sets a mask bit, to INTMC clears it;
    # both read back the current mask.
    assert nvme0[INTMS] == 0 and nvme0[INTMC] == 0
    nvme0[INTMS] = 0x5
    assert nvme0[INTMS] == 0x5 and nvme0[INTMC] == 0x5
    nvme0[INTMS] = 0x2                           # writing 0 bits changes nothing
    assert nvme0[INTMS] == 0x7
    nvme0[INTMC] = 0x5
    assert nvme0[INTMS] == 0x2 and nvme0[INTMC] == 0x2
    nvme0[INTMC] = 0xFFFFFFFF
    assert nvme0[INTMS] == 0


async def test_cc_fields_as_the_host_set_them(nvme0):
    cc = nvme0[CC]
    assert cc & 1 == 1                           # EN
    assert (cc >> 4) & 7 == 0                    # CSS: NVM command set
    assert (cc >> 7) & 0xF == 0                  # MPS: 4 KiB
    assert (cc >> 11) & 7 == 0                   # AMS: round robin
    assert (cc >> 14) & 3 == 0                   # SHN: no notification
    assert (cc >> 16) & 0xF == 6                 # IOSQES: 64 bytes
    assert (cc >> 20) & 0xF == 4                 # IOCQES: 16 bytes
    assert nvme0[CSTS] & 0x1F == 0x1             # RDY, no CFS, SHST 00b, no NSSRO


async def test_admin_queue_registers(nvme0):
    aqa = nvme0[AQA]
    assert aqa & 0xFFF == 63 and (aqa >> 16) & 0xFFF == 63   # ASQS/ACQS of admin_depth 64
    assert nvme0.register(ASQ, 8) == nvme0._aq.sq_iova
    assert nvme0.register(ACQ, 8) == nvme0._aq.cq_iova
    assert nvme0.register(ASQ, 8) & 0xFFF == 0 and nvme0.register(ACQ, 8) & 0xFFF == 0


async def test_disable_and_enable(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        c[CC] = c[CC] & ~1
        await wait_for_state(lambda: c[CSTS] & 1 == 0, "CSTS.RDY = 0 after CC.EN = 0")
        # 3.1.3.8-10: AQA, ASQ and ACQ keep their values over a disable
        c[AQA] = 0x001F001F
        c.write_register(ASQ, c._aq.sq_iova + 0x1000, 8)
        assert c[AQA] == 0x001F001F and c.register(ASQ, 8) == c._aq.sq_iova + 0x1000
        await c.reset()                          # enables again (3.5.1)
        assert c[CSTS] & 1 == 1
        buf = aionvme.Buffer(4096)
        assert (await c.identify(buf)).ok


@qemu_deviation("NVMe 2.0 3.1.3.9/10: ASQ and ACQ bits 11:00 are reserved and read 0h; "
                "QEMU 7.2 keeps and returns whatever the host wrote there")
async def test_asq_acq_low_bits_are_reserved(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        c[CC] = c[CC] & ~1
        await wait_for_state(lambda: c[CSTS] & 1 == 0, "CSTS.RDY = 0 after CC.EN = 0")
        c.write_register(ASQ, c._aq.sq_iova | 0xABC, 8)
        c.write_register(ACQ, c._aq.cq_iova | 0x123, 8)
        assert c.register(ASQ, 8) == c._aq.sq_iova and c.register(ACQ, 8) == c._aq.cq_iova
        await c.reset()


async def test_enable_with_unsupported_page_size_is_fatal(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        c[CC] = 0
        await wait_for_state(lambda: c[CSTS] & 1 == 0, "CSTS.RDY = 0")
        # CC.MPS above CAP.MPSMAX: the configuration cannot be honoured.
        c[CC] = 1 | (5 << 7) | (6 << 16) | (4 << 20)
        await wait_for_state(lambda: c[CSTS] & 0x2, "CSTS.CFS after enabling with MPS 5")
        assert c[CSTS] & 1 == 0
        await c.reset()                          # a reset clears it
        assert c[CSTS] & 0x3 == 0x1


async def test_enable_with_unsupported_command_set_is_fatal(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        c[CC] = 0
        await wait_for_state(lambda: c[CSTS] & 1 == 0, "CSTS.RDY = 0")
        # 3.1.3.5: CC.CSS 111b needs CAP.CSS bit 7 (admin only); where the
        # device has it, 001b is a reserved value instead.
        css = 7 if (c.cap >> 44) & 1 == 0 else 1
        c[CC] = 1 | (css << 4) | (6 << 16) | (4 << 20)
        await wait_for_state(lambda: c[CSTS] & 0x3, "CSTS.RDY or CSTS.CFS after CC.EN = 1")
        assert c[CSTS] & 0x3 == 0x2
        await c.reset()


@pytest.mark.parametrize("shn,what", [(1, "normal"), (2, "abrupt")])
async def test_shutdown_completes_and_reset_clears_it(pciaddr, shn, what):
    async with aionvme.Controller(pciaddr) as c:
        c[CC] = (c[CC] & ~(3 << 14)) | (shn << 14)
        await wait_for_state(lambda: shst(c) == 2, f"CSTS.SHST = 10b after a {what} shutdown")
        assert (c[CC] >> 14) & 3 == shn
        # 3.6.2: the host resets the controller to use it again; SHST is cleared.
        await c.reset()
        assert shst(c) == 0 and c[CSTS] & 1
        assert (await c.identify(aionvme.Buffer(4096))).ok


@pytest.mark.sim_only("a SimConfig shutdown delay")
async def test_normal_shutdown_reports_progress(tmp_path):
    async with aionvme.Controller(sim_address(tmp_path, shutdown_delay_ms=400)) as c:
        c[CC] = (c[CC] & ~(3 << 14)) | (1 << 14)
        assert shst(c) == 1                      # 01b: shutdown processing occurring
        await wait_for_state(lambda: shst(c) == 2, "CSTS.SHST = 10b")
        assert (c[CC] >> 14) & 3 == 1
        # 3.6.2: the host resets the controller to use it again; SHST is cleared.
        await c.reset()
        assert shst(c) == 0 and c[CSTS] & 1


@pytest.mark.sim_only("a SimConfig shutdown delay")
async def test_abrupt_shutdown_completes(tmp_path):
    async with aionvme.Controller(sim_address(tmp_path, shutdown_delay_ms=400)) as c:
        c[CC] = (c[CC] & ~(3 << 14)) | (2 << 14)
        assert shst(c) == 1
        await wait_for_state(lambda: shst(c) == 2, "CSTS.SHST = 10b after an abrupt shutdown")
        await c.reset()
        assert shst(c) == 0


@pytest.mark.sim_only("the simulator's state; QEMU's SMART counters start again with its process")
async def test_shutdown_then_power_cycle_is_not_unsafe():
    async with aionvme.Controller("sim") as c:
        before = c.sim.state()["unsafe_shutdowns"]
        await c.shutdown()
        await Subsystem(c).power_cycle(0)
        assert c.sim.state()["unsafe_shutdowns"] == before
        await Subsystem(c).power_cycle(0)        # no shutdown notification this time
        assert c.sim.state()["unsafe_shutdowns"] == before + 1


def needs_nssr(c):
    if not (c.cap >> 36) & 1:
        pytest.skip("CAP.NSSRS = 0: the device has no NVM Subsystem Reset")


async def test_nssr_is_reserved_without_nssrs(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        if (c.cap >> 36) & 1:
            pytest.skip("CAP.NSSRS = 1: test_nssr_needs_the_magic_value covers it")
        # 3.1.3.7: with NSSRS cleared NSSR is reserved: the magic value resets nothing
        c[NSSR] = NSSR_MAGIC
        assert c[CSTS] & 0x11 == 0x01
        assert c.pcie.register(0x04, 2) & 0x6 == 0x6
        assert (await c.identify(aionvme.Buffer(4096))).ok
        with pytest.raises(aionvme.InterfaceError, match="NSSRS"):
            await Subsystem(c).reset()


async def test_nssr_needs_the_magic_value(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        needs_nssr(c)
        c[NSSR] = 0x12345678
        assert c[CSTS] & 0x11 == 0x01            # still ready, NSSRO clear
        assert c[NSSR] == 0                      # 3.1.3.7: NSSR reads 0
        c[NSSR] = NSSR_MAGIC
        # 3.7.1: on PCIe the subsystem reset is a conventional reset of the
        # function: its config space is back at power-on values, BAR0 is off.
        assert c.pcie.register(0x04, 2) & 0x6 == 0
        assert c[CSTS] == 0xFFFFFFFF
        c.pcie.setup()
        assert c[CSTS] & 0x1 == 0                # the controller was reset
        assert c[CSTS] & 0x10                    # NSSRO: an NVM Subsystem Reset occurred
        assert c[CC] == 0


async def test_subsystem_reset_sets_nssro_which_is_rw1c(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        needs_nssr(c)
        await Subsystem(c).reset()
        assert c[CSTS] & 0x11 == 0x11            # ready again, NSSRO still reported
        c[CSTS] = 0x1                            # writing 0 to NSSRO keeps it
        assert c[CSTS] & 0x10
        c[CSTS] = 0x10                           # RW1C
        assert c[CSTS] & 0x10 == 0 and c[CSTS] & 1


async def _io_through_mmio_doorbells(c):
    ns = await aionvme.Namespace(c, 1)
    buf = aionvme.Buffer(512)
    async with aionvme.Qpair(c, 16) as q:
        for _ in range(5):                       # the rings move only through these doorbells
            assert (await ns.read(q, buf, 0)).ok
        assert q.outstanding == 0
        return q.qid


async def test_doorbells_at_the_dstrd_stride(pciaddr):
    # SQyTDBL at 1000h + (2y) * (4 << CAP.DSTRD), CQyHDBL at 1000h + (2y + 1) *
    # (4 << CAP.DSTRD).  MMIO doorbells: no shadow buffers (5.11).
    async with aionvme.Controller(pciaddr, dbbuf=False) as c:
        await _io_through_mmio_doorbells(c)


@pytest.mark.sim_only("a simulator configured with CAP.DSTRD > 0")
@pytest.mark.parametrize("dstrd", [1, 2])
async def test_doorbells_at_a_stride_above_4_bytes(tmp_path, dstrd):
    async with aionvme.Controller(sim_address(tmp_path, dstrd=dstrd), dbbuf=False) as c:
        assert (c.cap >> 32) & 0xF == dstrd
        qid = await _io_through_mmio_doorbells(c)
        stride = 4 << dstrd
        # the simulator's doorbells read back (a value the specification leaves vendor
        # specific); the 4-byte slots between two doorbells were never written
        assert c[DOORBELLS + 2 * qid * stride] == 5
        for off in range(4, stride, 4):
            assert c[DOORBELLS + 2 * qid * stride + off] == 0
        await wait_for_state(lambda: c[DOORBELLS + (2 * qid + 1) * stride] == 5,
                             "the host rang the CQ head doorbell at the stride")


@pytest.mark.sim_only("a simulator configured with CAP.DSTRD > 0")
async def test_dstrd_beyond_the_doorbell_page_is_refused(tmp_path):
    with pytest.raises(aionvme.InterfaceError, match="dstrd 3 is outside 0..2"):
        await aionvme.Controller(sim_address(tmp_path, dstrd=3))


@pytest.mark.sim_only("a simulator configured with CAP.DSTRD > 0")
@pytest.mark.parametrize("dstrd", [1, 2])
async def test_shadow_doorbells_at_a_stride_above_4_bytes(tmp_path, dstrd):
    """Doorbell Buffer Config (5.11) with CAP.DSTRD > 0: the shadow doorbell and
    EventIdx entries are 4 << DSTRD bytes apart, as the registers are."""
    async with aionvme.Controller(sim_address(tmp_path, dstrd=dstrd)) as c:
        assert c.doorbell_buffers
        ns = await aionvme.Namespace(c, 1)
        async with aionvme.Qpair(c, 16) as q:
            for _ in range(3):
                cpls = await asyncio.gather(*(ns.read(q, aionvme.Buffer(512), i)
                                              for i in range(q.depth - 1)))
                assert all(x.ok for x in cpls)
            dbs, eis = c._dbbuf
            sq = 2 * q.qid * (4 << dstrd)
            assert int.from_bytes(dbs[sq:sq + 4], "little") == q._core.sq_tail == 45 % 16
            # the device, gone idle, asks for the next ring at the same stride
            await wait_for_state(lambda: int.from_bytes(eis[sq:sq + 4], "little") == 45 % 16,
                                 "the SQ EventIdx caught up with the shadow tail")


@pytest.mark.sim_only("the simulator's doorbells read back")
async def test_doorbells_read_back_on_the_simulator(pciaddr):
    # The specification calls the value a doorbell read returns vendor specific (the
    # host should not read the doorbell registers), so no conformance test asserts one;
    # the simulator returns the value last written.
    async with aionvme.Controller(pciaddr, dbbuf=False) as c:
        qid = await _io_through_mmio_doorbells(c)
        stride = 4 << ((c.cap >> 32) & 0xF)
        assert c[DOORBELLS + 2 * qid * stride] == 5
        await wait_for_state(lambda: c[DOORBELLS + (2 * qid + 1) * stride] == 5,
                             "the host rang the CQ head doorbell")
        assert 0 < c[DOORBELLS] < 64 and 0 < c[DOORBELLS + stride] < 64  # the admin pair
