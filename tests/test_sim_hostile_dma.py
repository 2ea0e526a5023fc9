"""Hostile data pointers (issue 12): PRP lists and SGLs a host builds to trap
the device.  Every walk is bounded by the transfer length and ends with the
status NVMe 2.0 gives (4.1.1 PRP Entry and List, 4.1.2 Scatter Gather List;
the same text is 4.3.1 and 4.3.2 from revision 2.1 on), never a hang of the
simulator's only thread.  Each test runs on its own Controller, and after
each one the device still reads and writes."""
import struct

import pytest

import aionvme

PAGE = 4096
READ, WRITE = 0x02, 0x01
# SGL descriptor types (4.1.2, SGL Descriptor Type)
DATA_BLOCK, BIT_BUCKET, SEGMENT, LAST_SEGMENT = 0x0, 0x1, 0x2, 0x3


def sgl_desc(addr: int, length: int, dtype: int, subtype: int = 0) -> bytes:
    return struct.pack("<QI3xB", addr, length, (dtype << 4) | subtype)


def sgl1(addr: int, length: int, dtype: int) -> dict:
    """SGL Entry 1 as send_cmd's raw prp1/prp2 (bytes 24..39 of the SQE)."""
    return {"prp1": addr, "prp2": length | (dtype << 60), "sgl": True}


async def status_of(ns, q, opcode, buf, nlb, **dptr):
    cpl = await ns.send_cmd(opcode, q, buf, nsid=ns.nsid, cdw12=nlb - 1, check=False, timeout=2,
                            **dptr)
    assert (cpl.sct, cpl.sc) != (0, 0x06), "Internal Error: a simulator bug"
    return cpl.sct, cpl.sc


async def still_works(ns, q):
    w, r = aionvme.Buffer(3 * PAGE), aionvme.Buffer(3 * PAGE)
    w.fill(0xA5)
    await ns.write(q, w, 8, 24, timeout=2)
    await ns.read(q, r, 8, 24, timeout=2)
    assert r[:] == w[:]


@pytest.fixture
async def dev():
    async with aionvme.Controller("sim") as c:
        ns = await aionvme.Namespace(c, 1)
        async with aionvme.Qpair(c, 8) as q:
            yield ns, q
            await still_works(ns, q)


async def test_prp_list_chaining_to_itself(dev):
    """PRP2 at the last entry of a list page, which chains back to itself: the
    next list page is not memory page aligned, PRP Offset Invalid (00/13).
    The other PRP rules keep their statuses."""
    ns, q = dev
    buf, lst = aionvme.Buffer(3 * PAGE), aionvme.Buffer(PAGE)
    last = lst.iova + PAGE - 8
    lst[PAGE - 8:PAGE] = struct.pack("<Q", last)
    assert await status_of(ns, q, READ, buf, 24, prp1=buf.iova, prp2=last) == (0, 0x13)
    # an entry with an offset; a list pointer not qword aligned; a list outside memory
    lst[0:16] = struct.pack("<QQ", buf.iova + PAGE + 512, buf.iova + 2 * PAGE)
    assert await status_of(ns, q, READ, buf, 24, prp1=buf.iova, prp2=lst.iova) == (0, 0x13)
    assert await status_of(ns, q, READ, buf, 24, prp1=buf.iova, prp2=lst.iova + 4) == (0, 0x13)
    assert await status_of(ns, q, READ, buf, 24, prp1=buf.iova, prp2=1 << 62) == (0, 0x04)


async def test_two_prp_list_pages_chaining_to_each_other(dev):
    """Two list pages whose last entries name each other's last entry: 00/13.
    Chained at offset 0h the same pages are a well formed list (every data
    entry naming one page here), walked to the end of the transfer."""
    ns, q = dev
    data, a, b = aionvme.Buffer(PAGE), aionvme.Buffer(PAGE), aionvme.Buffer(PAGE)
    a[PAGE - 8:PAGE] = struct.pack("<Q", b.iova + PAGE - 8)
    b[PAGE - 8:PAGE] = struct.pack("<Q", a.iova + PAGE - 8)
    assert await status_of(ns, q, WRITE, data, 24, prp1=data.iova,
                           prp2=a.iova + PAGE - 8) == (0, 0x13)
    data.fill(0x5A)
    a[PAGE - 16:PAGE] = struct.pack("<QQ", data.iova, b.iova)
    b[0:PAGE] = struct.pack("<Q", data.iova) * 511 + struct.pack("<Q", a.iova)
    nlb = 128 * PAGE // 512                                # 512 KiB: MDTS
    assert await status_of(ns, q, WRITE, data, nlb, prp1=data.iova,
                           prp2=a.iova + PAGE - 16) == (0, 0)
    assert ns.nvme.sim.media(1, 8 * 127) == bytes([0x5A]) * 512


async def test_sgl_segment_chaining_to_itself(dev):
    """A Segment descriptor that names its own segment: too many descriptors for
    the device, Invalid Number of SGL Descriptors (00/0E), not a loop."""
    ns, q = dev
    buf, seg = aionvme.Buffer(PAGE), aionvme.Buffer(PAGE)
    seg[0:32] = sgl_desc(buf.iova, 0, DATA_BLOCK) + sgl_desc(seg.iova, 32, SEGMENT)
    assert await status_of(ns, q, READ, buf, 8, **sgl1(seg.iova, 32, SEGMENT)) == (0, 0x0E)


