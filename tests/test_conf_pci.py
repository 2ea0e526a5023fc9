"""PCI configuration space (PCI Local Bus 3.0, PCI PM 1.2, PCI Express Base
4.0): IDs, class code, BAR0, the capability list, which bits are writable,
D0/D3hot, MSI-X masking, Function Level Reset.  Runs on every backend."""
import asyncio

import pytest

import aionvme
from aionvme.pcie import CAP_MSIX, CAP_PCIE, CAP_PM
from simconf import qemu_deviation, vfio_deviation, wait_for_state

CSTS = 0x1C


@pytest.mark.sim_only("the simulator's IDs and BAR size")
async def test_ids_of_the_simulator(pcie):
    assert pcie.register(0x00, 2) == 0xA10E               # vendor ID
    assert pcie.register(0x02, 2) == 0x0001               # device ID
    assert pcie.register(0x2C, 2) == 0xA10E               # subsystem vendor ID
    assert pcie.cap_offset(CAP_PM) < pcie.cap_offset(CAP_MSIX) < pcie.cap_offset(CAP_PCIE)


async def test_ids_and_class_code(pcie):
    assert pcie.register(0x00, 2) not in (0, 0xFFFF)      # vendor ID
    # 010802h: mass storage, non-volatile memory, NVM Express I/O controller
    assert pcie.register(0x09, 1) == 0x02                 # programming interface
    assert pcie.register(0x0A, 1) == 0x08                 # sub class
    assert pcie.register(0x0B, 1) == 0x01                 # base class
    assert pcie.register(0x0E, 1) & 0x7F == 0             # header type 0
    assert pcie.register(0x06, 2) & 0x10                  # status: capabilities list


