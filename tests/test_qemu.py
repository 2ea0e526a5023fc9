"""The qemu backend itself: many commands without losing the controller,
resets, power cycles, and QEMU gone (no process, no file) when the
controller closes, when the test process is killed, and on Ctrl-C."""
import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import aionvme
from aionvme.backends.qemu import available

pytestmark = pytest.mark.skipif(available() is not None, reason=f"qemu backend: {available()}")

COMMANDS = 20_000


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def gone(pid: int, what: str) -> None:
    for _ in range(500):                       # a bound against hanging, not a timing check
        if not alive(pid):
            return
        time.sleep(0.01)
    raise AssertionError(f"QEMU (pid {pid}) still runs after {what}")


async def test_many_mixed_commands_keep_the_controller():
    # ARCHITECTURE.md: a real BIOS moved BAR0 after ~120 commands; the hlt BIOS must not
    async with aionvme.Controller("qemu") as c:
        ns = await aionvme.Namespace(c, 1)
        w, r, idb = aionvme.Buffer(4096), aionvme.Buffer(4096), aionvme.Buffer(4096)
        async with aionvme.Qpair(c, 64) as q:
            done = 0
            while done < COMMANDS:
                lba = (done * 8) % (ns.nsze - 8)
                w[0:8] = done.to_bytes(8, "little")
                await asyncio.gather(ns.write(q, w, lba, 8), c.getfeatures(0x07))
                await asyncio.gather(ns.read(q, r, lba, 8), c.identify(idb, 0, 1))
                assert r[0:8] == w[0:8]
                done += 4
            assert c[0x1C] & 0x3 == 0x1          # CSTS: ready, no fatal status


@pytest.mark.parametrize("dbbuf", [True, False], ids=["shadow-doorbells", "mmio-doorbells"])
async def test_ioworkers_run_on_qemu(dbbuf):
    """Workers ring through this process's doorbell proxy; every ring reaches QEMU,
    a repeated tail value after a full lap of the queue included."""
    async with aionvme.Controller("qemu", dbbuf=dbbuf) as c:
        ns = await aionvme.Namespace(c, 1)
        smart = aionvme.Buffer(512)
        async with ns.ioworker(io_size=8, read_percentage=50, io_count=3000, qdepth=16) as w1, \
                ns.ioworker(io_size=1, lba_random=False, read_percentage=0, io_count=2000,
                            qdepth=4, region_start=1 << 16) as w2:
            while w1.running or w2.running:
                await c.getlogpage(0x02, smart, 512)     # admin commands from the parent meanwhile
                await asyncio.sleep(0.05)
        assert w1.result.io_count == 3000 and w1.result.error == 0
        assert w1.result.io_count_read + w1.result.io_count_write == 3000
        assert w2.result.io_count == 2000 and w2.result.io_count_write == 2000
        assert c[0x1C] & 0x3 == 0x1


async def test_close_stops_qemu():
    c = await aionvme.Controller("qemu")
    pid = c._transport.backend.proc.pid
    assert alive(pid)
    await c.close()
    assert not alive(pid)


async def test_controller_reset_flr_and_power_cycle():
    async with aionvme.Controller("qemu") as c:
        ns = await aionvme.Namespace(c, 1)
        w, r = aionvme.Buffer(4096), aionvme.Buffer(4096)
        w[0:6] = b"qemu!!"
        async with aionvme.Qpair(c, 16) as q:
            await ns.write(q, w, 16, 8)
            await ns.flush(q)
            old = c._transport.backend.proc.pid
            for reset in (c.reset, c.pcie.reset, lambda: aionvme.Subsystem(c).power_cycle(0)):
                await reset()
                assert c[0x1C] & 0x3 == 0x1
                r.fill(0)
                await ns.read(q, r, 16, 8)             # the Qpair was created again
                assert r[0:6] == b"qemu!!"
            assert c._transport.backend.proc.pid != old          # power came back as a new QEMU
            assert not alive(old)


CHILD = textwrap.dedent("""
    import asyncio, sys, aionvme
    async def main():
        async with aionvme.Controller("qemu") as c:
            print(c._transport.backend.proc.pid, flush=True)
            await asyncio.sleep(60)
    asyncio.run(main())
""")


@pytest.mark.parametrize("sig,what", [(signal.SIGKILL, "kill -9"), (signal.SIGINT, "Ctrl-C")])
def test_qemu_dies_with_its_test_process(sig, what):
    shm = set(os.listdir("/dev/shm"))
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(child.stdout.readline())
        assert alive(pid)
        child.send_signal(sig)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    gone(pid, what)
    assert set(os.listdir("/dev/shm")) <= shm            # nothing left on /dev/shm


async def test_address_options_reach_qemu():
    async with aionvme.Controller("qemu:namespaces=2,lba_size=4096,size=64M,mdts=5") as c:
        active = aionvme.Buffer(4096)
        await c.identify(active, 0, 2)                      # 5.17.2.2: active namespace ID list
        assert [active.data(3, 0), active.data(7, 4), active.data(11, 8)] == [1, 2, 0]
        assert c.mdts == 4096 << 5                          # MDTS from -device nvme,mdts=5
        for nsid in (1, 2):
            ns = await aionvme.Namespace(c, nsid)
            assert ns.lba_size == 4096 and ns.nsze == (64 << 20) // 4096
        ns2 = await aionvme.Namespace(c, 2)
        async with aionvme.Qpair(c, 8) as q:
            w, r = aionvme.Buffer(4096), aionvme.Buffer(4096)
            w[0:4] = b"ns 2"
            await ns2.write(q, w, 5)
            await ns2.read(q, r, 5)
            assert r[0:4] == b"ns 2"


@pytest.mark.parametrize("address, what", [
    ("qemu:lba_size=1000", "lba_size"), ("qemu:namespaces=0", "namespaces"),
    ("qemu:size=1K", "size"), ("qemu:mdts", "KEY=VALUE")])
async def test_bad_address_options_are_clear_errors(address, what):
    with pytest.raises(aionvme.InterfaceError, match=what):
        await aionvme.Controller(address)


async def test_extended_config_space_through_ecam():
    """Offsets 100h-FFFh go through ECAM (PCIe 7.2.2), which the backend maps by
    programming the q35 MCH's PCIEXBAR; they answer after a restart too."""
    async with aionvme.Controller("qemu") as c:
        assert c.pcie.register(0x100, 4) == 0          # no extended capabilities (7.6.3)
        c.pcie.write(0x100, 4, 0xFFFFFFFF)              # the header is read-only
        assert c.pcie.register(0x100, 4) == 0
        await aionvme.Subsystem(c).power_cycle(0)
        assert c.pcie.register(0x100, 2) == 0 and c.pcie.register(0x0, 2) == 0x1B36
