"""aionvme's NVMe/TCP host against ``aionvme serve`` (the simulator as a target) on loopback."""
from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
from typing import AsyncIterator

import pytest
import pytest_asyncio

from aionvme.exceptions import CommandTimeout
from aionvme.target import Target
from aionvme.transport.tcp import fabrics as F
from aionvme.transport.tcp.errors import TransportError
from aionvme.transport.tcp.host import ConnectError, TcpController, connect

LBA = 512  # the simulator's default LBA format


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def target() -> AsyncIterator[Target]:
    async with Target("sim", port=0) as t:
        yield t
    assert not t.connections


def url(t: Target, nqn: str | None = None) -> str:
    return f"tcp://127.0.0.1:{t.port}/{t.nqn if nqn is None else nqn}"


def cqe_status(cqe: bytes) -> tuple[int, int]:
    status = struct.unpack_from("<H", cqe, 14)[0]
    return (status >> 9) & 7, (status >> 1) & 0xFF


async def until(cond, timeout: float = 2.0) -> None:  # type: ignore[no-untyped-def]
    """Wait (bounded) for the target to notice what the host did."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "the target did not notice in time"
        await asyncio.sleep(0.01)


def rw(opcode: int, lba: int, nlb: int) -> bytes:
    return F.sqe(opcode, nsid=1, cdw10=lba & 0xFFFFFFFF, cdw11=lba >> 32, cdw12=nlb - 1)


async def test_identify_and_properties(target: Target) -> None:
    async with await connect(url(target)) as c:
        assert c.cntlid and int.from_bytes(c.id_ctrl[78:80], "little") == c.cntlid
        assert c.id_ctrl[24:45] == b"aionvme simulated SSD"
        assert c.id_ctrl[111] == 1                              # CNTRLTYPE: I/O controller
        assert c.id_ctrl[768:768 + len(target.nqn)] == target.nqn.encode()
        assert int.from_bytes(c.id_ctrl[320:322], "little")    # KAS
        assert c.inline_data_size == 8192
        assert c.cap == target.cap and (c.cap >> 16) & 1      # CQR
        assert c.vs == target.nvme[0x08]
        cc = await c.get_property(F.PROP_CC)
        assert cc & 1 and (cc >> 16) & 0xF == 6 and (cc >> 20) & 0xF == 4
        assert await c.get_property(F.PROP_CSTS) & 1
        with pytest.raises(Exception) as e:                     # CAP is read-only
            await c.set_property(F.PROP_CAP, 0, 8)
        assert "02" in str(e.value)
        cqe = await c.admin_cmd(F.property_get(0x40, 4), check=False)  # not a property
        assert cqe_status(cqe) == (0, F.SC_INVALID_FIELD)
        await c.set_property(F.PROP_CC, cc | (1 << 14))         # shutdown notification
        assert (await c.get_property(F.PROP_CSTS) >> 2) & 3 == 2
    await until(lambda: not target.associations)


async def test_read_write_compare(target: Target) -> None:
    async with await connect(url(target)) as c:
        q = await c.create_io_queue(64)
        small = os.urandom(LBA)                     # in the capsule
        big = os.urandom(128 * LBA)                 # 64 KiB: R2T, then H2CData
        assert cqe_status(await q.submit(rw(0x01, 10, 1), data_out=small)) == (0, 0)
        assert cqe_status(await q.submit(rw(0x01, 1000, 128), data_out=big)) == (0, 0)
        back = bytearray(LBA)
        assert cqe_status(await q.submit(rw(0x02, 10, 1), data_in=back)) == (0, 0)
        assert back == small
        back = bytearray(128 * LBA)
        assert cqe_status(await q.submit(rw(0x02, 1000, 128), data_in=back)) == (0, 0)
        assert back == big
        assert target.nvme.sim.media(1, 1000, 2) == big[:2 * LBA]   # it is on the media
        assert cqe_status(await q.submit(rw(0x05, 1000, 128), data_out=big)) == (0, 0)
        other = bytearray(big)
        other[5000] ^= 1
        assert cqe_status(await q.submit(rw(0x05, 1000, 128), data_out=other)) == (2, 0x85)
        short = bytearray(LBA)   # an SGL shorter than the command's data
        assert cqe_status(await q.submit(rw(0x02, 0, 2), data_in=short)) == (0, 0x0F)
        results = await asyncio.gather(*(q.submit(rw(0x02, 1000 + i, 1), data_in=bytearray(LBA))
                                         for i in range(63)))
        assert all(cqe_status(r) == (0, 0) for r in results)


@pytest.mark.parametrize("hdgst, ddgst", [(True, False), (False, True), (True, True)])
async def test_digests(target: Target, hdgst: bool, ddgst: bool) -> None:
    async with await connect(url(target), hdgst=hdgst, ddgst=ddgst) as c:
        q = await c.create_io_queue(8)
        data = os.urandom(64 * LBA)
        assert cqe_status(await q.submit(rw(0x01, 4000, 64), data_out=data)) == (0, 0)
        back = bytearray(64 * LBA)
        assert cqe_status(await q.submit(rw(0x02, 4000, 64), data_in=back)) == (0, 0)
        assert back == data


async def test_several_hosts(target: Target) -> None:
    hosts = [await connect(url(target), hostnqn=f"nqn.2026-12.io.aionvme:host{i}")
             for i in range(3)]
    try:
        assert len({h.cntlid for h in hosts}) == 3
        queues = [await h.create_io_queue(16) for h in hosts]
        blobs = [os.urandom(8 * LBA) for _ in hosts]
        await asyncio.gather(*(q.submit(rw(0x01, 2000 + 8 * i, 8), data_out=b)
                               for i, (q, b) in enumerate(zip(queues, blobs))))
        for i, q in enumerate(queues):   # each reads what the next one wrote
            j = (i + 1) % 3
            back = bytearray(8 * LBA)
            await q.submit(rw(0x02, 2000 + 8 * j, 8), data_in=back)
            assert back == blobs[j]
    finally:
        for h in hosts:
            await h.close()


async def test_keep_alive(target: Target) -> None:
    async with await connect(url(target), kato_ms=300) as c:
        await until(lambda: c.keep_alives >= 3, 5.0)        # every KATO / 2
        assert target.associations[c.cntlid].keep_alives >= 3
    # a host that stops sending Keep Alive loses its association after KATO
    c = await connect(url(target), kato_ms=200)
    assert c._ka_task is not None
    c._ka_task.cancel()
    q = await c.create_io_queue(4)
    await until(lambda: c.cntlid not in target.associations)
    await until(lambda: c.admin.closed and q.closed)
    assert isinstance(c.admin.error, TransportError)
    await c.close()


async def test_discovery(target: Target) -> None:
    async with await connect(f"tcp://127.0.0.1:{target.port}") as d:
        assert d.discovery and d.id_ctrl[111] == 2             # CNTRLTYPE: discovery
        entries = await d.discovery_log()
        assert [(e.subnqn, e.traddr, e.trsvcid, e.trtype, e.subtype) for e in entries] == [
            (target.nqn, "127.0.0.1", str(target.port), F.TRTYPE_TCP, F.SUBTYPE_NVME)]
        cqe = await d.admin_cmd(F.sqe(0x01), check=False)     # no queues to create here
        assert cqe_status(cqe) == (0, F.SC_INVALID_OPCODE)


async def test_connect_refused(target: Target) -> None:
    with pytest.raises(ConnectError) as e:
        await connect(url(target, "nqn.2026-12.io.aionvme:nobody"))
    assert (e.value.sct, e.value.sc, e.value.ipo, e.value.iattr) == (1, 0x82, 256, 1)
    async with await connect(url(target)) as c:
        c.cntlid ^= 0x100                                      # not our controller
        with pytest.raises(ConnectError) as e:
            await c.create_io_queue(4)
        assert (e.value.ipo, e.value.iattr) == (16, 1)
        c.cntlid ^= 0x100
        with pytest.raises(ConnectError) as e:
            await c._connect_queue(_fresh_queue(c, 1, 4), 0, c.cntlid)   # SQSIZE 0
        assert (e.value.ipo, e.value.iattr) == (44, 0)


def _fresh_queue(c: TcpController, qid: int, depth: int):  # type: ignore[no-untyped-def]
    from aionvme.transport.tcp.host import TcpQueue
    return TcpQueue(c, qid, depth)


async def test_fault_injection_through_the_target(target: Target) -> None:
    async with await connect(url(target)) as c:
        q = await c.create_io_queue(8)
        with target.nvme.sim.inject_status(opcode=0x02, sct=2, sc=0x81, count=1):
            cqe = await q.submit(rw(0x02, 0, 1), data_in=bytearray(LBA))
        assert cqe_status(cqe) == (2, 0x81)
        with target.nvme.sim.drop(opcode=0x02, count=1):
            with pytest.raises(CommandTimeout):
                await q.submit(rw(0x02, 0, 1), data_in=bytearray(LBA), timeout=0.3)
        # the queue goes on; the dropped command's CID stays taken
        assert cqe_status(await q.submit(rw(0x02, 0, 1), data_in=bytearray(LBA))) == (0, 0)


async def test_host_disconnects_mid_command(target: Target) -> None:
    c = await connect(url(target))
    q = await c.create_io_queue(8)
    data = os.urandom(8 * LBA)
    with target.nvme.sim.delay(opcode=0x01, delay_ms=300, count=1):
        fut = q.submit(rw(0x01, 3000, 8), data_out=data)
        await asyncio.sleep(0.05)
        q.close()                      # the connection goes away before the completion
        c.admin.close()
        with pytest.raises(TransportError):
            await fut
        await asyncio.sleep(0.6)
    await c.close()
    # the write the simulator completed after the host left is on the media
    assert target.nvme.sim.media(1, 3000, 8) == data
    async with await connect(url(target)) as c2:
        q2 = await c2.create_io_queue(8)
        back = bytearray(8 * LBA)
        await q2.submit(rw(0x02, 3000, 8), data_in=back)
        assert back == data


async def test_smart_log_counts_the_commands(target: Target) -> None:
    async with await connect(url(target)) as c:
        smart = bytearray(512)
        await c.admin_cmd(F.sqe(0x02, nsid=0xFFFFFFFF, cdw10=0x02 | (127 << 16)), data_in=smart)
        reads = int.from_bytes(smart[64:80], "little")   # Host Read Commands
        q = await c.create_io_queue(4)
        for _ in range(5):
            await q.submit(rw(0x02, 0, 1), data_in=bytearray(LBA))
        await c.admin_cmd(F.sqe(0x02, nsid=0xFFFFFFFF, cdw10=0x02 | (127 << 16)), data_in=smart)
        assert int.from_bytes(smart[64:80], "little") == reads + 5


def test_serve_command_and_register_access() -> None:
    """``aionvme serve`` in its own process; the host's synchronous Property Get
    (``nvme0[0x1c]``) reads the socket itself."""
    proc = subprocess.Popen([sys.executable, "-m", "aionvme.cli", "serve", "--listen",
                             "127.0.0.1:0", "--nqn", "nqn.2026-12.io.aionvme:cli"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving sim as nqn.2026-12.io.aionvme:cli" in line, line
        port = int(line.rsplit(":", 1)[1].split()[0])

        async def main() -> None:
            c = await connect(f"tcp://127.0.0.1:{port}/nqn.2026-12.io.aionvme:cli")
            try:
                assert c.get_property_sync(F.PROP_CSTS) & 1
                assert c.get_property_sync(F.PROP_CAP, 8) == c.cap
                assert c.get_property_sync(F.PROP_VS) == c.vs
            finally:
                await c.close()
        asyncio.run(main())
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0


async def test_reset_and_enable_checks_over_properties(target: Target) -> None:
    async with await connect(url(target)) as c:
        q = await c.create_io_queue(4)
        await c.set_property(F.PROP_CC, 0)                     # CC.EN 1 -> 0: a reset
        assert await c.get_property(F.PROP_CSTS) & 1 == 0
        await until(lambda: q.closed)                         # its I/O queues end
        good = (6 << 16) | (4 << 20) | 1
        await c.set_property(F.PROP_CC, good | (5 << 7))      # MPS above CAP.MPSMAX
        assert await c.get_property(F.PROP_CSTS) & 3 == 2     # CFS, not RDY
        await c.set_property(F.PROP_CC, 0)
        assert await c.get_property(F.PROP_CSTS) & 3 == 0     # the reset clears CFS
        await c.set_property(F.PROP_CC, good)
        assert await c.get_property(F.PROP_CSTS) & 3 == 1
        c.io_queues.clear()
        q2 = await c.create_io_queue(4)                       # queues can connect again
        back = bytearray(LBA)
        assert cqe_status(await q2.submit(rw(0x02, 0, 1), data_in=back)) == (0, 0)