async def test_bar0_is_64_bit_memory_and_sized_by_probe(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        pcie = c.pcie
        lo, hi = pcie.register(0x10), pcie.register(0x14)
        assert lo & 0x1 == 0                              # memory space
        assert (lo >> 1) & 3 == 2                         # 64-bit
        pcie.write(0x10, 4, 0xFFFFFFFF)
        pcie.write(0x14, 4, 0xFFFFFFFF)
        probe = pcie.register(0x10)
        assert probe & 0xF == lo & 0xF                    # type bits are read only
        size = (~(probe & ~0xF) & 0xFFFFFFFF) + 1
        assert size & (size - 1) == 0 and size >= 0x2000  # registers, then doorbells
        assert pcie.register(0x14) == 0xFFFFFFFF          # upper half fully writable
        pcie.write(0x10, 4, lo)
        pcie.write(0x14, 4, hi)
        assert (pcie.register(0x10), pcie.register(0x14)) == (lo, hi)


async def test_capability_list(pcie):
    pm, msix, exp = pcie.cap_offset(CAP_PM), pcie.cap_offset(CAP_MSIX), pcie.cap_offset(CAP_PCIE)
    assert None not in (pm, msix, exp)
    # walk the list by hand: every pointer is dword aligned and it ends with 0
    ids, off = [], pcie.register(0x34, 1)
    while off:
        assert off & 3 == 0 and off >= 0x40
        ids.append(pcie.register(off, 1))
        off = pcie.register(off + 1, 1)
    assert {CAP_PM, CAP_MSIX, CAP_PCIE} <= set(ids) and len(ids) == len(set(ids))
    assert pcie.register(pm + 4, 2) & 3 == 0              # PMCSR: D0
    ctrl = pcie.register(msix + 2, 2)
    assert ctrl & 0x8000                                  # MSI-X enabled by the host
    assert (ctrl & 0x7FF) + 1 == pcie.msix_vectors >= 2
    table, pba = pcie.register(msix + 4), pcie.register(msix + 8)
    assert table & 7 == 0 and pba & 7 == 0                # both in BAR0 (BIR 0)
    assert (table & ~7) + 16 * pcie.msix_vectors <= pba & ~7
    # device/port type: PCI Express endpoint, or root complex integrated endpoint
    assert (pcie.register(exp + 2, 2) >> 4) & 0xF in (0b0000, 0b1001)
    assert pcie.register(exp + 4) & (1 << 28)             # DevCap: FLR capable


@vfio_deviation("vfio-pci gives the MSI-X capability no write permission (vfio_pci_config.c: "
                "cap_perms[PCI_CAP_ID_MSIX] has no writefn), so the Function Mask bit of "
                "Message Control cannot be set from user space")
async def test_read_only_fields_ignore_writes(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        pcie = c.pcie
        msix = pcie.cap_offset(CAP_MSIX)
        exp = pcie.cap_offset(CAP_PCIE)
        ro = [(0x00, 4), (0x08, 4), (0x2C, 4), (0x34, 1), (0x3D, 1),
              (msix + 4, 4), (msix + 8, 4), (exp + 4, 4)]
        before = [pcie.register(o, n) for o, n in ro]
        for o, n in ro:
            pcie.write(o, n, 0x5A5A5A5A & ((1 << (8 * n)) - 1))
        assert [pcie.register(o, n) for o, n in ro] == before
        # MSI-X Message Control: the table size is read only, enable/mask are not
        ctrl = pcie.register(msix + 2, 2)
        pcie.write(msix + 2, 2, (ctrl | 0x4000) ^ 0x07FF)
        assert pcie.register(msix + 2, 2) == ctrl | 0x4000
        pcie.write(msix + 2, 2, ctrl)


async def test_writable_fields_keep_what_was_written(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        pcie = c.pcie
        pcie.write(0x3C, 1, 0x0B)                          # interrupt line
        assert pcie.register(0x3C, 1) == 0x0B
        cmd = pcie.register(0x04, 2)
        pcie.write(0x04, 2, cmd & ~0x4)                   # bus master off
        assert pcie.register(0x04, 2) == cmd & ~0x4
        pcie.write(0x04, 2, cmd)
        assert pcie.register(0x04, 2) == cmd


async def test_no_extended_capabilities(pcie):
    # PCIe 7.6.3: no extended capabilities, so the header at 100h is 0
    assert pcie.register(0x100) == 0


@qemu_deviation("PCI Bus Power Management 1.2, 5.4.1: in D3hot a function answers "
                "configuration accesses only, its memory space is off; QEMU 7.2's NVMe "
                "function keeps decoding BAR0 in D3hot (through vfio-pci it does not show: "
                "vfio-pci turns BAR0 access off itself in D3hot)", through_vfio=False)
async def test_d3hot_turns_bar0_off_and_d0_brings_the_controller_back(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        await c.pcie.set_power_state(3)
        assert c.pcie.power_state == 3
        assert c[CSTS] == 0xFFFFFFFF                      # BAR0 does not answer in D3hot
        assert c.pcie.register(0x00, 2) not in (0, 0xFFFF)  # config space does
        await c.pcie.set_power_state(0)
        assert c.pcie.power_state == 0
        assert c[CSTS] & 1
        assert (await c.identify(aionvme.Buffer(4096))).ok


def _pba_bit(c, vector):
    pba = c.pcie.register(c.pcie.cap_offset(CAP_MSIX) + 8) & ~7
    return (c.register(pba + 8 * (vector // 64), 8) >> (vector % 64)) & 1


async def test_msix_vector_mask_holds_the_interrupt_pending(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        ns = await aionvme.Namespace(c, 1)
        # poll_us=0: interrupts only, so the host finds the CQE only when the vector fires
        async with aionvme.Qpair(c, 16, vector=3, poll_us=0) as q:
            c.pcie.msix_mask(3, True)
            fut = asyncio.ensure_future(ns.read(q, aionvme.Buffer(512), 0))
            # PCI 3.0 6.8.3.4: a masked vector's message is held in the PBA
            await wait_for_state(lambda: _pba_bit(c, 3), "the PBA bit of vector 3")
            assert not fut.done()
            c.pcie.msix_mask(3, False)                    # unmasking delivers it
            assert (await fut).ok
            assert _pba_bit(c, 3) == 0


@vfio_deviation("vfio-pci drops user writes to the MSI-X capability (vfio_pci_config.c: "
                "no writefn for PCI_CAP_ID_MSIX): the Function Mask cannot be set")
async def test_msix_function_mask_holds_every_vector(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        ns = await aionvme.Namespace(c, 1)
        msix = c.pcie.cap_offset(CAP_MSIX)
        ctrl = c.pcie.register(msix + 2, 2)
        async with aionvme.Qpair(c, 16, vector=5, poll_us=0) as q:   # interrupts only
            c.pcie.write(msix + 2, 2, ctrl | 0x4000)
            fut = asyncio.ensure_future(ns.read(q, aionvme.Buffer(512), 0))
            admin = asyncio.ensure_future(c.getfeatures(0x07))
            await wait_for_state(lambda: _pba_bit(c, 5) and _pba_bit(c, 0),
                                 "PBA bits of vectors 5 and 0")
            assert not fut.done() and not admin.done()
            c.pcie.write(msix + 2, 2, ctrl)
            assert (await fut).ok and (await admin).ok
            assert _pba_bit(c, 5) == 0 and _pba_bit(c, 0) == 0


@vfio_deviation("vfio-pci virtualises Interrupt Line (vfio_pci_config.c: PCI_INTERRUPT_LINE "
                "ALL_VIRT): the value written stays in its virtual config space over an FLR "
                "instead of the function's power-on value 0")
async def test_function_level_reset(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        ns = await aionvme.Namespace(c, 1)
        q = await aionvme.Qpair(c, 16)
        data = aionvme.Buffer(512)
        data[0:4] = b"FLR!"
        await ns.write(q, data, 7)
        await ns.flush(q)
        exp = c.pcie.cap_offset(CAP_PCIE)
        c.pcie.write(0x3C, 1, 0x0B)
        c.pcie.write(exp + 8, 2, c.pcie.register(exp + 8, 2) | 0x8000)   # Initiate FLR
        # PCIe 6.6.2: the function is back at its power-on state
        assert c.pcie.register(0x3C, 1) == 0
        assert c.pcie.register(0x04, 2) & 0x6 == 0
        assert c.pcie.register(exp + 8, 2) & 0x8000 == 0  # the bit reads 0
        c.pcie.setup()
        assert c[0x14] == 0 and c[CSTS] == 0              # CC and CSTS reset
        await c.reset()                                   # the host brings it back
        back = aionvme.Buffer(512)
        await ns.read(q, back, 7)
        assert back[0:4] == b"FLR!"
        await q.delete()


async def test_pcie_reset_api_recovers_queues(pciaddr):
    async with aionvme.Controller(pciaddr) as c:
        ns = await aionvme.Namespace(c, 1)
        async with aionvme.Qpair(c, 16) as q:
            await c.pcie.reset()
            assert c[CSTS] & 1
            assert (await ns.read(q, aionvme.Buffer(512), 0)).ok


async def test_register_reads_up_to_8_bytes_and_slices_are_lists(pcie):
    """pynvme's Pcie.register takes any size up to 8 bytes; a slice is a list of bytes."""
    assert pcie.register(0x09, 3) == 0x010802                   # class code: NVMe (PCI 7.5.1.1.6)
    assert pcie.register(0x00, 8) == pcie.register(0, 4) | (pcie.register(4, 4) << 32)
    assert pcie[0x09:0x0c] == [0x02, 0x08, 0x01]
    assert pcie.register(0x01, 2) == pcie[1] | (pcie[2] << 8)   # unaligned: byte by byte
    for bad in (0, 9):
        with pytest.raises(aionvme.InterfaceError, match="byte_count"):
            pcie.register(0, bad)
    with pytest.raises(aionvme.InterfaceError, match="outside config space"):
        pcie.register(0xFFC, 8)
