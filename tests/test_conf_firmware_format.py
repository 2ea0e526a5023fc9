"""Firmware Image Download / Commit (NVMe 2.0, 5.13, 5.12) and Format NVM
(5.14).  Runs on every backend; the firmware tests need the simulator's
slots (QEMU 7.2 has no firmware commands: test_conf_logpages checks that it
says so)."""
import pytest

import aionvme
from simconf import qemu_deviation, wait_for_state

FIRMWARE = pytest.mark.sim_only("the simulator's firmware slots and images")


def image(revision: bytes, size: int = 8192) -> aionvme.Buffer:
    buf = aionvme.Buffer(size, "firmware")
    buf[0:8] = revision.ljust(8)
    return buf


async def slot_log(c):
    buf = aionvme.Buffer(512)
    await c.getlogpage(0x03, buf, 512)
    return buf[0], {s: buf[8 * s:8 * s + 8].decode().strip(" \0") for s in range(1, 8)}


@FIRMWARE
async def test_download_commit_activate_at_reset():
    async with aionvme.Controller("sim") as c:
        img = image(b"FWREV002")
        await c.fw_download(img, 0, 4096)
        await c.fw_download(img, 4096, 4096)   # pieces in order
        cpl = await c.fw_commit(2, 1)          # CA 001b: replace, activate at next reset
        assert cpl.ok
        afi, slots = await slot_log(c)
        assert slots[2] == "FWREV002"
        assert afi & 0x7 == 1 and (afi >> 4) & 0x7 == 2   # active 1, next active 2
        assert c.id_data(71, 64, str) == "1.0"
        await c.reset()
        afi, _ = await slot_log(c)
        assert afi & 0x7 == 2 and (afi >> 4) & 0x7 == 0
        assert c.id_data(71, 64, str) == "FWREV002"
        # CA 010b: activate the image already in slot 1 at the next reset
        assert (await c.fw_commit(1, 2)).ok
        await c.reset()
        assert c.id_data(71, 64, str) == "1.0"


@FIRMWARE
async def test_commit_activate_now_sends_a_notice():
    async with aionvme.Controller("sim") as c:
        seen = []
        c.register_aer_cb(lambda cdw0, st: seen.append(cdw0))
        await c.setfeatures(0x0B, 1 << 9)      # AEC: firmware activation notices
        await c.fw_download(image(b"FWNOW003", 4096), 0)
        assert (await c.fw_commit(3, 3)).ok    # CA 011b: activate without reset
        afi, slots = await slot_log(c)
        assert afi & 0x7 == 3 and slots[3] == "FWNOW003"
        await wait_for_state(lambda: seen, "a firmware activation notice")
        assert seen[0] & 0xFFFFFF == 0x030102  # Notice, firmware activation starting, log 3


@FIRMWARE
async def test_firmware_errors():
    async with aionvme.Controller("sim") as c:
        img = image(b"FWREV004")
        assert (c.id_data(260) >> 1) & 7 == 3                 # FRMW: 3 slots, slot 1 RO
        # nothing downloaded: Invalid Firmware Image
        cpl = await c.fw_commit(2, 0, check=False)
        assert (cpl.sct, cpl.sc) == (1, 0x07)
        await c.fw_download(img, 0, 4096)
        cpl = await c.fw_download(img, 0, 4096, check=False)  # the same range again
        assert (cpl.sct, cpl.sc) == (1, 0x14)                 # Overlapping Range
        for slot, action in ((1, 0), (1, 1), (4, 1), (7, 0), (3, 2)):
            cpl = await c.fw_commit(slot, action, check=False)
            assert (cpl.sct, cpl.sc) == (1, 0x06), (slot, action)  # Invalid Firmware Slot
        cpl = await c.fw_commit(2, 5, check=False)            # boot partitions: none
        assert (cpl.sct, cpl.sc) == (0, 0x02)
        assert (await c.fw_commit(0, 0)).ok                   # FS 0: the controller picks


async def test_format_changes_the_lba_size_and_erases(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        ns = await aionvme.Namespace(c, 1)
        q = await aionvme.Qpair(c, 8)
        data = aionvme.Buffer(4096)
        data.fill(0x5A)
        await ns.write(q, data, 0, 8)
        assert ns.lba_size == 512
        lbaf = await ns.format(4096)
        assert ns.lba_size == 4096 and ns.nsze == (1 << 30) // 4096
        assert ns.id_data(26) & 0xF == lbaf
        await ns.read(q, data, 0, 1)
        assert data[0:4096] == bytes(4096)                    # user data is gone
        data.fill(0x33)
        await ns.write(q, data, ns.nsze - 1, 1)
        cpl = await ns.read(q, data, ns.nsze, 1, check=False)
        assert (cpl.sct, cpl.sc) == (0, 0x80)                 # LBA Out of Range
        await ns.format(512, ses=1)                           # user data erase
        assert ns.lba_size == 512 and ns.nsze == (1 << 30) // 512
        await q.delete()


RESERVED_SES = qemu_deviation("NVMe 2.0 5.14: SES 011b-111b are reserved: "
                              "Invalid Field in Command; QEMU 7.2 ignores SES and formats")


@pytest.mark.parametrize("lbaf,ses,nsid,status", [
    (15, 0, 1, (1, 0x0A)),                                 # no LBA format 15: Invalid Format
    pytest.param(0, 3, 1, (0, 0x02), marks=RESERVED_SES),  # SES 011b is reserved
    pytest.param(0, 7, 1, (0, 0x02), marks=RESERVED_SES),
    (0, 0, "above NN", (0, 0x0B)),                         # 3.2.1.2: invalid NSIDs
    (0, 0, 0, (0, 0x0B)),
])
async def test_format_errors(nvme0, lbaf, ses, nsid, status):
    if nsid == "above NN":
        nsid = nvme0.id_data(519, 516) + 1
    cpl = await nvme0.format(lbaf, ses, nsid, check=False)
    assert (cpl.sct, cpl.sc) == status


async def test_format_beyond_the_lba_formats(nvme0):
    nlbaf = (await aionvme.Namespace(nvme0, 1)).id_data(25)  # 0's based
    cpl = await nvme0.format(nlbaf + 1, 0, 1, check=False)
    assert (cpl.sct, cpl.sc) == (1, 0x0A)                  # Invalid Format


async def test_format_crypto_erase_all_namespaces(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        if not c.id_data(524) & 0x4:
            pytest.skip("FNA bit 2 = 0: the device has no cryptographic erase")
        assert (await c.format(0, 2, 0xFFFFFFFF)).ok
