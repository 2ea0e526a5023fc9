"""The qemu backend's speed: QEMU's NVMe controller driven over qtest.

* QD1 latency and QD32 throughput of awaited 4 KiB reads (the cases of
  bench_qd.py, run on ``--pciaddr qemu``);
* the robustness run: 100,000 commands (write + read back + compare of
  4 KiB, with an admin Get Features every 16 IOs) through one controller,
  which must still be ready at the end.

Usage::

    python3 benchmarks/bench_qemu.py [--time 3] [--commands 100000] [--json out.json]

Numbers, not assertions: the test suite never times anything.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aionvme  # noqa: E402
from bench_qd import qd1, qdn  # noqa: E402


async def many_commands(ns: aionvme.Namespace, q: aionvme.Qpair, count: int) -> dict[str, Any]:
    c = ns.nvme
    w, r = aionvme.Buffer(4096, "w"), aionvme.Buffer(4096, "r")
    per_io = 4096 // ns.lba_size
    done = admin = 0
    start = time.perf_counter()
    while done < count:
        lba = (done * per_io) % (ns.nsze - per_io)
        w[0:8] = done.to_bytes(8, "little")
        await ns.write(q, w, lba, per_io)
        await ns.read(q, r, lba, per_io)
        if r[0:8] != w[0:8]:
            raise SystemExit(f"data mismatch at command {done} (LBA {lba})")
        done += 2
        if done % 32 == 0:
            await c.getfeatures(0x07)
            admin += 1
    elapsed = time.perf_counter() - start
    ready = c[0x1C] & 0x3 == 0x1
    return {"case": "100k", "io_commands": done, "admin_commands": admin,
            "seconds": round(elapsed, 2), "commands_per_s": round((done + admin) / elapsed),
            "controller_ready_after": ready}


async def run(seconds: float, commands: int) -> list[dict[str, Any]]:
    async with aionvme.Controller("qemu") as c:
        ns = await aionvme.Namespace(c, 1)
        async with aionvme.Qpair(c, 64) as q:
            return [await qd1(ns, q, seconds), await qdn(ns, q, seconds, 32),
                    await many_commands(ns, q, commands)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--time", type=float, default=3.0, help="seconds per QD case")
    p.add_argument("--commands", type=int, default=100_000)
    p.add_argument("--json", help="write the results here")
    a = p.parse_args(argv)
    results = asyncio.run(run(a.time, a.commands))
    out = {"backend": "qemu", "machine": platform.machine(), "cpus": os.cpu_count(),
           "python": platform.python_version(), "results": results}
    print(json.dumps(out, indent=2))
    if a.json:
        os.makedirs(os.path.dirname(a.json) or ".", exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0 if results[-1]["controller_ready_after"] else 1


if __name__ == "__main__":
    sys.exit(main())
