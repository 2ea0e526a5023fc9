"""aionvme.verify.save() / load(): the verify table survives the host process."""
import os
import subprocess
import sys
import textwrap

import pytest

import aionvme
from aionvme import verify as averify
from aionvme.exceptions import InterfaceError, VerifyError
from simconf import sim_address

pytestmark = pytest.mark.sim_only("a file-backed simulator namespace")

WRITER = textwrap.dedent("""
    import asyncio, sys
    import aionvme
    from aionvme import Subsystem

    async def main(addr, table):
        aionvme.config(verify=True)
        async with aionvme.Controller(addr) as c:
            ns = await aionvme.Namespace(c, 1)
            q = await aionvme.Qpair(c, 8)
            b = aionvme.Buffer(8 * 512)
            b.fill(0x5A)
            await ns.write(q, b, 100, 8)
            await ns.write(q, b, 5000, 8)
            await ns.flush(q)
            await ns.write(q, b, 300, 4)         # cached when the table is saved
            aionvme.verify.save(table)           # the only namespace with a table
            await q.delete()
            c.sim.power_loss()                   # and the process ends without a shutdown

    asyncio.run(main(sys.argv[1], sys.argv[2]))
""")


async def test_a_new_process_verifies_what_an_earlier_one_wrote(tmp_path, verify):
    img, table = tmp_path / "ns1.img", tmp_path / "ns1.verify"
    addr = sim_address(tmp_path, namespaces=[{"size": "64M", "file": str(img)}])
    subprocess.run([sys.executable, "-c", WRITER, addr, str(table)], check=True, timeout=60)
    # Sparse, as the table: far below the bytes the table maps.
    assert os.stat(table).st_blocks * 512 < 1 << 20 < os.path.getsize(table)
    async with aionvme.Controller(addr) as c:
        ns = await aionvme.Namespace(c, 1)
        q = await aionvme.Qpair(c, 8)
        try:
            averify.load(table, ns, power_lost=True)
            t = ns._verifier.table
            assert t.get(100) > 2 and t.get(5007) > 2 and t.get(0) == 0
            r = aionvme.Buffer(8 * 512)
            await ns.read(q, r, 100, 8)
            await ns.read(q, r, 5000, 8)
            await ns.read(q, r, 300, 4)           # lost with the cache: never written, unknown
            c.sim.corrupt(1, 5003, offset=200)
            with pytest.raises(VerifyError, match="LBA 5003: the data differs"):
                await ns.read(q, r, 5000, 8)
        finally:
            await q.delete()


async def test_load_refuses_a_table_of_another_namespace(tmp_path, nvme0n1, qpair, verify):
    table = tmp_path / "t.verify"
    b = aionvme.Buffer(512)
    await nvme0n1.write(qpair, b, 10)
    averify.save(table, nvme0n1)
    averify.load(table, nvme0n1)                  # the same one: fine
    await nvme0n1.read(qpair, b, 10)
    other = sim_address(tmp_path, namespaces=[{"size": "64M"}], serial="OTHER-0001")
    async with aionvme.Controller(other) as c:
        ns = await aionvme.Namespace(c, 1)
        await ns.write(await aionvme.Qpair(c, 4), aionvme.Buffer(512), 0)
        with pytest.raises(InterfaceError, match="saved for another geometry"):
            averify.load(table, ns)
        with pytest.raises(InterfaceError, match="namespaces have a verify table"):
            averify.save(table)
    (tmp_path / "junk").write_bytes(b"x" * 8192)
    with pytest.raises(InterfaceError, match="is not a saved verify table"):
        averify.load(tmp_path / "junk", nvme0n1)


async def test_load_refuses_a_table_of_another_drive(tmp_path, verify):
    table = tmp_path / "t.verify"
    for serial, ok in (("DRIVE-A", True), ("DRIVE-B", False)):
        addr = sim_address(tmp_path, namespaces=[{"size": "64M"}], serial=serial)
        async with aionvme.Controller(addr) as c:
            ns = await aionvme.Namespace(c, 1)
            q = await aionvme.Qpair(c, 4)
            await ns.write(q, aionvme.Buffer(512), 0)
            if ok:
                averify.save(table, ns)
            else:
                with pytest.raises(InterfaceError, match="saved for another namespace or drive"):
                    averify.load(table, ns)
            await q.delete()
            ns.close()


async def test_a_table_in_a_file_on_disk(tmp_path, monkeypatch, nvme0, verify):
    """AIONVME_VERIFY_DIR: the table is an unnamed file there (page cache the kernel
    can write back and reclaim), shared with ioworkers like a memfd."""
    monkeypatch.setenv("AIONVME_VERIFY_DIR", str(tmp_path))
    ns = await aionvme.Namespace(nvme0, 1)
    try:
        q = await aionvme.Qpair(nvme0, 8)
        await ns.write(q, aionvme.Buffer(4096), 0, 8)
        t = ns._verifier.table
        assert os.readlink(f"/proc/self/fd/{t.fd}").startswith(str(tmp_path))
        assert os.listdir(tmp_path) == []  # O_TMPFILE: no name, gone with the table
        r = await ns.ioworker(io_size=8, lba_random=False, qdepth=8, read_percentage=50,
                              io_count=200, region_end=4096)
        assert r.error == 0
        await ns.read(q, aionvme.Buffer(4096), 0, 8)
        nvme0.sim.corrupt(1, 3, offset=100)
        with pytest.raises(VerifyError, match="LBA 3"):
            await ns.read(q, aionvme.Buffer(4096), 0, 8)
        await q.delete()
    finally:
        ns.close()
