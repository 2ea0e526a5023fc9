"""Guest side: Linux's nvme-tcp host against ``aionvme serve`` (runs as root in the
guest, with ``--modules nvme-tcp,nvme-fabrics``).

- ``aionvme serve`` exports the simulator on 127.0.0.1:4421;
- the kernel connects through /dev/nvme-fabrics and identifies it: sysfs
  transport, model, serial, subsysnqn as the simulator reports them;
- a pattern written through the block device the kernel made (O_DIRECT) is
  read back the same, and is on the simulator's media;
- the simulator's SMART log (read over aionvme's own TCP host) counts the
  kernel's read and write commands;
- the kernel disconnects cleanly (delete_controller) and the target goes on.

Prints one line per check, exits non-zero on the first failure.
"""
from __future__ import annotations

import asyncio
import glob
import mmap
import os
import subprocess
import sys
import time

from aionvme.transport.tcp import fabrics as F
from aionvme.transport.tcp.host import connect
from checklib import fail, ok  # tests/guest: the script's own folder


NQN = "nqn.2026-12.io.aionvme:serve"
PORT = 4421


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def wait_for(cond, what: str, timeout: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            fail(f"{what} (waited {timeout} s)")
        time.sleep(0.2)


def direct_io(path: str, offset: int, data: bytes | None, size: int) -> bytes:
    buf = mmap.mmap(-1, size)
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


async def smart_counts() -> tuple[int, int]:
    """(Host Read Commands, Host Write Commands) of the simulator's SMART log."""
    async with await connect(f"tcp://127.0.0.1:{PORT}/{NQN}",
                             hostnqn="nqn.2026-12.io.aionvme:checker") as c:
        smart = bytearray(512)
        await c.admin_cmd(F.sqe(0x02, nsid=0xFFFFFFFF, cdw10=0x02 | (127 << 16)), data_in=smart)
        return int.from_bytes(smart[64:80], "little"), int.from_bytes(smart[80:96], "little")


def main() -> None:
    serve = subprocess.Popen([sys.executable, "-m", "aionvme.cli", "serve", "--listen",
                              f"127.0.0.1:{PORT}", "--nqn", NQN], stdout=subprocess.PIPE, text=True)
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()
        if "serving" not in line:
            fail(f"aionvme serve did not start: {line!r}")
        ok(line.strip())
        reads0, writes0 = asyncio.run(smart_counts())
        with open("/dev/nvme-fabrics", "w") as f:
            f.write(f"transport=tcp,traddr=127.0.0.1,trsvcid={PORT},nqn={NQN}")
        ctrl = wait_for(lambda: next((p for p in glob.glob("/sys/class/nvme/nvme*")
                                      if os.path.exists(f"{p}/transport")
                                      and read(f"{p}/transport") == "tcp"), None),
                        "the kernel made no tcp controller", 60)
        name = os.path.basename(ctrl)
        model, serial = read(f"{ctrl}/model"), read(f"{ctrl}/serial")
        subnqn = read(f"{ctrl}/subsysnqn")
        if subnqn != NQN or "aionvme" not in model:
            fail(f"{name}: model {model!r} serial {serial!r} subsysnqn {subnqn!r}")
        ok(f"{name}: transport tcp, model {model!r}, serial {serial!r}, subsysnqn {subnqn}")
        blk = wait_for(lambda: next(iter(sorted(glob.glob(f"/dev/{name}n*"))), None)
                       if not glob.glob(f"/dev/{name}c*") else
                       next(iter(sorted(glob.glob(f"/dev/{name}c*n*"))), None),
                       "no namespace block device", 60)
        ok(f"block device {blk}")
        pattern = b"".join(i.to_bytes(4, "little") * 128 for i in range(64))   # 32 KiB
        direct_io(blk, 1 << 20, pattern, len(pattern))
        back = direct_io(blk, 1 << 20, None, len(pattern))
        if back != pattern:
            fail("read back through the kernel differs from what it wrote")
        ok("O_DIRECT write of 32 KiB + read back through the kernel: same")
        reads1, writes1 = asyncio.run(smart_counts())
        if writes1 <= writes0 or reads1 <= reads0:
            fail(f"SMART: reads {reads0} -> {reads1}, writes {writes0} -> {writes1}")
        ok(f"SMART log: host reads {reads0} -> {reads1}, host writes {writes0} -> {writes1}")
        write_path = f"{ctrl}/delete_controller"
        with open(write_path, "w") as f:
            f.write("1")
        wait_for(lambda: not os.path.exists(ctrl), "the kernel did not delete the controller", 30)
        ok("the kernel disconnected")
        asyncio.run(smart_counts())
        ok("the target still serves")
    finally:
        serve.terminate()
        rc = serve.wait(timeout=30)
        if rc != 0:
            fail(f"aionvme serve exited with {rc}")
        ok("aionvme serve stopped")


main()
