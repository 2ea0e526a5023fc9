"""A first aionvme suite, run against the simulated SSD by ``make demo``.

Run it yourself with ``python3 -m pytest -s examples/test_demo.py`` (add
``--pciaddr sim:PATH.toml`` for another simulator configuration, or
``--loop uvloop``).  The fixtures ``nvme0``, ``nvme0n1``, ``qpair`` and
``buf`` come from the aionvme pytest plugin; every command is awaited and
returns a ``Completion``, or raises ``aionvme.CommandError``.
"""
import pytest

import aionvme


async def test_identify_controller(nvme0: aionvme.Controller, buf: aionvme.Buffer) -> None:
    # The driver keeps the Identify Controller data it read at initialisation:
    # id_data(end, begin) takes a field by its byte range in the NVMe specification.
    serial = nvme0.id_data(23, 4, str)
    model = nvme0.id_data(63, 24, str)
    firmware = nvme0.id_data(71, 64, str)
    vs = nvme0[0x08]  # the VS register, by its BAR0 offset
    print()
    print(f"serial number      {serial}")
    print(f"model number       {model}")
    print(f"firmware revision  {firmware}")
    print(f"NVMe version       {vs >> 16}.{(vs >> 8) & 0xFF}")
    print(f"MDTS               {nvme0.id_data(77)} -> {nvme0.mdts // 1024} KiB per command")
    print(f"namespaces         {nvme0.id_data(519, 516)}")
    assert serial and model and firmware

    # The same structure again, read now into a Buffer of our own.
    cpl = await nvme0.identify(buf, nsid=0, cns=1)
    print(f"identify           {cpl!r}")
    assert buf.data(23, 4, str) == serial


async def test_namespace_size(nvme0n1: aionvme.Namespace) -> None:
    print()
    print(f"namespace {nvme0n1.nsid}: {nvme0n1.nsze} LBAs of {nvme0n1.lba_size} bytes "
          f"= {nvme0n1.capacity / 2**30:.1f} GiB")
    assert nvme0n1.id_data(7, 0) == nvme0n1.nsze > 0


async def test_write_read_compare(nvme0n1: aionvme.Namespace, qpair: aionvme.Qpair) -> None:
    lba_count = 4096 // nvme0n1.lba_size
    wbuf, rbuf = aionvme.Buffer(4096, "write"), aionvme.Buffer(4096, "read")
    wbuf[0:32] = b"hello from aionvme, lba 0x1000! "
    wbuf[4000:4010] = bytes(range(10))

    wcpl = await nvme0n1.write(qpair, wbuf, 0x1000, lba_count)
    rcpl = await nvme0n1.read(qpair, rbuf, 0x1000, lba_count)
    ccpl = await nvme0n1.compare(qpair, wbuf, 0x1000, lba_count)
    print()
    print(f"write    {wcpl!r}")
    print(f"read     {rcpl!r}")
    print(f"compare  {ccpl!r}")
    print(rbuf.dump(64))
    assert rbuf[0:4096] == wbuf[0:4096]

    # Compare fails once the data differs: status 02/85 Compare Failure.
    wbuf[0] ^= 0xFF
    cpl = await nvme0n1.compare(qpair, wbuf, 0x1000, lba_count, check=False)
    print(f"compare after a change: sct/sc {cpl.sct:02x}/{cpl.sc:02x}")
    assert (cpl.sct, cpl.sc) == (2, 0x85)


async def test_invalid_command(nvme0n1: aionvme.Namespace, qpair: aionvme.Qpair) -> None:
    # Opcode 0xff is no I/O command: the device answers 00/01 Invalid Command Opcode,
    # and the driver raises CommandError carrying the seed's "SCT/SC" text.
    with pytest.raises(aionvme.CommandError, match="00/01") as e:
        await nvme0n1.send_cmd(0xFF, qpair, nsid=1)
    print()
    print(f"expected error: {e.value}")
    assert (e.value.sct, e.value.sc, e.value.dnr) == (0, 1, 1)

    # check=False hands back the completion instead of raising.
    cpl = await nvme0n1.send_cmd(0xFF, qpair, nsid=1, check=False)
    assert not cpl.ok


async def test_smart_log(nvme0: aionvme.Controller, nvme0n1: aionvme.Namespace,
                         qpair: aionvme.Qpair, buf: aionvme.Buffer) -> None:
    smart = aionvme.Buffer(512, "smart log")
    await nvme0.getlogpage(0x02, smart, 512)      # SMART / Health Information
    writes = smart.data(87, 80)                   # Host Write Commands
    print()
    print(f"composite temperature  {smart.data(2, 1) - 273} C")
    print(f"data units read        {smart.data(47, 32)}")
    print(f"data units written     {smart.data(63, 48)}")
    print(f"host write commands    {writes}")
    print(f"power cycles           {smart.data(127, 112)}")
    assert 250 < smart.data(2, 1) < 400           # a plausible temperature in kelvin

    await nvme0n1.write(qpair, buf, 0, 1)
    await nvme0.getlogpage(0x02, smart, 512)
    print(f"after one more write   {smart.data(87, 80)} host write commands")
    assert smart.data(87, 80) == writes + 1


async def test_cmdlog(nvme0: aionvme.Controller, nvme0n1: aionvme.Namespace,
                      qpair: aionvme.Qpair, buf: aionvme.Buffer) -> None:
    await nvme0n1.write(qpair, buf, 8, 1)
    seen = []
    await nvme0n1.read(qpair, buf, 8, 1, cb=lambda cdw0, status: seen.append((cdw0, status)))
    await nvme0n1.flush(qpair)
    print()
    print(f"the read's callback got (cdw0, status) = {seen}")
    print("admin queue, last 4 commands:")
    print(nvme0.cmdlog(4))
    print(f"I/O queue {qpair.qid}:")
    log = qpair.cmdlog(3)
    print(log)
    assert [e.opcode for e in log] == [0x01, 0x02, 0x00]     # write, read, flush
    assert all(e.completed and e.status == 0 for e in log)
