"""A device's speed through ioworkers: 4 KiB random read and random write at
QD64 (and QD1 awaited reads from the event loop), on any address: a real SSD
on vfio-pci (``0000:01:00.0``) or left on the kernel's driver (``/dev/nvme0``,
io_uring passthrough), or ``sim``/``qemu``.  Run as root on a real drive, or
in the test guest, where QEMU's controller under TCG gives correctness
figures only (``make bench-guest`` runs both there)::

    python3 benchmarks/bench_device.py --pciaddr 0000:01:00.0 [--time 10] [--json out.json]
    python3 benchmarks/bench_device.py --pciaddr /dev/nvme0
    python3 tests/guest/guest.py run --vfio 1 --env AIONVME_ARENA_MB=128 -- \\
        python benchmarks/bench_device.py --pciaddr 0000:00:04.0 --time 2

Numbers, not assertions: the test suite never times anything.  Random
writes overwrite the region they cover (``--region-mib``, from LBA 0).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from typing import Any

import aionvme


async def worker(ns: aionvme.Namespace, read_percentage: int, qdepth: int, seconds: float,
                 region: int) -> dict[str, Any]:
    w = ns.ioworker(io_size=4096 // ns.lba_size, lba_align=4096 // ns.lba_size, lba_random=True,
                    qdepth=qdepth, read_percentage=read_percentage, time=seconds,
                    region_end=region)
    async with w:
        pass
    r = w.result
    return {"qdepth": qdepth, "read_percentage": read_percentage, "ios": r.io_count,
            "seconds": r.mseconds / 1000, "iops": round(r.iops), "mbps": round(r.mbps, 1),
            "latency_us": {"avg": round(r.latency_average_us, 1),
                           "p50": r.latency_percentiles_us.get(50.0),
                           "p99": r.latency_percentiles_us.get(99.0),
                           "max": r.latency_max_us}}


async def qd1_reads(ns: aionvme.Namespace, q: aionvme.Qpair, count: int) -> dict[str, Any]:
    buf = aionvme.Buffer(4096, "qd1")
    n = 4096 // ns.lba_size
    start = time.perf_counter()
    for i in range(count):
        await ns.read(q, buf, (i * n) % (ns.nsze - n), n)
    dt = time.perf_counter() - start
    return {"qdepth": 1, "ios": count, "seconds": round(dt, 3),
            "latency_us_avg": round(dt / count * 1e6, 1)}


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pciaddr", default="sim")
    p.add_argument("--time", type=float, default=10.0)
    p.add_argument("--qdepth", type=int, default=64)
    p.add_argument("--region-mib", type=int, default=64)
    p.add_argument("--qd1", type=int, default=2000, help="QD1 awaited reads (0: none)")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    async with aionvme.Controller(args.pciaddr) as nvme0:
        ns = await aionvme.Namespace(nvme0, 1)
        region = min(ns.nsze, (args.region_mib << 20) // ns.lba_size)
        out: dict[str, Any] = {
            "bench": "device", "backend": nvme0.backend, "address": args.pciaddr, "model": nvme0.id_data(63, 24, str),
            "kernel": platform.release(), "lba_size": ns.lba_size,
            "randread": await worker(ns, 100, args.qdepth, args.time, region),
            "randwrite": await worker(ns, 0, args.qdepth, args.time, region),
        }
        if args.qd1:
            async with aionvme.Qpair(nvme0, 2) as q:
                out["qd1_read"] = await qd1_reads(ns, q, args.qd1)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    asyncio.run(main())
