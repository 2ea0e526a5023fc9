"""Identify (NVMe 2.0, 5.17): controller, namespace, active namespace list,
namespace identification descriptors, bad CNS/NSID.  Runs on every backend."""
import struct

import pytest

import aionvme
from simconf import qemu_deviation

OACS_NS_MGMT = 1 << 3


def nn(nvme0):
    return nvme0.id_data(519, 516)


async def test_identify_controller(nvme0, buf):
    # 5.17.2.1, Figure 275: the fields every I/O controller fills the same way
    await nvme0.identify(buf, 0, 1)
    assert buf.data(1, 0) not in (0, 0xFFFF)                    # VID
    assert buf.data(23, 4, str).isprintable() and buf.data(23, 4, str)   # SN: ASCII
    assert buf.data(63, 24, str).isprintable() and buf.data(63, 24, str)  # MN
    assert buf.data(71, 64, str)                                # FR
    assert buf.data(83, 80) == nvme0[0x08]                      # VER matches VS
    if buf.data(83, 80) >= 0x00010400:
        assert buf[111] == 1                                    # CNTRLTYPE: I/O controller
    assert buf[512] & 0xF == 6 and buf[512] >> 4 >= 6           # SQES: 64 bytes required
    assert buf[513] & 0xF == 4 and buf[513] >> 4 >= 4           # CQES: 16 bytes required
    assert nn(nvme0) >= 1                                       # NN


@pytest.mark.sim_only("the simulator's identify values")
async def test_identify_controller_of_the_simulator(nvme0, buf):
    await nvme0.identify(buf, 0, 1)
    assert buf.data(1, 0) == buf.data(3, 2) == 0xA10E          # VID, SSVID
    assert buf.data(23, 4, str) and buf.data(63, 24, str)       # SN, MN
    assert buf.data(71, 64, str) == "1.0"                       # FR
    assert buf[77] == 7                                         # MDTS
    assert buf.data(83, 80) == nvme0[0x08]                      # VER matches VS
    assert buf.data(112, 111) == 1                              # CNTRLTYPE: I/O controller
    assert buf[512] == 0x66 and buf[513] == 0x44                # SQES, CQES
    assert buf.data(519, 516) == 1                              # NN
    oncs = buf.data(521, 520)
    for bit in (0, 1, 2, 3, 4, 6, 7):  # Compare, Write Unc, DSM, WZ, save/select, TS, Verify
        assert oncs >> bit & 1, bit
    assert buf[525] & 1                                         # VWC present
    oacs = buf.data(257, 256)
    assert oacs & 0x2 and oacs & 0x4 and oacs & 0x10            # format, firmware, self-test


async def test_identify_namespace(nvme0, buf):
    await nvme0.identify(buf, 1, 0)
    nsze, ncap, nuse = struct.unpack_from("<QQQ", buf[0:24])
    flbas = buf[26] & 0xF
    lbaf = buf.data(128 + 4 * flbas + 3, 128 + 4 * flbas)
    lba_size = 1 << ((lbaf >> 16) & 0xFF)
    assert lba_size == 512 and lbaf & 0xFFFF == 0              # LBADS 9, no metadata
    assert nsze == ncap == nuse and nsze * lba_size == 1 << 30
    formats = [buf.data(128 + 4 * i + 3, 128 + 4 * i) for i in range(buf[25] + 1)]
    sizes = {(1 << ((f >> 16) & 0xFF), f & 0xFFFF) for f in formats}
    assert {(512, 0), (4096, 0), (512, 8), (4096, 8)} <= sizes


@pytest.mark.parametrize("which", ["zero", "above NN", "FFFFFFFEh"])
async def test_identify_namespace_invalid_nsid(nvme0, buf, which):
    # 3.2.1.2: 0h and NSIDs above NN are invalid: Invalid Namespace or Format
    nsid = {"zero": 0, "above NN": nn(nvme0) + 1, "FFFFFFFEh": 0xFFFFFFFE}[which]
    cpl = await nvme0.identify(buf, nsid, 0, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x0B)
    cpl = await nvme0.identify(buf, nsid, 3, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x0B)


async def test_identify_an_inactive_namespace(nvme0, buf):
    # 5.17.2.1 (CNS 00h): an inactive NSID, valid but with no namespace
    # attached, returns a zero filled data structure
    active = aionvme.Buffer(4096)
    await nvme0.identify(active, 0, 2)
    ids = {active.data(4 * i + 3, 4 * i) for i in range(1024)} - {0}
    inactive = [n for n in range(1, min(nn(nvme0), 1024) + 1) if n not in ids]
    if not inactive:
        pytest.skip(f"every NSID up to NN {nn(nvme0)} is active: no inactive NSID to try")
    buf.fill(0xAA)
    assert (await nvme0.identify(buf, inactive[0], 0)).ok
    assert buf[0:4096] == bytes(4096)


