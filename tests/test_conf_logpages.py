"""Get Log Page (NVMe 2.0, 5.16): error information, SMART / health counters
that move, firmware slot, commands supported and effects, invalid log pages
and offsets.  Runs on every backend."""
import pytest

import aionvme
from aionvme import Subsystem
from simconf import qemu_deviation


async def smart(c):
    buf = aionvme.Buffer(512)
    await c.getlogpage(0x02, buf, 512)
    u128 = lambda off: int.from_bytes(buf[off:off + 16], "little")  # noqa: E731
    return {"warning": buf[0], "temperature": buf.data(2, 1), "spare": buf[3],
            "units_read": u128(32), "units_written": u128(48), "host_reads": u128(64),
            "host_writes": u128(80), "power_cycles": u128(112), "unsafe": u128(144),
            "media_errors": u128(160), "error_entries": u128(176)}


@pytest.mark.sim_only("the simulator logs every error; 5.16.1.2 asks for an entry only "
                      "with More (M) set, and QEMU 7.2 logs none")
async def test_error_information_log(nvme0):
    cpl = await nvme0.send_cmd(0xC3, nsid=0, check=False)          # no such admin opcode
    assert (cpl.sct, cpl.sc) == (0, 0x01)
    buf = aionvme.Buffer(4096)
    await nvme0.getlogpage(0x01, buf, 64)
    assert buf.data(7, 0) > 0                                       # error count
    assert buf.data(9, 8) == 0                                      # SQID: admin
    assert buf.data(11, 10) == cpl.cid                              # CID
    assert buf.data(13, 12) >> 1 == cpl.status                      # status field
    count = buf.data(7, 0)
    await nvme0.send_cmd(0xC3, check=False)
    await nvme0.getlogpage(0x01, buf, 128)
    assert buf.data(7, 0) == count + 1                              # newest first
    assert buf.data(64 + 7, 64) == count


