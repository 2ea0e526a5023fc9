"""Identify (NVMe 2.0, 5.17) on the simulator: controller, namespace,
active namespace list, namespace identification descriptors, bad CNS/NSID."""
import struct

import pytest

import aionvme


async def test_identify_controller(nvme0, buf):
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


@pytest.mark.parametrize("nsid", [0, 2, 0xFFFFFFFE])
async def test_identify_namespace_invalid_nsid(nvme0, buf, nsid):
    cpl = await nvme0.identify(buf, nsid, 0, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x0B)                      # Invalid Namespace or Format


async def test_identify_namespace_broadcast_is_common_capabilities(nvme0, buf):
    buf.fill(0xAA)
    assert (await nvme0.identify(buf, 0xFFFFFFFF, 0)).ok
    assert buf.data(7, 0) == 0                                 # no NSZE in the common data


async def test_active_namespace_list(nvme0, buf):
    await nvme0.identify(buf, 0, 2)
    assert buf.data(3, 0) == 1 and buf.data(7, 4) == 0
    buf.fill(0xAA)
    await nvme0.identify(buf, 1, 2)                            # NSIDs greater than 1: none
    assert buf[0:4096] == bytes(4096)
    for nsid in (0xFFFFFFFE, 0xFFFFFFFF):
        cpl = await nvme0.identify(buf, nsid, 2, check=False)
        assert (cpl.sct, cpl.sc) == (0, 0x0B)


async def test_namespace_descriptors_match_identify_namespace(nvme0, buf):
    ns = aionvme.Buffer(4096)
    await nvme0.identify(ns, 1, 0)
    await nvme0.identify(buf, 1, 3)
    found, off = {}, 0
    while buf[off + 1]:                                        # NIDL 0 ends the list
        nidt, nidl = buf[off], buf[off + 1]
        found[nidt] = buf[off + 4:off + 4 + nidl]
        off += 4 + nidl
    assert len(found[1]) == 8 and len(found[2]) == 16 and found[4] == b"\0"  # CSI: NVM
    # 5.17.2.3: the descriptors carry the same EUI64 and NGUID as Identify Namespace
    assert found[1] == ns[120:128] and found[1] != bytes(8)
    assert found[2] == ns[104:120] and found[2] != bytes(16)
    cpl = await nvme0.identify(buf, 2, 3, check=False)
    assert (cpl.sct, cpl.sc) == (0, 0x0B)


@pytest.mark.parametrize("cns", [0x04, 0x55, 0xFF])
async def test_invalid_cns(nvme0, buf, cns):
    cpl = await nvme0.identify(buf, 0, cns, check=False)
    assert (cpl.sct, cpl.sc, cpl.dnr) == (0, 0x02, 1)          # Invalid Field in Command


async def test_identify_to_an_unmapped_address_is_a_data_transfer_error(nvme0):
    cpl = await nvme0.send_cmd(0x06, cdw10=1, prp1=0x10, check=False)
    assert (cpl.sct, cpl.sc) in ((0, 0x04), (0, 0x13))         # Data Transfer Error / PRP Offset
    assert (await nvme0.identify(aionvme.Buffer(4096))).ok
