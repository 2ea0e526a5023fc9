"""Guest side: aionvme's NVMe/TCP host against Linux's nvmet-tcp target (runs as root
in the guest, with ``--nvmet``; AIONVME_GUEST_NVMET names the target).

- discovery: the discovery controller's log page lists the subsystem;
- the subsystem: Connect, Property Get/Set (CAP, VS, CC, CSTS), Identify
  Controller (CNTLID as Connect returned, SUBNQN, IOCCSZ), with header and
  data digests;
- a second, memory-backed null_blk device (configfs ``memory_backed=1``) is
  added as namespace 2, so data survives: aionvme writes a pattern over TCP
  (in-capsule and R2T sizes), reads it back and compares; then reads the
  same LBAs through the block device nvmet exports from (O_DIRECT) and
  compares; and the other way round (written through the block device,
  read over TCP);
- Keep Alive reaches the target (the association outlives KATO).

Prints one line per check, exits non-zero on the first failure.
"""
from __future__ import annotations

import asyncio
import mmap
import os
import struct
import time

from aionvme.transport.tcp import fabrics as F
from aionvme.transport.tcp.host import connect
from checklib import fail, ok  # tests/guest: the script's own folder


NULLB = "/sys/kernel/config/nullb/nullb1"
NVMET = "/sys/kernel/config/nvmet/subsystems"
LBA = 512


def write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def memory_backed_namespace(nqn: str) -> str:
    """/dev/nullb1, memory backed, 64 MiB, 512-byte blocks, as namespace 2 of ``nqn``."""
    os.makedirs(NULLB, exist_ok=True)
    for name, value in (("size", "64"), ("blocksize", "512"), ("memory_backed", "1"),
                        ("power", "1")):
        write(f"{NULLB}/{name}", value)
    for _ in range(100):
        if os.path.exists("/dev/nullb1"):
            break
        time.sleep(0.05)
    ns = f"{NVMET}/{nqn}/namespaces/2"
    os.makedirs(ns, exist_ok=True)
    write(f"{ns}/device_path", "/dev/nullb1")
    write(f"{ns}/enable", "1")
    return "/dev/nullb1"


def direct_io(path: str, offset: int, data: bytes | None, size: int) -> bytes:
    buf = mmap.mmap(-1, size)   # page aligned, as O_DIRECT wants
    fd = os.open(path, (os.O_WRONLY if data is not None else os.O_RDONLY) | os.O_DIRECT)
    try:
        if data is not None:
            buf.write(data)
            assert os.pwritev(fd, [buf], offset) == size
            return data
        assert os.preadv(fd, [buf], offset) == size
        return bytes(buf)
    finally:
        os.close(fd)
        buf.close()


def rw(opcode: int, lba: int, nlb: int, nsid: int = 2) -> bytes:
    return F.sqe(opcode, nsid=nsid, cdw10=lba, cdw12=nlb - 1)


async def main() -> None:
    uri = os.environ.get("AIONVME_GUEST_NVMET")
    if not uri:
        fail("AIONVME_GUEST_NVMET is not set (run the guest with --nvmet)")
    host, port, nqn = F.parse_address(uri)
    dev = memory_backed_namespace(nqn)
    ok(f"{dev} is namespace 2 of {nqn}")

    async with await connect(f"tcp://{host}:{port}") as d:
        entries = await d.discovery_log()
        if nqn not in [e.subnqn for e in entries]:
            fail(f"the discovery log lists {[e.subnqn for e in entries]}, not {nqn}")
        ok(f"discovery log: {[(e.subnqn, e.traddr, e.trsvcid) for e in entries]}")

    for hdgst, ddgst in ((False, False), (True, True)):
        async with await connect(uri, hdgst=hdgst, ddgst=ddgst, kato_ms=2000) as c:
            if int.from_bytes(c.id_ctrl[78:80], "little") != c.cntlid:
                fail("Identify CNTLID differs from Connect's")
            subnqn = c.id_ctrl[768:1024].split(b"\0")[0].decode()
            if subnqn != nqn:
                fail(f"SUBNQN {subnqn!r}")
            csts = await c.get_property(F.PROP_CSTS)
            cc = await c.get_property(F.PROP_CC)
            if not csts & 1 or not cc & 1:
                fail(f"CC {cc:#x} CSTS {csts:#x} after enabling")
            ok(f"digests {hdgst}/{ddgst}: CAP {c.cap:#x} VS {c.vs:#x} CC {cc:#x} CSTS {csts:#x} "
               f"cntlid {c.cntlid} IOCCSZ in-capsule {c.inline_data_size} MAXH2CDATA "
               f"{c.admin.maxh2cdata}")
            q = await c.create_io_queue(32)
            for nlb, lba in ((1, 10), (16, 100), (256, 4096)):   # 512 B in the capsule ... 128 KiB by R2T
                data = os.urandom(nlb * LBA)
                cqe = await q.submit(rw(0x01, lba, nlb), data_out=data)
                if struct.unpack_from("<H", cqe, 14)[0] >> 1:
                    fail(f"write of {nlb} LBAs: status {cqe.hex()}")
                back = bytearray(nlb * LBA)
                cqe = await q.submit(rw(0x02, lba, nlb), data_in=back)
                if struct.unpack_from("<H", cqe, 14)[0] >> 1 or back != data:
                    fail(f"read back of {nlb} LBAs differs (status {cqe.hex()})")
                size = (nlb * LBA + 4095) // 4096 * 4096
                seen = direct_io(dev, lba * LBA, None, size)[:nlb * LBA]
                if seen != data:
                    fail(f"{dev} holds other data than aionvme wrote at LBA {lba}")
            ok("write over TCP == read over TCP == the block device (1, 16, 256 LBAs)")
            pattern = bytes(range(256)) * 32
            direct_io(dev, 8192 * LBA, pattern, len(pattern))
            back = bytearray(len(pattern))
            await q.submit(rw(0x02, 8192, len(pattern) // LBA), data_in=back)
            if back != pattern:
                fail("written through the block device, read over TCP: differs")
            ok("written through the block device, read over TCP: same")
            await asyncio.sleep(2.5)    # longer than KATO: Keep Alive kept it
            if c.keep_alives < 1 or await c.get_property(F.PROP_CSTS) & 1 != 1:
                fail(f"keep alive: {c.keep_alives} sent")
            ok(f"association alive after KATO ({c.keep_alives} Keep Alive commands)")


asyncio.run(main())