async def test_smart_counters_move(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        ns = await aionvme.Namespace(c, 1)
        before = await smart(c)
        assert before["spare"] <= 100 and before["temperature"] > 273  # a percentage; Kelvin
        data = aionvme.Buffer(1000 * 512)
        async with aionvme.Qpair(c, 8) as q:
            await ns.write(q, data, 0, 1000)
            for i in range(3):
                await ns.read(q, data, 0, 1000)
        after = await smart(c)
        # 5.16.1.3: data units are thousands of 512-byte units, rounded up
        assert after["units_written"] - before["units_written"] == 1
        assert after["units_read"] - before["units_read"] == 3
        assert after["host_writes"] - before["host_writes"] == 1
        assert after["host_reads"] - before["host_reads"] == 3


@pytest.mark.sim_only("the simulator's temperature knob")
async def test_smart_temperature_follows_the_sensor(nvme0):
    assert (await smart(nvme0))["spare"] == 100
    nvme0.sim.temperature(300)
    assert (await smart(nvme0))["temperature"] == 300


@pytest.mark.sim_only("power loss without shutdown; QEMU's SMART counters start again "
                      "with its process")
async def test_power_cycles_and_unsafe_shutdowns_count():
    async with aionvme.Controller("sim") as c:
        before = await smart(c)
        await c.shutdown()
        await Subsystem(c).power_cycle(0)
        mid = await smart(c)
        assert mid["power_cycles"] == before["power_cycles"] + 1
        assert mid["unsafe"] == before["unsafe"]
        c.sim.power_loss()                                          # no shutdown notification
        await Subsystem(c).power_on()
        after = await smart(c)
        assert after["power_cycles"] == mid["power_cycles"] + 1
        assert after["unsafe"] == mid["unsafe"] + 1


async def test_media_errors_count_unrecovered_reads(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        if not c.id_data(521, 520) & 0x2:
            pytest.skip("ONCS bit 1 = 0: the device has no Write Uncorrectable")
        ns = await aionvme.Namespace(c, 1)
        before = await smart(c)
        async with aionvme.Qpair(c, 8) as q:
            await ns.write_uncorrectable(q, 5)
            cpl = await ns.read(q, aionvme.Buffer(512), 5, check=False)
            assert (cpl.sct, cpl.sc) == (2, 0x81)
        assert (await smart(c))["media_errors"] == before["media_errors"] + 1


async def test_firmware_slot_log(nvme0):
    buf = aionvme.Buffer(512)
    await nvme0.getlogpage(0x03, buf, 512)
    active = buf[0] & 0x7                                           # AFI
    assert 1 <= active <= (nvme0.id_data(260) >> 1) & 0x7           # a slot FRMW has
    assert buf[8 * active:8 * active + 8].strip(b" \0")             # FRSn of it is set


@qemu_deviation("NVMe 2.0 5.16.1.4: FRSn is the revision of the firmware in slot n, and "
                "Identify FR (5.17.2.1) the active one; QEMU 7.2 reports FRS1 \"1.0\" "
                "with slot 1 active but FR is its version (\"7.2.x\")")
async def test_firmware_slot_log_names_the_active_revision(nvme0):
    buf = aionvme.Buffer(512)
    await nvme0.getlogpage(0x03, buf, 512)
    active = buf[0] & 0x7
    assert buf[8 * active:8 * active + 8].decode().strip() == nvme0.id_data(71, 64, str)


async def test_commands_supported_and_effects(nvme0):
    buf = aionvme.Buffer(4096)
    await nvme0.getlogpage(0x05, buf, 4096)
    acs = lambda op: buf.data(4 * op + 3, 4 * op)                   # noqa: E731
    iocs = lambda op: buf.data(1024 + 4 * op + 3, 1024 + 4 * op)    # noqa: E731
    # 5.16.1.6: CSUPP of every mandatory admin and NVM command (Figures 28, 138)
    for op in (0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0A, 0x0C):
        assert acs(op) & 1, hex(op)
    for op in (0x00, 0x01, 0x02):
        assert iocs(op) & 1, hex(op)
    # optional commands: exactly those Identify Controller reports
    oacs, oncs = nvme0.id_data(257, 256), nvme0.id_data(521, 520)
    for op, present in ((0x80, oacs & 0x2), (0x10, oacs & 0x4), (0x11, oacs & 0x4),
                        (0x14, oacs & 0x10), (0x84, nvme0.id_data(331, 328) & 0x7)):
        assert bool(acs(op) & 1) == bool(present), hex(op)
    for op, bit in ((0x05, 0), (0x04, 1), (0x09, 2), (0x08, 3)):
        assert bool(iocs(op) & 1) == bool(oncs >> bit & 1), hex(op)
    if acs(0x80) & 1:
        assert acs(0x80) & 0x2                                      # LBCC: format
    assert acs(0xC3) == 0 and iocs(0x7F) == 0
    assert iocs(0x01) & 0x2 and not iocs(0x02) & 0x2                # a write changes LBAs


@pytest.mark.parametrize("opcode,why", [(0x10, "firmware commit"), (0x11, "firmware download"),
                                        (0x14, "device self-test"), (0x84, "sanitize")])
async def test_unsupported_optional_admin_commands(nvme0, opcode, why):
    # what Identify does not report is an Invalid Command Opcode (Figure 138)
    oacs = nvme0.id_data(257, 256)
    has = {0x10: oacs & 0x4, 0x11: oacs & 0x4, 0x14: oacs & 0x10,
           0x84: nvme0.id_data(331, 328) & 0x7}[opcode]
    if has:
        pytest.skip(f"the device supports {why}")
    cpl = await nvme0.send_cmd(opcode, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x01)


@qemu_deviation("NVMe 2.0 5.17.2.1: OACS bit 3 means the Namespace Management command is "
                "supported; QEMU 7.2 sets it but answers opcode 0Dh with Invalid Command "
                "Opcode")
async def test_namespace_management_follows_oacs(nvme0):
    cpl = await nvme0.send_cmd(0x0D, cdw10=0xF, check=False)       # SEL Fh: reserved
    if nvme0.id_data(257, 256) & 0x8:
        assert (cpl.sct, cpl.sc) != (0, 0x01)
    else:
        assert (cpl.sct, cpl.sc) == (0, 0x01)


@qemu_deviation("NVMe 2.0 5.16 (Figure 202): a log page that is not supported or reserved "
                "is Invalid Log Page (01h/09h); QEMU 7.2 answers Invalid Field in Command")
@pytest.mark.parametrize("lid", [0x17, 0x6F, 0x7F, 0xBF])
async def test_invalid_log_page(nvme0, lid):
    cpl = await nvme0.getlogpage(lid, aionvme.Buffer(512), 512, check=False)
    assert (cpl.sct, cpl.sc) == (1, 0x09)                           # Invalid Log Page


async def test_log_page_offset(nvme0):
    whole, part = aionvme.Buffer(512), aionvme.Buffer(512)
    await nvme0.getlogpage(0x05, whole, 512)
    await nvme0.getlogpage(0x05, part, 256, offset=256)
    assert part[0:256] == whole[256:512]
    # past the end of the page: Invalid Field in Command (5.16)
    cpl = await nvme0.getlogpage(0x02, part, 512, offset=8192, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x02)
    # LPOL not dword aligned: raw, since the host API refuses it
    cpl = await nvme0.send_cmd(0x02, part, nsid=0xFFFFFFFF, cdw10=0x02 | (127 << 16),
                               cdw12=2, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x02)


@pytest.mark.sim_only("the simulator zero fills past the page; QEMU 7.2 transfers the page "
                      "only")
async def test_read_past_the_page_is_zero_filled(nvme0):
    buf = aionvme.Buffer(1024)
    buf.fill(0xAA)
    await nvme0.getlogpage(0x02, buf, 1024)
    assert buf[512:1024] == bytes(512)