@qemu_deviation("NVMe 2.0 5.17.2.1 (CNS 00h): with Namespace Management (OACS bit 3) the "
                "broadcast NSID returns the capabilities common to all namespaces; QEMU 7.2 "
                "sets OACS bit 3 and answers Invalid Namespace or Format")
async def test_identify_namespace_broadcast(nvme0, buf):
    buf.fill(0xAA)
    cpl = await nvme0.identify(buf, 0xFFFFFFFF, 0, check=False)
    if nvme0.id_data(257, 256) & OACS_NS_MGMT:
        # 5.17.2.1: with Namespace Management, the capabilities common to all
        # namespaces, so no NSZE
        assert cpl.ok and buf.data(7, 0) == 0
    else:
        # without it the broadcast NSID is not a namespace this command takes
        assert (cpl.sct, cpl.sc) == (0, 0x0B)


async def test_active_namespace_list(nvme0, buf):
    await nvme0.identify(buf, 0, 2)
    assert buf.data(3, 0) == 1 and buf.data(7, 4) == 0         # one namespace, NSID 1
    buf.fill(0xAA)
    await nvme0.identify(buf, 1, 2)                            # NSIDs greater than 1: none
    assert buf[0:4096] == bytes(4096)
    for nsid in (0xFFFFFFFE, 0xFFFFFFFF):
        cpl = await nvme0.identify(buf, nsid, 2, check=False)
        assert (cpl.sct, cpl.sc) == (0, 0x0B)


@qemu_deviation("NVMe 2.0 5.17.2.3 and 4.5.1: every namespace has a globally unique "
                "identifier (EUI64, NGUID or UUID) and CNS 03h reports it; QEMU 7.2's nvme-ns "
                "has none unless eui64/nguid/uuid are given, and lists only the CSI")
async def test_namespace_descriptors_match_identify_namespace(nvme0, buf):
    ns = aionvme.Buffer(4096)
    await nvme0.identify(ns, 1, 0)
    await nvme0.identify(buf, 1, 3)
    found, off = {}, 0
    while buf[off + 1]:                                        # NIDL 0 ends the list
        nidt, nidl = buf[off], buf[off + 1]
        assert nidt not in found                               # one descriptor per type
        found[nidt] = buf[off + 4:off + 4 + nidl]
        off += 4 + nidl
    # 5.17.2.3, Figure 279: EUI64 8 bytes, NGUID 16, UUID 16, CSI 1 (00h: NVM)
    for nidt, size in ((1, 8), (2, 16), (3, 16)):
        if nidt in found:
            assert len(found[nidt]) == size and found[nidt] != bytes(size), nidt
    assert {1, 2, 3} & found.keys()                            # at least one identifier
    assert found[4] == b"\0"
    # the same EUI64 and NGUID as Identify Namespace, present when those are
    assert found.get(1, bytes(8)) == ns[120:128]
    assert found.get(2, bytes(16)) == ns[104:120]


@pytest.mark.sim_only("the simulator's namespace identifiers")
async def test_namespace_descriptors_of_the_simulator(nvme0, buf):
    await nvme0.identify(buf, 1, 3)
    assert (buf[0], buf[1]) == (1, 8) and buf[4:12] != bytes(8)          # EUI64 first
    assert (buf[12], buf[13]) == (2, 16) and buf[16:32] != bytes(16)     # then NGUID


@pytest.mark.parametrize("cns", [0x04, 0x55, 0xFF])
async def test_invalid_cns(nvme0, buf, cns):
    cpl = await nvme0.identify(buf, 0, cns, check=False)
    assert (cpl.sct, cpl.sc, cpl.dnr) == (0, 0x02, 1)          # Invalid Field in Command


@pytest.mark.sim_only("the simulator checks DMA addresses; a posted PCIe write to no memory "
                      "cannot fail on a real bus, and QEMU 7.2 completes it with success")
async def test_identify_to_an_unmapped_address_is_a_data_transfer_error(nvme0):
    cpl = await nvme0.send_cmd(0x06, cdw10=1, prp1=0x10, check=False)
    assert (cpl.sct, cpl.sc) in ((0, 0x04), (0, 0x13))         # Data Transfer Error / PRP Offset
    assert (await nvme0.identify(aionvme.Buffer(4096))).ok