async def test_sgl_segment_descriptor_before_the_end_of_a_segment(dev):
    """Figure "SGL Validation Error Conditions": a Segment descriptor in other
    than the last place of a segment is Invalid Number of SGL Descriptors."""
    ns, q = dev
    buf, seg, seg2 = aionvme.Buffer(PAGE), aionvme.Buffer(PAGE), aionvme.Buffer(PAGE)
    seg2[0:16] = sgl_desc(buf.iova, PAGE, DATA_BLOCK)
    seg[0:32] = sgl_desc(seg2.iova, 16, LAST_SEGMENT) + sgl_desc(buf.iova, PAGE, DATA_BLOCK)
    assert await status_of(ns, q, READ, buf, 8, **sgl1(seg.iova, 32, SEGMENT)) == (0, 0x0E)
    # a last segment holding a Segment descriptor: Invalid SGL Segment Descriptor
    seg[0:32] = sgl_desc(buf.iova, 512, DATA_BLOCK) + sgl_desc(seg2.iova, 16, SEGMENT)
    assert await status_of(ns, q, READ, buf, 8, **sgl1(seg.iova, 32, LAST_SEGMENT)) == (0, 0x0D)


async def test_sgl_segment_address_not_qword_aligned(dev):
    ns, q = dev
    buf, seg = aionvme.Buffer(PAGE), aionvme.Buffer(PAGE)
    assert await status_of(ns, q, READ, buf, 8, **sgl1(seg.iova + 4, 16, LAST_SEGMENT)) == (0, 0x0D)
    # Sub Type 1h (offsets) is reserved on PCIe, Keyed and Transport Data Blocks are
    # for fabrics, 6h..Eh are reserved: SGL Descriptor Type Invalid (00/11).
    for dtype, subtype in [(DATA_BLOCK, 1), (BIT_BUCKET, 1), (SEGMENT, 1), (0x4, 0), (0x5, 0),
                           (0x6, 0), (0xF, 0)]:
        seg[0:16] = sgl_desc(buf.iova, PAGE, dtype, subtype)
        assert await status_of(ns, q, READ, buf, 8,
                               **sgl1(seg.iova, 16, LAST_SEGMENT)) == (0, 0x11), (dtype, subtype)


async def test_sgl_data_block_wrapping_past_2_to_the_64(dev):
    """Address + Length past 1_00000000_00000000h: Data SGL Length Invalid."""
    ns, q = dev
    buf = aionvme.Buffer(PAGE)
    assert await status_of(ns, q, READ, buf, 8,
                           **sgl1(0xFFFFFFFFFFFFF000, 0x2000, DATA_BLOCK)) == (0, 0x0F)
    # an SGL shorter than the transfer
    seg = aionvme.Buffer(PAGE)
    seg[0:32] = sgl_desc(buf.iova, 512, DATA_BLOCK) + sgl_desc(buf.iova, 512, DATA_BLOCK)
    assert await status_of(ns, q, READ, buf, 8, **sgl1(seg.iova, 32, LAST_SEGMENT)) == (0, 0x0F)


async def test_sgl_bit_bucket_in_a_write_has_no_effect(dev):
    """A Bit Bucket in a source buffer is treated as a Length of 0h (Figure "SGL
    Bit Bucket descriptor"): the data blocks alone carry the write."""
    ns, q = dev
    buf, seg = aionvme.Buffer(PAGE), aionvme.Buffer(PAGE)
    buf.fill(0x3C)
    seg[0:32] = sgl_desc(0, 1024, BIT_BUCKET) + sgl_desc(buf.iova, 512, DATA_BLOCK)
    assert await status_of(ns, q, WRITE, buf, 1, **sgl1(seg.iova, 32, LAST_SEGMENT)) == (0, 0)
    assert ns.nvme.sim.media(1, 0) == bytes([0x3C]) * 512




async def test_raw_command_longer_than_its_buffer_stays_inside_it(dev):
    """send_cmd without raw pointers, asking for 12 KiB into an 8 KiB buffer: the
    PRPs take the 12 KiB shape (PRP2 a list: the buffer's second page, then 0h),
    so the device never reads the buffer's data page as a PRP list (here full
    of pointers at another buffer): Data Transfer Error, nothing else written."""
    ns, q = dev
    victim = aionvme.Buffer(PAGE)
    victim.fill(0x11)
    buf = aionvme.Buffer(2 * PAGE)
    buf[PAGE:2 * PAGE] = struct.pack("<Q", victim.iova) * 512
    assert await status_of(ns, q, READ, buf, 24) == (0, 0x04)
    assert victim[:] == bytes([0x11]) * PAGE
    # The same for an admin command: Get Log Page of 12 KiB (zeroes past the log).
    cpl = await ns.nvme.send_cmd(0x02, buf, nsid=0xFFFFFFFF, cdw10=0x02 | (3071 << 16),
                                 check=False, timeout=2)
    assert (cpl.sct, cpl.sc) == (0, 0x04)
    assert victim[:] == bytes([0x11]) * PAGE
    # A transfer shorter than its buffer keeps its own shape: 8 KiB of a 12 KiB buffer.
    big = aionvme.Buffer(3 * PAGE)
    big.fill(0x22)
    assert await status_of(ns, q, WRITE, big, 16) == (0, 0)
    assert ns.nvme.sim.media(1, 15) == bytes([0x22]) * 512
