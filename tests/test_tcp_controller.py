"""The public API over the tcp transport: ``Controller("tcp://...")`` against
``aionvme serve`` in its own process (register access is synchronous, so the
target cannot share the test's event loop)."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Iterator

import pytest

import aionvme
from aionvme.exceptions import CapabilityError, CommandError, InterfaceError

NQN = "nqn.2026-12.io.aionvme:api"


@pytest.fixture(scope="module")
def served() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-m", "aionvme.cli", "serve", "--listen",
                             "127.0.0.1:0", "--nqn", NQN], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving" in line, line
        yield int(line.rsplit(":", 1)[1].split()[0])
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0


async def test_controller_namespace_qpair(served: int) -> None:
    async with aionvme.Controller(f"tcp://127.0.0.1:{served}/{NQN}") as nvme0:
        assert nvme0[0x1C] & 1                                   # CSTS.RDY, a Property Get
        assert nvme0.register(0x00, 8) == nvme0.cap
        assert nvme0.id_data(63, 24, str).startswith("aionvme simulated SSD")
        assert nvme0.id_data(1023, 768, str) == NQN
        ns = await aionvme.Namespace(nvme0, 1)
        assert ns.nsze > 0 and ns.lba_size == 512
        q = await aionvme.Qpair(nvme0, 16)
        w, r = aionvme.Buffer(8 * 512), aionvme.Buffer(8 * 512)
        w[0:8 * 512] = bytes(range(256)) * 16
        await ns.write(q, w, 100, 8)
        cpl = await ns.read(q, r, 100, 8)
        assert cpl.ok and r[0:8 * 512] == w[0:8 * 512]
        with pytest.raises(CommandError):
            await ns.read(q, r, ns.nsze, 1)                     # LBA Out of Range
        assert [e.opcode for e in q.cmdlog()][-3:] == [0x01, 0x02, 0x02]
        assert nvme0.cmdlog()[-1].opcode in (0x06, 0x0A, 0x0C, 0x02, 0x09)
        with pytest.raises(CapabilityError) as e:
            nvme0.pcie[0x00]
        assert "tcp" in str(e.value)
        with pytest.raises(CapabilityError):
            await nvme0.send_cmd(0x06, prp1=0x1000)
        await q.delete()


async def test_verify_and_reset(served: int) -> None:
    aionvme.config(verify=True)
    try:
        async with aionvme.Controller(f"tcp://127.0.0.1:{served}/{NQN}") as nvme0:
            ns = await aionvme.Namespace(nvme0, 1)
            q = await aionvme.Qpair(nvme0, 8)
            buf = aionvme.Buffer(4096)
            await ns.write(q, buf, 50, 8)
            await ns.read(q, buf, 50, 8)                          # checked by verify
            await nvme0.reset()                                  # CC.EN 1 -> 0 -> 1
            assert nvme0[0x1C] & 1
            await ns.read(q, buf, 50, 8)                          # the queue was connected again
    finally:
        aionvme.config(verify=False)


async def test_address_without_nqn_uses_discovery(served: int) -> None:
    async with aionvme.Controller(f"tcp://127.0.0.1:{served}") as nvme0:
        assert nvme0.id_data(1023, 768, str) == NQN


async def test_pynvme_2_tcp_alias(served: int) -> None:
    assert aionvme.Tcp("::1", 4430, "nqn.x") == "tcp://[::1]:4430/nqn.x"
    with pytest.raises(InterfaceError):
        aionvme.Tcp("127.0.0.1", 0)
    async with aionvme.Controller(aionvme.Tcp(b"127.0.0.1", served)) as nvme0:
        assert nvme0[0x1C] & 1


async def test_bad_addresses() -> None:
    with pytest.raises(InterfaceError):
        await aionvme.Controller("tcp://127.0.0.1:99999/nqn.x")
    import socket
    with socket.socket() as s:          # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from aionvme.transport.tcp.errors import TransportError
    with pytest.raises(TransportError, match="cannot connect"):
        await aionvme.Controller(f"tcp://127.0.0.1:{port}/nqn.x")


async def test_excess_commands_wait_and_waitdone(served: int) -> None:
    async with aionvme.Controller(f"tcp://127.0.0.1:{served}/{NQN}") as nvme0:
        ns = await aionvme.Namespace(nvme0, 1)
        q = await aionvme.Qpair(nvme0, 4)                     # 4 CIDs on the wire
        bufs = [aionvme.Buffer(512) for _ in range(20)]
        cpls = await asyncio.gather(*(ns.read(q, b, i) for i, b in enumerate(bufs)))
        assert all(c.ok for c in cpls)
        for i in range(3):
            ns.read(q, bufs[i], i)                            # the seed's style: not awaited
        assert len(await q.waitdone(3)) == 3
        strict = await aionvme.Qpair(nvme0, 2, strict=True)
        futs = [ns.read(strict, bufs[i], i) for i in range(2)]
        with pytest.raises(aionvme.exceptions.QueueFullError):
            ns.read(strict, bufs[3], 3)
        await asyncio.gather(*futs)
        with pytest.raises(CapabilityError):
            q.msix_isset()
